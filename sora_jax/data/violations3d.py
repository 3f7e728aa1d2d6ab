"""Impossible PhysWorld 3D clips: IntPhys-style quadruplets for the likelihood test, and doctored
renders that the 3D probes must score low.

    quad = quadruplet(seed=3, kind="depth_pop")
    quad.possible, quad.impossible      # two uint8 [T, H, W, 3] clips each
    doctored(clip, "mirror")            # the clip with its second half mirrored

Quadruplet kinds (A is the scene, B the scene edited from frame 0; both possible; the impossible
clips switch from one to the other at the start of a latent frame, `frame`, but for the last three):
- `depth_pop`: a still object stands farther from the camera in B (0.9-1.3 units): it pops to
  another depth;
- `depth_nudge`: the same, by 0.3-0.45 units: a few pixels of size and height — a subtler
  violation, for ranking rungs that all catch `depth_pop`;
- `shape_pop`: a still object has another shape in B (same color, place and size): it turns from,
  say, a cube into a sphere within one shot — only its outline and shading change;
- `cut_swap`: a clip that cuts to another view; B gives one object another color, so the view
  after the cut shows an object swapped.
- `parallax_reversed`: A orbits one way, B the mirrored way from the same first frame; the
  impossible clips draw A's objects over B's ground (and shadows) and B's over A's, so the
  objects' parallax runs against the ground's. Every pixel layer appears once among the possible
  clips and once among the impossible ones; `frame` is 1, where the views part.
- `shadow_flip`: B is lit from the light mirrored about the vertical (the same height, the other
  side); the impossible clips shade the objects from one light and cast their shadows from the
  other, so every shadow falls toward the side the objects are lit from. Nothing switches: the
  violation holds in every frame (`frame` 0), smoothly — the kind a model cannot catch by a
  discontinuity alone. (Training clips are all lit from one side: B is possible but unseen.)
- `size_drift`: the camera dollies; a still object is larger in B by the dolly's ratio of
  distances (its start and end distance from the camera). The impossible clips grow it smoothly
  from A's size to B's — so it keeps its size in the picture as the camera pulls away (or shrinks
  as the camera comes closer), as if fixed to the lens — and shrink it back from B's to A's, at
  twice perspective's rate. Nothing switches (`frame` 0); the first frames match A and B, the
  last B and A.

- `hidden_swap`: the camera orbits; a small still object passes behind a large one (the scene's
  still pair resized and placed so that it does) and is wholly hidden at the switch; B gives it
  another color. The impossible clips show one object go behind and another come out. The frames
  around the switch are the same in all four clips: only a model that remembers what went behind
  can tell (the dog on the windowsill while people pass in front).

Doctored kinds (for the probes): `drift` (a still object slides against the camera's motion),
`warp` (one frame shifted and scaled, the others untouched), `mirror` (the view mirrors halfway).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from sora_jax.data import camera3d, captions3d, palette
from sora_jax.data import physworld3d as p3d
from sora_jax.data.quadruplets import Quadruplet

KINDS = ("depth_pop", "cut_swap", "parallax_reversed", "depth_nudge", "shape_pop", "shadow_flip", "size_drift",
         "hidden_swap")
MIRRORED_LIGHT = p3d.LIGHT * np.array([-1.0, -1.0, 1.0])  # the light from the other side, as high
_DEPTH_STEP = {"depth_pop": (0.9, 1.3), "depth_nudge": (0.3, 0.45)}  # ground units farther away
DOCTORED = ("drift", "warp", "mirror")
_SEARCH = 64
_SPOTS = [np.array([x, y]) for x in np.linspace(-1.5, 1.5, 5) for y in np.linspace(-1.5, 1.5, 5)]
_RENDERED_WAYS = 4  # hiding places rendered per scene and frame, most slack first
_HIDE_TOLERANCE = 1.5  # px
_SEEN = 0.5  # the hidden object shows this share of its pixels in some frame before and after (orbits at
# this size part the pair too slowly to show it whole on both sides of a full hiding)


def _replace(scene: p3d.Scene3D, index: int, **changes) -> p3d.Scene3D:
    """The scene with object `index` changed as `changes` say."""
    objects = list(scene.objects)
    objects[index] = dataclasses.replace(objects[index], **changes)
    return dataclasses.replace(scene, objects=tuple(objects))


def _edit(scene: p3d.Scene3D, kind: str, index: int, rng: np.random.Generator) -> p3d.Scene3D | None:
    obj = scene.objects[index]
    if kind == "cut_swap":
        unused = [c for c in range(len(palette.COLOR_NAMES)) if c not in {o.color for o in scene.objects}]
        return _replace(scene, index, color=int(rng.choice(unused)))
    if kind == "shape_pop":
        changes = {"shape": int(rng.choice([s for s in range(len(p3d.SHAPE_NAMES)) if s != obj.shape]))}
    else:
        away = np.asarray(obj.position) - scene.path.position[0, :2]  # farther along the camera's line of sight
        target = np.asarray(obj.position) + away / np.linalg.norm(away) * rng.uniform(*_DEPTH_STEP[kind])
        changes = {"position": (float(target[0]), float(target[1]))}
    edited = _replace(scene, index, **changes)
    changed, where = edited.objects[index], np.asarray(edited.objects[index].position)
    if np.abs(where).max() > p3d.ARENA - changed.reach:
        return None
    others = [o for i, o in enumerate(scene.objects) if i != index]
    if any(np.hypot(*(where - np.asarray(o.position))) < changed.reach + o.reach + 0.1 for o in others):
        return None
    return edited


def mirrored_orbit(path: camera3d.CameraPath) -> camera3d.CameraPath:
    """The orbit the other way round: each frame's azimuth about the target reflected through the
    first frame's (elevation and distance kept), looking at the target."""
    azimuth, elevation, distance = camera3d.orbit_pose(path.position)
    position = camera3d.orbit_position(2 * azimuth[0] - azimuth, elevation, distance)
    yaw, pitch = camera3d.look_at(position, camera3d.TARGET)
    return camera3d.CameraPath(position, yaw, pitch)


