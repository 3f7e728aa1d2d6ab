"""The violation-of-expectation record every world's impossible-clip maker returns (IntPhys-style).

Two possible clips (a scene A and its edited twin B, each whole) and two impossible ones (A
switching to B at `frame`, and B switching to A) hold the same frames between them, so only the
switch separates possible from impossible; `evaluation/likelihood.voe_scores` asks whether a
model finds the possible pair likelier. Worlds add what their own checks need (BlockWorld: the
actions and seed).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Quadruplet:
    possible: tuple[np.ndarray, np.ndarray]  # A; B
    impossible: tuple[np.ndarray, np.ndarray]  # A then B from `frame`; B then A
    caption: str  # clip A's
    kind: str
    frame: int  # the first frame at which a possible and an impossible clip differ
