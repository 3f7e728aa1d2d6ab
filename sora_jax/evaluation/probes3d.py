"""World probes for PhysWorld 3D (`data/physworld3d.py`): what a video gets right about a 3D scene
under a moving camera, measured from pixels against what its prompt asked for.

Objects are the saturated pixels (ground, sky and shadows are gray; a paint mark is a paler
shade); the hue names the palette color, and a scene holds each color at most once, so a color's
pixels in a frame are one object's: its centroid and apparent size (sqrt of its area) per frame.

    anchoring         3D consistency of still objects: each moves in the picture as the ground
                      around its base does, whatever the camera does (a drifting object slips)
    smooth_view       3D consistency of the view: no frame jumps away from its neighbours (a warped
                      or mirrored frame does; the cut is exempt)
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
ANCHOR_TOLERANCE = 0.5  # a still object's summed slip over the ground, in its own sizes
LK_ITERATIONS = 5
SLIP_SIGNIFICANCE = 3.0  # standard errors: a slip this consistent is a drift, not matching noise
SLIP_NOISE_FLOOR = 0.15  # px: the least per-pair spread assumed (a few pairs can look noiseless)
STRIDE = 1  # anchoring compares frames this far apart (longer steps alias on the checkered ground)
BREAK_FACTOR = 3.0  # a frame pair breaks when its matching error is this many times the clip's median
_CHROMA = palette.OBJECT_COLORS / palette.OBJECT_COLORS.max(1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Track:
    """One color's per-frame measurements (NaN where it is not seen)."""

    x: np.ndarray
    y: np.ndarray
    size: np.ndarray  # sqrt(area) in pixels
    base_y: np.ndarray  # the bottom edge (the lowest pixel of each column, averaged): where it meets the ground
    clean: np.ndarray  # bool: seen whole (not at the border, not touching another object)
    border: np.ndarray  # bool: seen touching the border


@dataclasses.dataclass(frozen=True)
class Picture:
    """A video as the probes read it, converted once (`picture`): RGB in [0, 1] (float32), its
    gray, and per pixel the nearest palette hue, the chroma range (max - min) and whether it is
    saturated. Indexing slices frames."""

    rgb: np.ndarray  # [T, H, W, 3]
    gray: np.ndarray  # [T, H, W]
    hue: np.ndarray
    spread: np.ndarray
    saturated: np.ndarray

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.rgb.shape

    def __getitem__(self, frames) -> Picture:
        return Picture(*(getattr(self, f.name)[frames] for f in dataclasses.fields(self)))


def picture(video: np.ndarray | Picture) -> Picture:
    """The video read once for every probe (a `Picture` passes through)."""
    if isinstance(video, Picture):
        return video
    rgb = to_unit(video).astype(np.float32)
    high, low = rgb.max(-1), rgb.min(-1)
    saturated = (high > MIN_VALUE) & ((high - low) > MIN_SATURATION * np.maximum(high, 1e-6))
    chroma = rgb / np.maximum(high, 1e-6)[..., None]
    hue = ((chroma[..., None, :] - _CHROMA) ** 2).sum(-1).argmin(-1)
    return Picture(rgb, rgb.mean(-1), hue, high - low, saturated)


def segment(video: np.ndarray | Picture) -> np.ndarray:
    """int [T, H, W]: the palette color of each object pixel, -1 elsewhere."""
    view = picture(video)
    return np.where(view.saturated, view.hue, -1)


def _edge_cover(inside: np.ndarray, beyond: np.ndarray, same_hue: np.ndarray) -> np.ndarray:
    """How far (0..1 px) an outline reaches into the pixel beyond its last labeled one: the chroma
    of that pixel over the chroma of the labeled one next to it (the ground is gray, so a pixel
    the object half covers shows about half its chroma)."""
    return np.where(same_hue, np.clip(beyond / np.maximum(inside, 1e-6), 0, 1), 0.0)