def _parallax_quadruplet(seed: int, frames: int, height: int, width: int) -> Quadruplet:
    orbit = p3d.WorldConfig(cut_prob=0.0, camera_probs=(0, 0.5, 0.5, 0, 0, 0, 0, 0, 0))
    clip = p3d.render_clip(seed, frames, height, width, orbit)
    other = dataclasses.replace(clip.scene, path=mirrored_orbit(clip.scene.path))
    b = p3d.render(other)[0]
    forward = p3d.render(clip.scene, ground_path=other.path)[0]
    backward = p3d.render(other, ground_path=clip.scene.path)[0]
    return Quadruplet((clip.video, b), (forward, backward), clip.caption, "parallax_reversed", 1)


def _shadow_quadruplet(seed: int, frames: int, height: int, width: int) -> Quadruplet:
    config = p3d.WorldConfig(cut_prob=0.0)
    for attempt in range(_SEARCH):
        clip = p3d.render_clip([seed, attempt], frames, height, width, config)
        b = p3d.render(clip.scene, light=MIRRORED_LIGHT)[0]
        forward = p3d.render(clip.scene, shadow_light=MIRRORED_LIGHT)[0]  # A's shading, B's shadows
        backward = p3d.render(clip.scene, light=MIRRORED_LIGHT, shadow_light=p3d.LIGHT)[0]
        # A shadow must show in every frame: its pixels differ between the two lights' shadows.
        if (np.abs(np.subtract(forward, clip.video, dtype=np.int16)).max(-1) > 8).any(axis=(1, 2)).all():
            return Quadruplet((clip.video, b), (forward, backward), clip.caption, "shadow_flip", 0)
    raise ValueError(f"no scene from seed {seed} casts a shadow in every frame in {_SEARCH} tries")


def _size_quadruplet(seed: int, frames: int, height: int, width: int) -> Quadruplet:
    dolly = p3d.WorldConfig(cut_prob=0.0, camera_probs=(0, 0, 0, 0.5, 0.5, 0, 0, 0, 0))
    for attempt in range(_SEARCH):
        clip = p3d.render_clip([seed, attempt], frames, height, width, dolly)
        scene, rng = clip.scene, np.random.default_rng([seed, attempt, 3])
        candidates = [i for i, o in enumerate(scene.objects)
                      if o.motion == 0 and clip.truth["visible"][:, i].min() > 0.5]
        if not candidates:
            continue
        index = int(rng.choice(candidates))
        obj = scene.objects[index]
        distance = np.linalg.norm(scene.path.position - clip.truth["centers_3d"][:, index], axis=-1)
        drift = distance / distance[0]  # the size that keeps the object's size in the picture
        ratio = float(drift[-1])
        # Every clip moves the others as A does; at its largest the object must keep clear of them
        # (a roller bounces off its first size) and of the arena's wall.
        reach = obj.reach * max(ratio, 1.0)
        centers = clip.truth["centers_3d"][:, :len(scene.objects), :2]
        gaps = [np.hypot(*(centers[:, i] - centers[:, index]).T).min() - o.reach
                for i, o in enumerate(scene.objects) if i != index]
        if np.abs(obj.position).max() > p3d.ARENA - reach or min(gaps, default=np.inf) < reach + 0.1:
            continue
        scales = np.ones((frames, len(scene.objects)))
        scales[:, index] = ratio
        b = p3d.render(scene, scales=scales)[0]  # possible: larger (dolly out) or smaller (in) all along
        scales[:, index] = drift
        forward = p3d.render(scene, scales=scales)[0]  # A's size to B's, as the camera moves
        scales[:, index] = ratio / drift
        backward = p3d.render(scene, scales=scales)[0]  # B's size back to A's
        return Quadruplet((clip.video, b), (forward, backward), clip.caption, "size_drift", 0)
    raise ValueError(f"no dolly scene from seed {seed} keeps a still object in view in {_SEARCH} tries")


