"""World probes for PhysWorld 3D (`data/physworld3d.py`): what a video gets right about a 3D scene
under a moving camera, measured from pixels against what its prompt asked for.

Objects are the saturated pixels (ground, sky and shadows are gray; a paint mark is a paler
shade); the hue names the palette color, and a scene holds each color at most once, so a color's
pixels in a frame are one object's: its centroid and apparent size (sqrt of its area) per frame.

    rigidity          3D consistency: the still objects, placed in 3D from their centroid and
                      apparent size (depth ~ 1 / size, the world's known field of view), keep their
                      distances to one another and move smoothly while the camera moves (a drifting
                      object, an inconsistently warped frame or a mirrored view break it)
    camera_move       the named camera move recovered from the image motion (block matching, an
                      affine flow per frame pair: a pan shifts, an orbit shears, a crane stretches,
                      a dolly spreads)
    permanence        no object vanishes or appears away from the frame's border and other objects
    shot_colors       the same objects (colors) on both sides of a cut (Jaccard of the color sets)
    shot_order        their left-to-right order after the cut as the new view implies (kept for a
                      view from above, closer or wider; reversed from the other side)

Each probe scores one video; `score_videos` gives bootstrap 95 % CIs. Run them on ground truth and
on VAE reconstructions for the ceilings (`experiments/physworld3d_probes.py`).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import ndimage

from sora_jax.data import palette, physworld3d
from sora_jax.evaluation.metrics import to_unit
from sora_jax.evaluation.probes import bootstrap_mean

COLORS = len(palette.COLOR_NAMES)
MIN_SATURATION, MIN_VALUE = 0.72, 0.18  # object pixels; a paint mark's saturation is ~0.65
MIN_AREA = 3  # pixels
RIGID_TOLERANCE = 0.25  # relative change of a distance between still objects (sizes read to ~10 %)
JUMP_TOLERANCE = 0.35  # a still object's step between frames, relative to its distance to the others
BAD_FRAMES = 0.1  # a clip is rigid when at most this share of its frames breaks a tolerance
# Apparent size (sqrt of the silhouette's area) * depth / (focal * radius) per shape: the medians
# over ground-truth renders (10th-90th percentiles within ~10 %).
SIZE_FACTOR = {"sphere": 1.73, "cube": 2.41, "pyramid": 1.62}
_CHROMA = palette.OBJECT_COLORS / palette.OBJECT_COLORS.max(1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Track:
    """One color's per-frame measurements (NaN where it is not seen)."""

    x: np.ndarray
    y: np.ndarray
    size: np.ndarray  # sqrt(area) in pixels
    clean: np.ndarray  # bool: seen whole (not at the border, not touching another object)
    border: np.ndarray  # bool: seen touching the border


def segment(video: np.ndarray) -> np.ndarray:
    """int [T, H, W]: the palette color of each object pixel, -1 elsewhere."""
    rgb = to_unit(video).astype(np.float32)
    high, low = rgb.max(-1), rgb.min(-1)
    saturated = (high > MIN_VALUE) & ((high - low) > MIN_SATURATION * np.maximum(high, 1e-6))
    chroma = rgb / np.maximum(high, 1e-6)[..., None]
    nearest = ((chroma[..., None, :] - _CHROMA) ** 2).sum(-1).argmin(-1)
    return np.where(saturated, nearest, -1)