def _subpixel(mask: np.ndarray, spread: np.ndarray, hue_match: np.ndarray) -> tuple[float, float]:
    """(x center, bottom edge) of one frame's mask to a fraction of a pixel: per row the midpoint
    of its left and right edges, per column its bottom edge, each pushed past the last labeled
    pixel by `_edge_cover`; averaged over rows and columns."""
    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    bottoms = []
    for col in cols:
        i = np.flatnonzero(mask[:, col])[-1]
        extra = _edge_cover(spread[i, col], spread[i + 1, col], hue_match[i + 1, col]) if i + 1 < height else 0.0
        bottoms.append(i + 1 + extra)
    centers = []
    for row in rows:
        found = np.flatnonzero(mask[row])
        left, right = found[0], found[-1]
        reach_left = _edge_cover(spread[row, left], spread[row, left - 1], hue_match[row, left - 1]) if left else 0.0
        reach_right = (_edge_cover(spread[row, right], spread[row, right + 1], hue_match[row, right + 1])
                       if right + 1 < width else 0.0)
        centers.append((left - reach_left + right + 1 + reach_right) / 2)
    return float(np.mean(centers)), float(np.mean(bottoms))


def tracks(labels: np.ndarray, margin: int = 1, video: np.ndarray | Picture | None = None) -> dict[int, Track]:
    """Per color present anywhere: its track over the frames. With the `video` the labels came
    from, x and the bottom edge are read to a fraction of a pixel (`_subpixel`)."""
    frames, height, width = labels.shape
    result = {}
    ys, xs = np.mgrid[:height, :width]
    view = None if video is None else picture(video)
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
        lowest = np.where(mask.any(1), height - 1 - np.argmax(mask[:, ::-1], axis=1), -1)  # [T, W]
        columns = np.maximum((lowest >= 0).sum(1), 1)
        base_y = np.where(seen, np.where(lowest >= 0, lowest + 1.0, 0).sum(1) / columns, np.nan)
        if view is not None:
            for t in np.flatnonzero(seen):
                x[t], base_y[t] = _subpixel(mask[t], view.spread[t], view.hue[t] == color)
        result[color] = Track(x, y, np.where(seen, np.sqrt(area), np.nan), base_y, seen & ~border & ~touching, border)
    return result


def find_cut(video: np.ndarray | Picture) -> int:
    """The frame where the picture changes most (the first frame of the second shot)."""
    if len(video) < 3:
        return len(video)
    change = np.abs(np.diff(picture(video).rgb, axis=0)).mean((1, 2, 3))
    return int(change.argmax()) + 1


def _match(current: np.ndarray, following: np.ndarray, box, keep: np.ndarray, search: int = 3
           ) -> np.ndarray | None:
    """Subpixel (dy, dx) moving `current`'s pixels inside `box` (y0, y1, x0, x1) where `keep`
    holds onto `following`: block matching, then Lucas-Kanade; None without enough texture."""
    y0, y1, x0, x1 = box
    height, width = current.shape
    y0, y1, x0, x1 = max(y0, search), min(y1, height - search), max(x0, search), min(x1, width - search)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return None
    patch, valid = current[y0:y1, x0:x1], keep[y0:y1, x0:x1]
    if valid.sum() < 8 or patch[valid].std() < 0.01:
        return None
    size = 2 * search + 1
    errors = np.empty((size, size))
    for i, dy in enumerate(range(-search, search + 1)):
        for j, dx in enumerate(range(-search, search + 1)):
            errors[i, j] = np.abs(following[y0 + dy:y1 + dy, x0 + dx:x1 + dx] - patch)[valid].mean()
    shift = np.array(np.unravel_index(errors.argmin(), errors.shape), np.float64) - search
    # Lucas-Kanade from the best whole-pixel shift: a parabola through the errors would lock onto
    # whole pixels, a bias that sums up over a shot's frame pairs.
    grad_y, grad_x = np.gradient(following)
    ys, xs = np.nonzero(valid)
    ys, xs = ys + y0, xs + x0
    target = current[ys, xs]
    for _ in range(LK_ITERATIONS):
        coords = np.stack([ys + shift[0], xs + shift[1]])
        sampled = ndimage.map_coordinates(following, coords, order=1, mode="nearest")
        jacobian = np.stack([ndimage.map_coordinates(g, coords, order=1, mode="nearest") for g in (grad_y, grad_x)], -1)
        normal = jacobian.T @ jacobian
        if np.linalg.cond(normal) > 1e4:
            break
        step = -np.linalg.solve(normal, jacobian.T @ (sampled - target))
        shift += np.clip(step, -1, 1)
        if np.abs(step).max() < 1e-3:
            break
    return shift


