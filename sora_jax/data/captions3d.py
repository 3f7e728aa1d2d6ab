"""Captions for PhysWorld 3D scenes: each object's size, color, shape and motion, its mark on the
ground, the camera's move and the cut, in varied phrasing from a seeded RNG. Color words are the
palette names and the camera and cut sentences come from the fixed sets below, so a caption can be
checked against the pixels (and `CAMERA_PHRASES` read back by the probes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sora_jax.data import palette
from sora_jax.data.captions import _article, _choose, _join, _sentence

if TYPE_CHECKING:
    from sora_jax.data.physworld3d import Object3D, Scene3D

SHAPE_WORDS = {"sphere": ("sphere", "ball"), "cube": ("cube", "box"), "pyramid": ("pyramid",)}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
MOTION_PHRASES = {
    "still": ("stands still", "rests on the floor", "does not move"),
    "roll": ("rolls across the floor", "rolls along the ground"),
    "slide": ("slides across the floor", "glides along the ground"),
    "bounce": ("bounces in place", "hops up and down"),
}
PAINT_PHRASES = ("leaving a {color} mark on the ground", "painting a {color} line on the floor")
CAMERA_PHRASES = {
    "static": ("The camera is still.", "Static camera."),
    "orbit_left": ("The camera orbits to the left.", "The camera circles the scene to the left."),
    "orbit_right": ("The camera orbits to the right.", "The camera circles the scene to the right."),
    "dolly_in": ("The camera dollies in.", "The camera moves closer."),
    "dolly_out": ("The camera dollies out.", "The camera pulls back."),
    "crane_up": ("The camera cranes up.", "The camera rises."),
    "crane_down": ("The camera cranes down.", "The camera descends."),
    "pan_left": ("The camera pans left.", "The camera turns to the left."),
    "pan_right": ("The camera pans right.", "The camera turns to the right."),
}
CUT_PHRASES = {
    "above": ("Cut to a view from above.",),
    "other_side": ("Cut to a view from the other side.",),
    "closer": ("Cut to a closer view.",),
    "farther": ("Cut to a wider view.",),
}
OPENERS = ("", "On a tiled floor, ", "{count} {noun} on a checkered floor: ")
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
IMAGE_OPENERS = ("A picture of ", "A still image of ")


def noun_phrase(rng: np.random.Generator, obj: "Object3D") -> str:
    size = _choose(rng, SIZE_WORDS[palette.SIZE_NAMES[obj.size]])
    return f"{size} {palette.COLOR_NAMES[obj.color]} {_choose(rng, SHAPE_WORDS[palette.SHAPE_NAMES_3D[obj.shape]])}"


def _motion(obj: "Object3D") -> str:
    motion = palette.MOTION_NAMES_3D[obj.motion]
    return "slide" if motion == "roll" and palette.SHAPE_NAMES_3D[obj.shape] != "sphere" else motion


def _object_clause(rng: np.random.Generator, obj: "Object3D") -> str:
    clause = f"{_article(noun_phrase(rng, obj))} {_choose(rng, MOTION_PHRASES[_motion(obj)])}"
    if obj.paints:
        clause += ", " + _choose(rng, PAINT_PHRASES).format(color=palette.COLOR_NAMES[obj.color])
    return clause


def describe(scene: "Scene3D", rng: np.random.Generator) -> str:
    """A training caption for `scene`."""
    if scene.frames == 1:
        return _sentence(_choose(rng, IMAGE_OPENERS) + _join([_article(noun_phrase(rng, o)) for o in scene.objects])
                         + " on a tiled floor")
    count = len(scene.objects)
    opener = _choose(rng, OPENERS).format(count=COUNT_WORDS[count].capitalize(),
                                          noun="objects" if count > 1 else "object")
    parts = [_sentence(opener + _join([_object_clause(rng, o) for o in scene.objects])),
             _choose(rng, CAMERA_PHRASES[palette.CAMERA_MOVES_3D[scene.camera]])]
    if scene.cut >= 0:
        parts.append(_choose(rng, CUT_PHRASES[palette.CUT_NAMES_3D[scene.cut]]))
    return " ".join(parts)
