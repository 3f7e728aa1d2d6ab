"""Captions for PhysWorld scenes: every object's color, shape, size, motion and paint, the
occluders and the camera, in varied phrasing (templates and synonyms) drawn from a seeded RNG.

Color words are always the palette names, so a caption can be checked against the pixels; shapes,
sizes and motions vary among the synonyms below (`SHAPE_WORDS` etc.), which `prompts.py` and the
caption-adherence probe read back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sora_jax.data import palette

if TYPE_CHECKING:
    from sora_jax.data.physworld import ObjectSpec, Scene

SHAPE_WORDS = {
    "circle": ("circle", "disc", "ball"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
MOTION_PHRASES = {
    "bounce": ("bounces off the walls", "moves and bounces around", "glides and rebounds off the edges"),
    "fall": ("falls and bounces on the floor", "drops to the ground and bounces", "falls under gravity"),
    "still": ("stays still", "rests in place", "does not move"),
    "rise": ("floats up and bounces on the ceiling", "rises to the top", "floats upward against gravity"),
}
PAINT_PHRASES = ("leaving a {color} trail", "painting a {color} line behind it", "drawing a {color} path as it goes")
OCCLUDER_PHRASES = {
    0: ("", "Nothing blocks the view."),
    1: ("A gray wall stands in front.", "One gray pillar partly hides the scene."),
    2: ("Two gray walls stand in front.", "Two gray pillars partly hide the scene."),
}
CAMERA_PHRASES = {
    "static": ("The camera is still.", "Static camera.", "The camera does not move."),
    "pan_left": ("The camera pans left.", "The view slides to the left."),
    "pan_right": ("The camera pans right.", "The view slides to the right."),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
VIDEO_OPENERS = ("", "A dark scene with {count} {noun}: ", "On a dark background, ")
IMAGE_OPENERS = ("A picture of ", "An image showing ", "A still image of ")


def _choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def noun_phrase(rng: np.random.Generator, obj: "ObjectSpec") -> str:
    size = _choose(rng, SIZE_WORDS[palette.SIZE_NAMES[obj.size]])
    shape = _choose(rng, SHAPE_WORDS[palette.SHAPE_NAMES[obj.shape]])
    return f"{size} {palette.COLOR_NAMES[obj.color]} {shape}"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _object_clause(rng: np.random.Generator, obj: "ObjectSpec") -> str:
    clause = f"{_article(noun_phrase(rng, obj))} {_choose(rng, MOTION_PHRASES[palette.MOTION_NAMES[obj.motion]])}"
    if obj.paints:
        clause += ", " + _choose(rng, PAINT_PHRASES).format(color=palette.COLOR_NAMES[obj.color])
    return clause


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) == 2 else "; ".join(parts[:-1]) + "; and " + parts[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def describe(scene: "Scene", rng: np.random.Generator) -> str:
    """A training caption for `scene`."""
    occluder = _choose(rng, OCCLUDER_PHRASES[len(scene.occluders)])
    if scene.frames == 1:
        objects = _join([_article(noun_phrase(rng, o)) for o in scene.objects])
        return " ".join(p for p in [_sentence(_choose(rng, IMAGE_OPENERS) + objects), occluder] if p)
    count = len(scene.objects)
    opener = _choose(rng, VIDEO_OPENERS).format(
        count=COUNT_WORDS[count], noun="object" if count == 1 else "objects"
    )
    body = _sentence(opener + _join([_object_clause(rng, o) for o in scene.objects]))
    camera = _choose(rng, CAMERA_PHRASES[palette.CAMERA_NAMES[scene.camera]])
    return " ".join(p for p in [body, occluder, camera] if p)