def anchoring(video: np.ndarray | Picture, labels: np.ndarray, found: dict[int, Track], still: list[int], frames: slice,
              stride: int = STRIDE) -> float:
    """3D consistency of the still objects: each must move in the picture exactly as the ground
    around its base does, whatever the camera does (a still object rests on the ground; one that
    slips across it under a camera move is not where the 3D scene puts it). Per frame pair the
    slip is the object's motion minus the ground's (each measured to ~0.3 px); an object slips
    when its summed slip exceeds ANCHOR_TOLERANCE of its size *and* is consistent — its mean
    over the pairs SLIP_SIGNIFICANCE standard errors from zero (measurement noise sums to a
    random walk, a drift to a line). 1 if no still object slips; 0 otherwise; NaN if no still
    object is seen whole in three frame pairs."""
    gray = picture(video).gray
    objects = labels >= 0
    grown = objects.copy()
    for axis, shift in ((1, 1), (1, -1), (2, 1), (2, -1)):
        grown |= np.roll(objects, shift, axis)
    start, stop = frames.start or 0, min(frames.stop or len(video), len(video))
    verdicts = []
    for color in still:
        if color not in found:
            continue
        track, steps = found[color], []
        for t in range(start, stop - stride, stride):
            if not (track.clean[t] and track.clean[t + stride]):
                continue
            ys, xs = np.nonzero(labels[t] == color)
            base = ys.max()
            # The ground beside and just under the base, on its rows: a row of the ground plane lies
            # at one depth (no roll), so it moves as the base does, while rows below it are nearer
            # and shear away under an orbit.
            ground = _match(gray[t], gray[t + stride], (base - 2, base + 3, xs.min() - 8, xs.max() + 9), ~grown[t],
                            search=3 * stride)
            if ground is not None:
                steps.append(np.array([track.base_y[t + stride] - track.base_y[t],
                                       track.x[t + stride] - track.x[t]]) - ground)
        if len(steps) < 3:
            continue
        steps = np.array(steps)
        error = np.maximum(steps.std(0, ddof=1), SLIP_NOISE_FLOOR) / np.sqrt(len(steps))
        consistent = float(np.sum((steps.mean(0) / error) ** 2)) >= SLIP_SIGNIFICANCE**2
        large = np.linalg.norm(steps.sum(0)) > ANCHOR_TOLERANCE * np.nanmedian(track.size[frames])
        verdicts.append(not (consistent and large))
    return float(all(verdicts)) if verdicts else float("nan")


def smooth_view(video: np.ndarray | Picture, shots: list[slice]) -> float:
    """1 if, within each shot, no frame pair matches far worse (BREAK_FACTOR) than the shot's
    others: a warped or mirrored frame, a jump of the view; 0 otherwise (NaN for fewer than four
    pairs in every shot)."""
    gray = picture(video).gray
    search, verdicts = 3, []
    for shot in shots:
        start, stop = shot.start or 0, min(shot.stop or len(video), len(video))
        if stop - start < 5:
            continue
        errors = []
        for t in range(start, stop - 1):
            shifted = np.stack([np.abs(np.roll(gray[t + 1], (dy, dx), (0, 1)) - gray[t])
                                for dy in range(-search, search + 1) for dx in range(-search, search + 1)])
            local = ndimage.uniform_filter(shifted, size=(1, 8, 8))[:, search:-search, search:-search]
            errors.append(float(np.median(local.min(0))))
        verdicts.append(max(errors) <= BREAK_FACTOR * max(float(np.median(errors)), 2e-3))
    return float(all(verdicts)) if verdicts else float("nan")


def global_flow(video: np.ndarray | Picture, block: int = 8, search: int = 3) -> np.ndarray:
    """Block matching between consecutive frames: float [T-1, B, 4] of (y, x, dy, dx) in pixels
    per block of `block` px (half-overlapping); dy, dx NaN where the block has no texture."""
    gray = picture(video).gray
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


def move_features(video: np.ndarray | Picture) -> np.ndarray | None:
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
    video = picture(video)
    frames, height, width = video.shape[:3]
    labels = segment(video)
    found = tracks(labels, video=video)
    cut_frame = find_cut(video) if cut >= 0 else frames
    first = slice(0, cut_frame)
    still = [int(c) for c, _, _, motion, _ in objects if c >= 0 and motion == 0]
    scores = {"anchoring": anchoring(video, labels, found, still, first)}
    if frames > 1:
        move = classify_move(move_features(video[first]))
        scores["camera_move"] = float("nan") if move is None else float(move == physworld3d.CAMERA_NAMES[camera])
        shots = [first] if cut < 0 else [first, slice(cut_frame, frames)]
        scores["smooth_view"] = smooth_view(video, shots)
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