def tracks(labels: np.ndarray, margin: int = 1) -> dict[int, Track]:
    """Per color present anywhere: its track over the frames."""
    frames, height, width = labels.shape
    result = {}
    ys, xs = np.mgrid[:height, :width]
    for color in range(COLORS):
        mask = labels == color
        area = mask.sum((1, 2))
        if (area >= MIN_AREA).sum() == 0:
            continue
        seen = area >= MIN_AREA
        safe = np.maximum(area, 1)
        x = np.where(seen, (mask * xs).sum((1, 2)) / safe + 0.5, np.nan)
        y = np.where(seen, (mask * ys).sum((1, 2)) / safe + 0.5, np.nan)
        edge = np.zeros_like(mask)
        edge[:, :margin + 1], edge[:, -margin - 1:], edge[:, :, :margin + 1], edge[:, :, -margin - 1:] = (True,) * 4
        border = seen & (mask & edge).any((1, 2))
        others = (labels >= 0) & ~mask
        grown = mask.copy()
        for axis, shift in ((1, 1), (1, -1), (2, 1), (2, -1)):
            grown |= np.roll(mask, shift, axis)
        touching = (grown & others).any((1, 2))
        result[color] = Track(x, y, np.where(seen, np.sqrt(area), np.nan), seen & ~border & ~touching, border)
    return result


def find_cut(video: np.ndarray) -> int:
    """The frame where the picture changes most (the first frame of the second shot)."""
    if len(video) < 3:
        return len(video)
    change = np.abs(np.diff(to_unit(video).astype(np.float32), axis=0)).mean((1, 2, 3))
    return int(change.argmax()) + 1


def _points(track: Track, scale: float, focal: float, height: int, width: int) -> np.ndarray:
    """[T, 3]: the object's center in camera coordinates (world units; NaN where not seen whole),
    its depth from its apparent size: size ~ SIZE_FACTOR * focal * radius / depth."""
    ray = np.stack([track.x - width / 2, track.y - height / 2, np.full_like(track.x, focal)], -1)
    return np.where(track.clean[:, None], ray * (scale / track.size)[:, None], np.nan)


def still_scales(objects: np.ndarray) -> dict[int, float]:
    """Per still object's color: SIZE_FACTOR[shape] * its size class's radius."""
    return {int(c): SIZE_FACTOR[physworld3d.SHAPE_NAMES[shape]] * physworld3d.SIZE_RADII[size]
            for c, shape, size, motion, _ in objects if c >= 0 and motion == 0}


def rigidity(found: dict[int, Track], scales: dict[int, float], frames: slice, focal: float, height: int,
             width: int) -> float:
    """1 if in all but BAD_FRAMES of the frames seen with two or more still objects every pair of
    them keeps its 3D distance within RIGID_TOLERANCE of its median and none jumps, 0 otherwise;
    NaN if no pair of still objects is seen whole in three frames. `scales`: `still_scales`."""
    points = {c: _points(found[c], scale, focal, height, width)[frames] for c, scale in scales.items() if c in found}
    errors = []
    for a, b in itertools.combinations(points, 2):
        both = np.isfinite(points[a][:, 0]) & np.isfinite(points[b][:, 0])
        if both.sum() < 3:
            continue
        distance = np.linalg.norm(points[a] - points[b], axis=-1)
        typical = np.median(distance[both])
        error = np.abs(distance / typical - 1)
        jump = np.concatenate([[0.0], np.maximum(*(np.linalg.norm(np.diff(p, axis=0), axis=-1)
                                                   for p in (points[a], points[b])))]) / typical
        bad = (error > RIGID_TOLERANCE) | (np.nan_to_num(jump) > JUMP_TOLERANCE)
        errors.append(np.where(both, bad.astype(float), np.nan))
    if not errors:
        return float("nan")
    stacked = np.stack(errors)
    seen = np.isfinite(stacked).any(0)
    if not seen.any():
        return float("nan")
    return float(np.nanmax(stacked[:, seen], axis=0).mean() <= BAD_FRAMES)


