"""Prompt enrichment: a short prompt becomes a caption like the ones the model was trained on.

    enrich("a red ball", seed=0)
    # -> "On a dark background, a small red ball bounces off the walls. The camera is still."

The `RuleEnricher` keeps what the prompt names — read by `prompt_parser.parse`: objects with
their count, color, shape, size, motion and trail, occluders, camera; coordination, subordinate
and relative clauses, counts announced before the objects — fills only what it leaves open with
draws from the training distribution (`physworld.WorldConfig`), and writes the caption with the
training captioner (`captions.describe`), so phrasing matches too. What the world cannot draw
(a direction, a position, a speed, an unknown color) is never silently changed: it is listed in
`Enrichment.unhonoured`, which `sora-jax sample` writes to the sidecar. Deterministic given the
seed. Another enricher (a language model, say) plugs in through the `Enricher` protocol.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from sora_jax import prompt_parser
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


@dataclasses.dataclass
class Enrichment:
    """A caption and what went into it: the scene it describes (named fields kept, the rest
    drawn) and what the prompt asked that the world cannot draw. Written to sample sidecars."""

    prompt: str
    caption: str
    objects: list[dict]  # {color, shape, size, motion, paints} names, in the prompt's order
    occluders: int
    camera: str
    unhonoured: list[str]


class RuleEnricher:
    """Keeps what a prompt names (`prompt_parser.parse`), draws the rest from the PhysWorld
    training distribution, and writes the caption with the training captioner."""

    def __init__(self, world: physworld.WorldConfig | None = None):
        self.world = world or physworld.WorldConfig()

    def __call__(self, prompt: str, *, frames: int, seed: int) -> str:
        return self.enrichment(prompt, frames=frames, seed=seed).caption

    def enrichment(self, prompt: str, *, frames: int, seed: int) -> Enrichment:
        rng = np.random.default_rng([seed, 7919])
        request = prompt_parser.parse(prompt, frames)
        named = request.objects or [prompt_parser.ObjectRequest() for _ in range(
            int(rng.integers(self.world.min_objects, self.world.max_objects + 1)))]
        objects = [self._object(obj, frames, rng) for obj in named]
        occluders = request.occluders
        if occluders is None:
            occluders = int(rng.integers(0, self.world.max_occluders + 1))
        camera = self._camera(request.camera, frames, rng)
        scene = _Scene(frames, tuple(objects), ((0.0, 0.0, 0.0, 0.0),) * occluders, camera)
        caption = captions.describe(scene, rng)
        described = [{"color": palette.COLOR_NAMES[o.color], "shape": palette.SHAPE_NAMES[o.shape],
                      "size": palette.SIZE_NAMES[o.size], "motion": palette.MOTION_NAMES[o.motion],
                      "paints": bool(o.paints)} for o in objects]
        return Enrichment(prompt, caption, described, occluders, palette.CAMERA_NAMES[camera],
                          list(request.unhonoured))

    def _object(self, obj: prompt_parser.ObjectRequest, frames: int, rng) -> physworld.ObjectSpec:
        color = palette.COLOR_NAMES.index(obj.color) if obj.color else int(rng.integers(len(palette.COLOR_NAMES)))
        if obj.shape:
            shape = palette.SHAPE_NAMES.index(obj.shape)
        else:
            allowed = [i for i, name in enumerate(palette.SHAPE_NAMES)
                       if (palette.COLOR_NAMES[color], name) not in self.world.holdout]
            shape = int(rng.choice(allowed))
        size = palette.SIZE_NAMES.index(obj.size) if obj.size else int(rng.integers(len(palette.SIZE_NAMES)))
        probs = np.asarray(self.world.motion_probs, np.float64)
        if obj.motion in palette.MOTION_NAMES:
            motion = palette.MOTION_NAMES.index(obj.motion)
        elif obj.motion == "moving":  # named as moving (a verb, a trail, a direction): bounce or fall
            moving = probs * (np.arange(len(probs)) != palette.MOTION_NAMES.index("still"))
            motion = int(rng.choice(len(probs), p=moving / moving.sum()))
        else:
            motion = int(rng.choice(len(probs), p=probs))
        still = motion == palette.MOTION_NAMES.index("still")
        if frames == 1 or still:
            paints = False
        elif obj.paints is not None:
            paints = obj.paints
        else:
            paints = bool(rng.random() < self.world.painter_prob)
        return physworld.ObjectSpec(color, shape, size, motion, paints, 0.0, (0.0, 0.0), (0.0, 0.0))

    def _camera(self, named: str | None, frames: int, rng) -> int:
        if frames == 1:
            return palette.CAMERA_NAMES.index("static")
        if named in palette.CAMERA_NAMES:
            return palette.CAMERA_NAMES.index(named)
        if named == "pan" or rng.random() < self.world.pan_prob:
            return palette.CAMERA_NAMES.index(str(rng.choice(["pan_left", "pan_right"])))
        return palette.CAMERA_NAMES.index("static")


def enrich(prompt: str, *, frames: int = 17, seed: int = 0, enricher: Enricher | None = None) -> str:
    return (enricher or RuleEnricher())(prompt, frames=frames, seed=seed)


def enrichment(prompt: str, *, frames: int = 17, seed: int = 0) -> Enrichment:
    """The rule enricher's caption with the scene it describes and its unhonoured requests."""
    return RuleEnricher().enrichment(prompt, frames=frames, seed=seed)