def _behind(scene: p3d.Scene3D, frame: int) -> list[tuple[float, p3d.Scene3D, int]]:
    """The `_RENDERED_WAYS` best ways to hide a still object behind another at `frame - 1` and
    `frame`: (slack in pixels, the scene with that pair resized — the hidden one small, the one in
    front large — and placed, the front one where it stands or at a free spot of `_SPOTS`, the
    hidden one on the line of sight past it; the hidden one's index), most slack first; only those
    are built into scenes. The slack, in pixels of the picture
    (projected centers and sizes), is the least of: how far the hidden one's bounding disk keeps
    inside the front one's inscribed disk at the switch (give or take `_HIDE_TOLERANCE`: both
    disks are rough), and how far the two bounding disks come apart before and after. Rendering
    decides."""
    still = [i for i, o in enumerate(scene.objects) if o.motion == 0]
    focal = camera3d.focal(scene.height, scene.width)
    ways = []
    for front, hidden in itertools.permutations(still, 2):
        if p3d.SHAPE_NAMES[scene.objects[front].shape] == "pyramid":  # too narrow at the top to hide much
            continue
        big, small = _resized(scene.objects[front], 1), _resized(scene.objects[hidden], 0)
        others = [o for i, o in enumerate(scene.objects) if i not in (front, hidden)]
        for spot in [np.asarray(big.position), *_SPOTS]:
            sight = spot - scene.path.position[frame - 1, :2]
            sight /= np.linalg.norm(sight)
            for gap in np.linspace(0.1, 1.2, 6):
                where = spot + sight * (big.reach + small.reach + gap)
                placed = (dataclasses.replace(big, position=(float(spot[0]), float(spot[1]))),
                          dataclasses.replace(small, position=(float(where[0]), float(where[1]))))
                if any(np.abs(o.position).max() > p3d.ARENA - o.reach for o in placed) or any(
                        np.hypot(*np.subtract(a.position, b.position)) < a.reach + b.reach + 0.1
                        for a, b in itertools.combinations([*placed, *others], 2)):
                    continue
                centers = np.array([[*o.position, o.height / 2] for o in placed])
                xy, depth = camera3d.project(np.repeat(centers[None], scene.frames, 0), scene.path, scene.height,
                                             scene.width)
                apart = np.hypot(*(xy[:, 0] - xy[:, 1]).T)
                hidden_by = placed[0].radius * focal / depth[:, 0] - (apart + placed[1].bound * focal / depth[:, 1])
                clear_of = apart - (placed[0].bound * focal / depth[:, 0] + placed[1].bound * focal / depth[:, 1])
                slack = min(hidden_by[frame - 1:frame + 1].min() + _HIDE_TOLERANCE, clear_of[:frame - 1].max(),
                            clear_of[frame + 1:].max())
                ways.append((float(slack), front, hidden, placed))
    best = []
    for slack, front, hidden, placed in sorted(ways, key=lambda way: -way[0])[:_RENDERED_WAYS]:
        objects = list(scene.objects)
        objects[front], objects[hidden] = placed
        best.append((slack, dataclasses.replace(scene, objects=tuple(objects)), hidden))
    return best


def _resized(obj: p3d.Object3D, size: int) -> p3d.Object3D:
    """The object in size class `size` (its jitter kept)."""
    return dataclasses.replace(obj, size=size, radius=obj.radius * p3d.SIZE_RADII[size] / p3d.SIZE_RADII[obj.size])


