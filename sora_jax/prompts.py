"""Prompt enrichment: a short prompt becomes a caption like the ones the model was trained on.

    enrich("a red ball", seed=0)
    # -> "On a dark background, a small red ball bounces off the walls. The camera is still."

The `RuleEnricher` reads what the prompt specifies (objects: color, shape, size, motion, paint;
occluders; camera) with the training captions' own synonym tables, fills everything else with
draws from the training distribution (`physworld.WorldConfig`), and writes the caption with the
training captioner (`captions.describe`), so phrasing matches too. Deterministic given the seed.
Another enricher (a language model, say) plugs in through the `Enricher` protocol.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Protocol

import numpy as np

from sora_jax.data import captions, palette, physworld


class Enricher(Protocol):
    def __call__(self, prompt: str, *, frames: int, seed: int) -> str: ...


@dataclasses.dataclass(frozen=True)
class _Scene:
    """The fields of `physworld.Scene` that `captions.describe` reads."""

    frames: int
    objects: tuple[physworld.ObjectSpec, ...]
    occluders: tuple
    camera: int


def _index_of_word(text: str, table: dict[str, tuple[str, ...]]) -> int | None:
    for index, name in enumerate(table):
        if any(re.search(rf"\b{re.escape(word)}s?\b", text) for word in table[name]):
            return index
    return None


_MOTION_KEYS = {"bounce": ("bounc", "rebound", "glid", "moves"), "fall": ("fall", "drop", "gravity"),
                "still": ("still", "rest", "does not move", "static", "stays")}
_PAINT_KEYS = ("trail", "paint", "path", "line")
_NUMBERS = {"two": 2, "2": 2, "three": 3, "3": 3}


def _mentions(prompt: str) -> list[str]:
    """Object mentions: pieces that name a color or a shape, split on 'and', ';' and ','."""
    pieces = re.split(r"\band\b|;|,", prompt.lower())
    shape_words = [w for words in captions.SHAPE_WORDS.values() for w in words]
    return [p for p in pieces if any(re.search(rf"\b{w}s?\b", p) for w in (*palette.COLOR_NAMES, *shape_words))]


def _specified_object(mention: str) -> dict:
    spec = {"color": next((i for i, c in enumerate(palette.COLOR_NAMES) if re.search(rf"\b{c}\b", mention)), None),
            "shape": _index_of_word(mention, captions.SHAPE_WORDS),
            "size": _index_of_word(mention, captions.SIZE_WORDS),
            "motion": next((palette.MOTION_NAMES.index(m) for m, keys in _MOTION_KEYS.items()
                            if any(k in mention for k in keys)), None),
            "paints": True if any(k in mention for k in _PAINT_KEYS) else None}
    return spec


class RuleEnricher:
    """Fills what a prompt leaves open with draws from the PhysWorld training distribution."""

    def __init__(self, world: physworld.WorldConfig | None = None):
        self.world = world or physworld.WorldConfig()

    def __call__(self, prompt: str, *, frames: int, seed: int) -> str:
        rng = np.random.default_rng([seed, 7919])
        text = prompt.lower()
        mentions = _mentions(text)
        if not mentions:
            count = int(rng.integers(self.world.min_objects, self.world.max_objects + 1))
            mentions = [""] * count
        counted = []
        for mention in mentions:  # "two blue squares" -> two objects
            number = next((n for word, n in _NUMBERS.items() if re.search(rf"\b{word}\b", mention)), 1)
            counted += [mention] * number
        objects = []
        for mention in counted[: physworld.MAX_OBJECTS]:
            spec = _specified_object(mention)
            shape = spec["shape"]
            if spec["color"] is None:
                spec["color"] = int(rng.integers(len(palette.COLOR_NAMES)))
            if shape is None:
                allowed = [i for i, s in enumerate(palette.SHAPE_NAMES)
                           if (palette.COLOR_NAMES[spec["color"]], s) not in self.world.holdout]
                shape = int(rng.choice(allowed))
            size = spec["size"] if spec["size"] is not None else int(rng.integers(len(palette.SIZE_NAMES)))
            motion = spec["motion"]
            if motion is None:
                motion = int(rng.choice(len(palette.MOTION_NAMES), p=self.world.motion_probs))
            if frames == 1:
                motion, paints = palette.MOTION_NAMES.index("still"), False
            else:
                paints = spec["paints"] if spec["paints"] is not None else bool(rng.random() < self.world.painter_prob)
                paints = paints and motion != palette.MOTION_NAMES.index("still")
            objects.append(physworld.ObjectSpec(spec["color"], shape, size, motion, paints, 0.0, (0.0, 0.0), (0.0,
                                                                                                              0.0)))
        occluders = self._occluders(text, rng)
        camera = self._camera(text, rng, frames)
        return captions.describe(_Scene(frames, tuple(objects), occluders, camera), rng)

    def _occluders(self, text: str, rng) -> tuple:
        if re.search(r"\b(two|2)\b.*\b(walls?|pillars?)\b", text):
            count = 2
        elif re.search(r"\b(walls?|pillars?|occluders?)\b", text):
            count = 1
        elif re.search(r"\bnothing blocks\b|\bno walls?\b", text):
            count = 0
        else:
            count = int(rng.integers(0, self.world.max_occluders + 1))
        return ((0.0, 0.0, 0.0, 0.0),) * count

    def _camera(self, text: str, rng, frames: int) -> int:
        if frames == 1:
            return palette.CAMERA_NAMES.index("static")
        if re.search(r"\b(pans?|slides?)\s+(to the\s+)?left\b", text):
            return palette.CAMERA_NAMES.index("pan_left")
        if re.search(r"\b(pans?|slides?)\s+(to the\s+)?right\b", text):
            return palette.CAMERA_NAMES.index("pan_right")
        if re.search(r"camera (is still|does not move)|static camera", text):
            return palette.CAMERA_NAMES.index("static")
        if rng.random() < self.world.pan_prob:
            return palette.CAMERA_NAMES.index(str(rng.choice(["pan_left", "pan_right"])))
        return palette.CAMERA_NAMES.index("static")


def enrich(prompt: str, *, frames: int = 17, seed: int = 0, enricher: Enricher | None = None) -> str:
    return (enricher or RuleEnricher())(prompt, frames=frames, seed=seed)
