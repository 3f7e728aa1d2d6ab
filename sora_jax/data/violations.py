"""Impossible PhysWorld clips: the same scene with one violation of the world's rules from frame
`k` on, everything else pixel-identical (violation-of-expectation pairs, IntPhys-style).

    possible, impossible, info = violation_pair(seed=3, kind="vanish", frames=17, height=32, width=56)
    quad = quadruplet(seed=3, kind="vanish", frames=17, height=32, width=56)   # IntPhys-style

Kinds: `vanish` (an object is gone for good: behind an occluder when the scene has one hiding it,
else in the open), `teleport` (an object jumps sideways), `trail_erased` (a painter's trail
disappears), `color_change` (an object changes color). The impossible clip takes frames ≥ k
from a render of the edited scene (same background, camera and other objects), so the two
differ only where the edited object (or its trail) is.

A pair confounds the violation with content: a clip where an object vanishes has fewer object
pixels, which a likelihood model may simply find cheaper. `quadruplet` balances it as IntPhys
does: two possible clips (the scene, and the edited scene from the start) and two impossible ones
(each switching to the other at frame k) hold the same frames between them, so only the
switch separates the possible from the impossible.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sora_jax.data import palette, physworld

KINDS = ("vanish", "teleport", "trail_erased", "color_change")


@dataclasses.dataclass(frozen=True)
class Violation:
    kind: str
    object_index: int
    frame: int  # the first frame that differs
    behind_occluder: bool  # vanish: the object was mostly hidden when it went


def _candidates(scene: physworld.Scene, kind: str) -> list[int]:
    moving = [i for i, o in enumerate(scene.objects) if not o.paints]
    if kind == "trail_erased":
        return [i for i, o in enumerate(scene.objects) if o.paints]
    if kind == "color_change":
        return list(range(len(scene.objects))) if len(scene.objects) < len(palette.COLOR_NAMES) else []
    return moving


def _edit(scene: physworld.Scene, kind: str, index: int, rng: np.random.Generator) -> physworld.Scene:
    objects = list(scene.objects)
    obj = objects[index]
    if kind == "vanish":
        del objects[index]
    elif kind == "teleport":
        shift = rng.choice([-1, 1]) * rng.uniform(0.3, 0.45) * scene.width
        x = float(np.clip(obj.position[0] + shift, obj.radius, scene.world_width - obj.radius))
        objects[index] = dataclasses.replace(obj, position=(x, obj.position[1]))
    elif kind == "trail_erased":
        objects[index] = dataclasses.replace(obj, paints=False)
    else:
        used = {o.color for o in scene.objects}
        objects[index] = dataclasses.replace(obj, color=int(rng.choice([c for c in range(len(palette.COLOR_NAMES))
                                                                        if c not in used])))
    return dataclasses.replace(scene, objects=tuple(objects))


def violation_pair(seed: int, kind: str, frames: int, height: int, width: int,
                   config: physworld.WorldConfig = physworld.WorldConfig()):
    """(possible Clip, impossible uint8 video, Violation) for the first scene from `seed` on
    that admits `kind` (a painter for trail_erased, a non-painter otherwise)."""
    return _pair_and_edit(seed, kind, frames, height, width, config)[:3]


def _pair_and_edit(seed: int, kind: str, frames: int, height: int, width: int, config: physworld.WorldConfig,
                   tries: int = 64):
    if kind not in KINDS:
        raise ValueError(f"violation kind {kind!r}; valid: {', '.join(KINDS)}")
    if frames < 5:
        raise ValueError(f"a violation needs frames >= 5 (got {frames})")
    for attempt in range(tries):
        rng = np.random.default_rng([seed, attempt, 7])
        clip = physworld.render_clip([seed, attempt], frames, height, width, config)
        candidates = _candidates(clip.scene, kind)
        if not candidates:
            continue
        index = int(rng.choice(candidates))
        visible = clip.truth["visible"][:, index]
        frame = int(rng.integers(frames // 3, 2 * frames // 3 + 1))
        hidden = [t for t in range(2, frames - 1) if visible[t] < 0.3 and visible[t - 1] > visible[t]]
        behind = kind == "vanish" and bool(hidden) and bool(clip.scene.occluders)
        if behind:
            frame = hidden[0]
        if kind != "vanish" and visible[frame:].max() < 0.5:
            continue  # the edit would not be seen
        edited, edited_truth = physworld.render(_edit(clip.scene, kind, index, rng))
        impossible = clip.video.copy()
        impossible[frame:] = edited[frame:]
        if np.array_equal(impossible, clip.video):
            continue
        region = _object_region(clip.truth, index, (frames, height, width))
        if kind != "vanish":
            region |= _object_region(edited_truth, index, (frames, height, width))
        return clip, impossible, Violation(kind, index, frame, behind), edited, region
    raise ValueError(f"no scene from seed {seed} admits a {kind!r} violation in {tries} tries")


def _object_region(truth: dict, index: int, shape, margin: int = 2) -> np.ndarray:
    """bool [T, H, W]: object `index`'s boxes and every trail pixel, grown by `margin` px (soft edges)."""
    from scipy import ndimage

    region = ndimage.binary_dilation(truth["trail_paint"] > 0, np.ones((1, 2 * margin + 1, 2 * margin + 1), bool))
    frames, height, width = shape
    for t in range(frames):
        x0, y0, x1, y1 = truth["boxes"][t, index]
        if np.isnan(x0):
            continue
        ys = slice(max(0, int(np.floor(y0)) - margin), max(0, int(np.ceil(y1)) + margin))
        xs = slice(max(0, int(np.floor(x0)) - margin), max(0, int(np.ceil(x1)) + margin))
        region[t, ys, xs] = True
    return region


@dataclasses.dataclass(frozen=True)
class Quadruplet:
    possible: tuple[np.ndarray, np.ndarray]  # the scene; the edited scene from frame 0
    impossible: tuple[np.ndarray, np.ndarray]  # scene then edited from frame k; edited then scene
    caption: str  # the unedited scene's caption
    violation: Violation
    region: np.ndarray  # bool [T, H, W]: where the clips may differ (the edited object, trails)


def quadruplet(seed: int, kind: str, frames: int, height: int, width: int,
               config: physworld.WorldConfig = physworld.WorldConfig()) -> Quadruplet:
    clip, impossible, violation, edited, region = _pair_and_edit(seed, kind, frames, height, width, config)
    reverse = edited.copy()
    reverse[violation.frame:] = clip.video[violation.frame:]
    return Quadruplet((clip.video, edited), (impossible, reverse), clip.caption, violation, region)