def _hidden_quadruplet(seed: int, frames: int, height: int, width: int) -> Quadruplet:
    orbit = p3d.WorldConfig(cut_prob=0.0, camera_probs=(0, 0.5, 0.5, 0, 0, 0, 0, 0, 0))
    choices = p3d.middle_latent_boundaries(frames)
    for attempt in range(_SEARCH):
        rng = np.random.default_rng([seed, attempt, 3])
        scene = p3d.sample_scene(np.random.default_rng([seed, attempt]), frames, height, width, orbit)
        for frame in rng.permutation(choices):
            for _, candidate, index in _behind(scene, int(frame)):
                a, truth = p3d.render(candidate)
                seen = truth["visible"][:, index]
                if seen[frame - 1:frame + 1].max() > 0 or min(seen[:frame - 1].max(), seen[frame + 1:].max()) < _SEEN:
                    continue
                unused = [c for c in range(len(palette.COLOR_NAMES)) if c not in {o.color for o in candidate.objects}]
                b, _ = p3d.render(_replace(candidate, index, color=int(rng.choice(unused))))
                forward, backward = a.copy(), b.copy()
                forward[frame:], backward[frame:] = b[frame:], a[frame:]
                caption = captions3d.describe(candidate, np.random.default_rng([seed, attempt, 1]))
                return Quadruplet((a, b), (forward, backward), caption, "hidden_swap", int(frame))
    raise ValueError(f"no orbit from seed {seed} hides a still object behind another in {_SEARCH} tries")


def quadruplet(seed: int, kind: str, frames: int = 17, height: int = 32, width: int = 56) -> Quadruplet:
    """The first scene from `seed` on that admits `kind` (a still object in view; a cut)."""
    if kind not in KINDS:
        raise ValueError(f"violation kind {kind!r}; valid: {', '.join(KINDS)}")
    if frames < 9:
        raise ValueError(f"a 3D violation needs frames >= 9 (got {frames})")
    if kind == "parallax_reversed":
        return _parallax_quadruplet(seed, frames, height, width)
    if kind == "shadow_flip":
        return _shadow_quadruplet(seed, frames, height, width)
    if kind == "size_drift":
        return _size_quadruplet(seed, frames, height, width)
    if kind == "hidden_swap":
        return _hidden_quadruplet(seed, frames, height, width)
    config = p3d.WorldConfig(cut_prob=1.0 if kind == "cut_swap" else 0.0)
    for attempt in range(_SEARCH):
        rng = np.random.default_rng([seed, attempt, 3])
        clip = p3d.render_clip([seed, attempt], frames, height, width, config)
        scene = clip.scene
        if kind == "cut_swap":
            frame = scene.cut_frame
            candidates = [i for i in range(len(scene.objects)) if clip.truth["visible"][frame:, i].max() > 0.5]
        else:
            frame = p3d.latent_boundary_cut(frames, rng)
            candidates = [i for i, o in enumerate(scene.objects)
                          if o.motion == 0 and clip.truth["visible"][:, i].min() > 0.5]
        if not candidates or frame >= frames:
            continue
        edited = _edit(scene, kind, int(rng.choice(candidates)), rng)
        if edited is None:
            continue
        other, _ = p3d.render(edited)
        if np.array_equal(other[frame:], clip.video[frame:]):
            continue
        forward, backward = clip.video.copy(), other.copy()
        forward[frame:], backward[frame:] = other[frame:], clip.video[frame:]
        return Quadruplet((clip.video, other), (forward, backward), clip.caption, kind, frame)
    raise ValueError(f"no scene from seed {seed} admits a {kind!r} violation in {_SEARCH} tries")


def doctored(clip: p3d.Clip, kind: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """The clip's video broken as `kind` says (DOCTORED); the truth no longer matches it."""
    rng = rng or np.random.default_rng(0)
    video = clip.video.copy()
    frames = len(video)
    if kind == "mirror":
        video[frames // 2:] = video[frames // 2:, :, ::-1]
    elif kind == "warp":
        t = frames // 2
        height, width = video.shape[1:3]
        ys = np.clip((np.arange(height) * 0.8 + 0.1 * height).astype(int), 0, height - 1)
        xs = np.clip((np.arange(width) * 0.8 + 0.25 * width).astype(int), 0, width - 1)
        video[t] = clip.video[t][ys][:, xs]
    elif kind == "drift":
        scene = clip.scene
        still = [i for i, o in enumerate(scene.objects) if o.motion == 0]
        index = max(still, key=lambda i: clip.truth["visible"][:, i].mean())  # the one best seen
        # Slide it (rendered as a roller) while the table still calls it still.
        angle = rng.uniform(0, 2 * np.pi)
        video, _ = p3d.render(_replace(scene, index, motion=1, velocity=(0.06 * np.cos(angle), 0.06 * np.sin(angle))))
    else:
        raise ValueError(f"doctored kind {kind!r}; valid: {', '.join(DOCTORED)}")
    return video