def global_flow(video: np.ndarray, block: int = 8, search: int = 3) -> np.ndarray:
    """Block matching between consecutive frames: float [T-1, B, 4] of (y, x, dy, dx) in pixels
    per block of `block` px (half-overlapping); dy, dx NaN where the block has no texture."""
    gray = to_unit(video).astype(np.float32).mean(-1)
    frames, height, width = gray.shape
    current, following = gray[:-1], np.pad(gray[1:], ((0, 0), (search, search), (search, search)), mode="edge")
    ys = np.arange(block // 2, height - block // 2 + 1, block // 2)
    xs = np.arange(block // 2, width - block // 2 + 1, block // 2)
    shifts = [(dy, dx) for dy in range(-search, search + 1) for dx in range(-search, search + 1)]
    errors = np.stack([ndimage.uniform_filter(
        np.abs(following[:, search + dy:search + dy + height, search + dx:search + dx + width] - current),
        size=(1, block, block))[:, ys][:, :, xs] for dy, dx in shifts])  # [S, T-1, Y, X]
    mean = ndimage.uniform_filter(current, size=(1, block, block))
    variance = ndimage.uniform_filter(current**2, size=(1, block, block)) - mean**2
    texture = np.sqrt(np.maximum(variance, 0))[:, ys][:, :, xs]
    best = np.array(shifts, np.float32)[errors.argmin(0)]  # [T-1, Y, X, 2]
    best[texture < 0.01] = np.nan
    grid_y, grid_x = np.meshgrid(ys.astype(np.float32), xs.astype(np.float32), indexing="ij")
    centers = np.broadcast_to(np.stack([grid_y, grid_x], -1), best.shape)
    return np.concatenate([centers, best], -1).reshape(frames - 1, -1, 4)


def move_features(video: np.ndarray) -> np.ndarray | None:
    """The image motion per frame, as an affine flow field fitted per frame pair and averaged:
    (u0, du/dx, du/dy, v0, dv/dx, dv/dy) with u, v in frame widths / heights and x, y centered
    in frame units; None when fewer than two frame pairs have texture to match."""
    if len(video) < 2:
        return None
    height, width = video.shape[1:3]
    flow = global_flow(video)
    y, x = flow[..., 0] / height - 0.5, flow[..., 1] / width - 0.5
    v, u = flow[..., 2] / height, flow[..., 3] / width
    design = np.stack([np.ones_like(x), x, y], -1)
    fits = []
    for t in range(len(flow)):
        ok = np.isfinite(u[t])
        if ok.sum() >= 4:
            fits.append(np.concatenate([np.linalg.lstsq(design[t][ok], target[t][ok], rcond=None)[0]
                                        for target in (u, v)]))
    return np.mean(fits, 0) if len(fits) >= 2 else None


# Thresholds on `move_features`, read off ground-truth renders (`experiments/physworld3d_probes.py`
# prints each move's feature quantiles): a pan shifts everything sideways, an orbit shears the
# ground (near and far slide opposite ways), a crane stretches it vertically, a dolly spreads it.
PAN_SHIFT, ORBIT_SHEAR, CRANE_STRETCH, DOLLY_SPREAD = 0.01, 0.02, 0.02, 0.006


def classify_move(features: np.ndarray | None) -> str | None:
    """The camera move an image motion shows (None when nothing could be matched)."""
    if features is None:
        return None
    u0, du_dx, du_dy, _, _, dv_dy = features
    if abs(u0) > PAN_SHIFT:
        return "pan_left" if u0 > 0 else "pan_right"  # turning left sweeps the scene right
    if abs(du_dy) > ORBIT_SHEAR:  # orbiting left, the near ground (low in the frame) slides right
        return "orbit_left" if du_dy > 0 else "orbit_right"
    if abs(dv_dy) > CRANE_STRETCH:
        return "crane_up" if dv_dy > 0 else "crane_down"
    if abs(du_dx) > DOLLY_SPREAD:
        return "dolly_in" if du_dx > 0 else "dolly_out"
    return "static"


def permanence(found: dict[int, Track], labels: np.ndarray, frames: slice, margin: int = 2) -> float:
    """1 if, within the shot, no object vanishes or appears except at the frame's border or next
    to another object (which may hide it); 0 otherwise."""
    objects = labels >= 0
    for color, track in found.items():
        seen = np.isfinite(track.x[frames])
        offset = frames.start or 0
        for step in np.flatnonzero(seen[1:] != seen[:-1]):
            t = offset + step + (0 if seen[step] else 1)  # the frame where it is seen, beside the change
            near_other = _beside(labels[t] == color, objects[t] & (labels[t] != color), margin)
            if not (track.border[t] or near_other or _at_edge(labels[t] == color, margin)):
                return 0.0
    return 1.0


def _beside(mask: np.ndarray, other: np.ndarray, margin: int) -> bool:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return False
    region = other[max(0, ys.min() - margin):ys.max() + margin + 1, max(0, xs.min() - margin):xs.max() + margin + 1]
    return bool(region.any())


def _at_edge(mask: np.ndarray, margin: int) -> bool:
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return bool(ys.size) and (ys.min() <= margin or xs.min() <= margin or ys.max() >= height - 1 - margin
                              or xs.max() >= width - 1 - margin)


def shot_consistency(found: dict[int, Track], cut_frame: int, cut: str, frames: int, window: int = 2
                     ) -> tuple[float, float]:
    """(shot_colors, shot_order) across the cut at `cut_frame`: the Jaccard overlap of the colors
    seen in the `window` frames before and after it, and the share of pairs seen on both sides
    whose left-to-right order is as the new view implies (NaN with fewer than two)."""
    before = slice(max(0, cut_frame - window), cut_frame)
    after = slice(cut_frame, min(frames, cut_frame + window))
    x_before = {c: np.nanmean(t.x[before]) for c, t in found.items() if np.isfinite(t.x[before]).any()}
    x_after = {c: np.nanmean(t.x[after]) for c, t in found.items() if np.isfinite(t.x[after]).any()}
    union = set(x_before) | set(x_after)
    colors = len(set(x_before) & set(x_after)) / len(union) if union else float("nan")
    both = sorted(set(x_before) & set(x_after))
    expected = physworld3d.CUT_ORDER[cut]
    agree = [np.sign(x_before[a] - x_before[b]) * np.sign(x_after[a] - x_after[b]) == expected
             for a, b in itertools.combinations(both, 2)]
    return colors, float(np.mean(agree)) if agree else float("nan")


def score_video(video: np.ndarray, objects: np.ndarray, camera: int, cut: int) -> dict[str, float]:
    """The probes for one video against its prompt's scene: its object table
    (`physworld3d.object_table`), camera move (index into CAMERA_NAMES) and cut (-1: none)."""
    frames, height, width = video.shape[:3]
    labels = segment(video)
    found = tracks(labels)
    cut_frame = find_cut(video) if cut >= 0 else frames
    first = slice(0, cut_frame)
    scores = {"rigidity": rigidity(found, still_scales(objects), first, physworld3d.focal(height, width), height,
                                   width)}
    if frames > 1:
        move = classify_move(move_features(video[first]))
        scores["camera_move"] = float("nan") if move is None else float(move == physworld3d.CAMERA_NAMES[camera])
        shots = [first] if cut < 0 else [first, slice(cut_frame, frames)]
        scores["permanence"] = min(permanence(found, labels, shot) for shot in shots)
    if cut >= 0 and frames > 1:
        scores["shot_colors"], scores["shot_order"] = shot_consistency(found, cut_frame, physworld3d.CUT_NAMES[cut],
                                                                       frames)
    return scores


def score_videos(videos, objects, cameras, cuts) -> dict[str, dict]:
    """Each probe's mean and bootstrap CI over the videos (per-video NaNs are left out)."""
    per_video = [score_video(v, o, c, k) for v, o, c, k in zip(videos, objects, cameras, cuts)]
    keys = sorted({k for scores in per_video for k in scores})
    return {key: bootstrap_mean([scores.get(key, float("nan")) for scores in per_video]) for key in keys}
