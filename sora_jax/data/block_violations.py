"""Impossible BlockWorld clips, as IntPhys-style quadruplets: two possible clips and two impossible
ones that hold the same frames between them, so only the broken rule separates them.

    quad = quadruplet(seed=3, kind="dug_reappears")
    quad.possible, quad.impossible      # two uint8 [T, H, W, 3] clips each

Kinds:
- `dug_reappears`: a block the player dug is back when the camera returns (and, switched the
  other way, a block vanishes off-screen with nobody there);
- `placed_vanishes`: a block the player placed is gone on return (and one appears);
- `walk_through_wall`: the player walks through a wall (and, the other way, stops at nothing).

For the first two, A is the clip as simulated and B the same clip with the edit undone (the
player's path never touches that block, so B is possible too); the impossible clips switch from
one to the other while the block is out of view, at the start of a latent frame (the last one
before the block is back). For walls, A is the clip without the wall, C the clip re-simulated
with it (the player blocked); the impossible ones draw the wall
over A's path and leave it out of C's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sora_jax.data import blockworld as bw, quadruplets

KINDS = ("dug_reappears", "placed_vanishes", "walk_through_wall")
_SEARCH = 400  # seeds tried after the given one for a clip the kind applies to
_CONFIG = bw.WorldConfig(return_prob=1.0, explore_caption_prob=0.0)


@dataclasses.dataclass
class Quadruplet(quadruplets.Quadruplet):
    segments: list[int]  # clip A's actions
    seed: int  # the seed that made clip A


def _touches(players: np.ndarray, row: int, col: int, start: int) -> bool:
    """Whether the player, from frame `start` on, stands in or on cell (row, col)."""
    for x, y in players[start:]:
        cols = range(int(np.floor(x + 1e-6)), int(np.ceil(x + 1 - 1e-6)))
        if col in cols and row in (int(np.floor(y + 1e-6)), int(np.floor(y + 1 + 1e-6)), int(np.floor(y + 2 + 1e-6))):
            return True
    return False


def _undone(clip: bw.Clip, frames: int, height: int, width: int, dug: bool):
    """(B's video, switch frame) for the first edit of the wanted sort that leaves the view and
    comes back, untouched by the player afterwards; None if the clip has none."""
    truth, cell = clip.truth, bw.cell_size(height, width)
    for f in np.flatnonzero(truth["changed"][:, 0] >= 0):
        row, col = (int(v) for v in truth["changed"][f])
        after = truth["grid"][f, row, col]
        if (after == bw.AIR) != dug or (truth["grid"][f:, row, col] != after).any():
            continue  # another sort of edit, or changed again later
        left = col * cell - truth["camera"]
        in_view = (left >= 0) & (left + cell <= width)
        gone = np.flatnonzero(~in_view[f:])
        if not len(gone):
            continue
        back = np.flatnonzero(in_view[f + gone[0]:])
        if not len(back) or _touches(truth["player"], row, col, f):
            continue
        # Switch while the block is out of view, at the first frame of a latent frame (1 + 4m):
        # a switch inside one would blend the two clips in a latent the model never saw, which
        # any model — trained or not — finds costly.
        starts = [k for k in range(f + gone[0], f + gone[0] + back[0] + 1) if (k - 1) % bw.FRAMES_PER_ACTION == 0]
        if not starts:
            continue
        grids = truth["grid"].copy()
        grids[f:, row, col] = truth["grid"][f - 1, row, col]
        video, _ = bw.render(grids, truth["player"], truth["facing"], height, width)
        return video, starts[-1]
    return None


def _walled(clip: bw.Clip, height: int, width: int):
    """(A with a wall, C with the wall and blocked, C without it, the frame the walk starts) for
    the first walk on the ground whose path a two-block wall can stand in; None if none."""
    truth = clip.truth
    per = bw.FRAMES_PER_ACTION
    grid0 = truth["grid"][0]
    for s, action in enumerate(clip.segments):
        if action not in (bw.LEFT, bw.RIGHT):
            continue
        x, y = truth["player"][per * s]
        if not float(y).is_integer() or not float(x * 2).is_integer():
            continue
        direction = 1 if action == bw.RIGHT else -1
        col, rows = int(np.floor(x + 0.5)) + 2 * direction, (int(y), int(y) + 1)
        if not 0 <= col < grid0.shape[1] or (truth["grid"][:, rows[0]:rows[1] + 1, col] != bw.AIR).any():
            continue
        walled = grid0.copy()
        walled[rows[0]:rows[1] + 1, col] = bw.STONE
        x0, y0 = (float(v) for v in truth["player"][0])
        start = bw.Player(x=x0, y=y0, facing=int(truth["facing"][0]))
        blocked = bw.simulate(walled, start, clip.segments)
        if abs(blocked["player"][per * (s + 1), 0] - x) >= 2 or \
                (blocked["player"][:per * s + 1] != truth["player"][:per * s + 1]).any():
            continue  # not stopped by the wall, or the wall changed the path before the walk
        with_wall = truth["grid"].copy()
        with_wall[:, rows[0]:rows[1] + 1, col] = bw.STONE
        a_wall, _ = bw.render(with_wall, truth["player"], truth["facing"], height, width)
        c_wall, _ = bw.render(blocked["grid"], blocked["player"], blocked["facing"], height, width)
        no_wall = blocked["grid"].copy()
        no_wall[:, rows[0]:rows[1] + 1, col] = np.where(no_wall[:, rows[0]:rows[1] + 1, col] == bw.STONE, bw.AIR,
                                                       no_wall[:, rows[0]:rows[1] + 1, col])
        c_free, _ = bw.render(no_wall, blocked["player"], blocked["facing"], height, width)
        return a_wall, c_wall, c_free, per * s + 1
    return None


def quadruplet(seed: int, kind: str, frames: int = 33, height: int = 32, width: int = 56) -> Quadruplet:
    """The quadruplet of `kind` from the first clip, at seed `seed` or after, that it applies to."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; valid: {', '.join(KINDS)}")
    for attempt in range(_SEARCH):
        clip_seed = seed + 7919 * attempt
        clip = bw.render_clip(clip_seed, frames, height, width, _CONFIG)
        if kind == "walk_through_wall":
            found = _walled(clip, height, width)
            if found:
                a_wall, c_wall, c_free, frame = found
                return Quadruplet((clip.video, c_wall), (a_wall, c_free), clip.caption, kind, frame, clip.segments,
                                  clip_seed)
            continue
        found = _undone(clip, frames, height, width, dug=kind == "dug_reappears")
        if found:
            b_video, frame = found
            ab, ba = b_video.copy(), clip.video.copy()
            ab[:frame], ba[:frame] = clip.video[:frame], b_video[:frame]
            return Quadruplet((clip.video, b_video), (ab, ba), clip.caption, kind, frame, clip.segments, clip_seed)
    raise ValueError(f"no clip for {kind!r} among {_SEARCH} seeds from {seed} at {frames} frames, {height}x{width}")
