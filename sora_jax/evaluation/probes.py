"""World probes: what a generated PhysWorld video gets right about its world, measured from pixels.

No pretrained network: PhysWorld draws with a known palette, so a nearest-palette segmentation
finds objects (six colors), trails (their dim shades), occluders (gray) and background; connected
components of an object color are detections, and one color's detections over frames a track.
Each probe scores one video against what its prompt's scene asked for; `score_videos` aggregates
with bootstrap 95 % CIs. Higher is better except where the name says `_px` or `flicker` (errors).

    caption_colors / caption_shapes / caption_count   adherence to the scene's objects
    permanence                                        1 if no object vanishes or appears away from
                                                      occluders and borders (0 otherwise)
    continuity                                        1 if no object jumps (teleports) between frames
    color_constancy                                   1 if no object changes color
    trail_persistence                                 pixels ever painted still painted (or covered)
                                                      in the last frame (static camera)
    motion_residual_px                                deviation from constant velocity / gravity
    background_flicker                                mean |change| of background pixels (static camera, /255)
    pan_direction                                     the content moves the way the camera pans

Run the same probes on ground-truth renders and VAE reconstructions for the ceilings.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
from scipy import ndimage

from sora_jax.data import palette
from sora_jax.evaluation.metrics import to_unit

COLORS = len(palette.COLOR_NAMES)
TRAIL, OCCLUDER, BACKGROUND = COLORS, 2 * COLORS, 2 * COLORS + 1  # label offsets (palette.nearest_palette_index)
HIDDEN_COVER = 0.25  # permanence: a vanished object may hide where this much of its old place is covered
MIN_AREA = 6  # pixels: a small PhysWorld object covers ~17-26 at 32 px
FILL_SHAPES = ((0.68, "triangle"), (0.93, "circle"), (np.inf, "square"))  # area / bbox area thresholds


@dataclasses.dataclass(frozen=True)
class Detection:
    frame: int
    color: int
    centroid: tuple[float, float]  # (y, x)
    area: int
    box: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive)

    @property
    def shape(self) -> str:
        y0, x0, y1, x1 = self.box
        fill = self.area / max(1, (y1 - y0) * (x1 - x0))
        return next(name for limit, name in FILL_SHAPES if fill < limit)


def segment(video: np.ndarray) -> np.ndarray:
    """int [T, H, W] palette labels: 0..5 object colors, 6..11 trails, 12 occluder, 13 background."""
    return palette.nearest_palette_index(to_unit(video).astype(np.float32))


def detect(labels: np.ndarray, min_area: int = MIN_AREA) -> list[list[Detection]]:
    """Per frame, the connected components (8-connected) of each object color of ≥ `min_area` px."""
    structure = np.ones((3, 3), bool)
    frames = []
    for t, frame in enumerate(labels):
        found = []
        for color in range(COLORS):
            components, count = ndimage.label(frame == color, structure)
            for index, region in enumerate(ndimage.find_objects(components), start=1):
                area = int((components[region] == index).sum())
                if area < min_area:
                    continue
                ys, xs = np.nonzero(components[region] == index)
                found.append(Detection(t, color, (float(ys.mean() + region[0].start),
                                                  float(xs.mean() + region[1].start)),
                                       area, (region[0].start, region[1].start, region[0].stop, region[1].stop)))
        frames.append(found)
    return frames


def _near(mask: np.ndarray, box, margin: int) -> bool:
    y0, x0, y1, x1 = box
    return bool(mask[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin].any())


def _covered(mask: np.ndarray, box, margin: int) -> float:
    """Fraction of the box grown by `margin` px that `mask` covers."""
    y0, x0, y1, x1 = box
    return float(mask[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin].mean())


def _at_border(box, shape, margin: int) -> bool:
    y0, x0, y1, x1 = box
    return y0 <= margin or x0 <= margin or y1 >= shape[0] - margin or x1 >= shape[1] - margin


def caption_adherence(detections: list[list[Detection]], objects: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Against the scene's object table (physworld.object_table: color, shape, ...; -1 padded):
    prompted colors found and the count per color right on the first frame (where every object
    starts in view; NaN when an occluder touches one), each large object's shape right by majority
    over the frames where it is whole (not at an occluder, another object or the border)."""
    wanted = [(int(c), palette.SHAPE_NAMES[int(s)]) for c, s, *_ in objects if c >= 0]
    large = {(int(c), palette.SHAPE_NAMES[int(s)]) for c, s, size, *_ in objects if c >= 0 and size == 1}
    first = {d.color for d in detections[0]} if detections else set()
    colors = np.mean([c in first for c, _ in wanted])
    occluder = labels == OCCLUDER
    shape_votes = {c: [] for c, _ in wanted}
    count_votes = []
    for t, found in enumerate(detections):
        whole = [d for d in found if not _near(occluder[t], d.box, 1)
                 and not _at_border(d.box, labels.shape[1:], 0)]
        for d in whole:
            # An object of another color in front (or behind) cuts the outline: no shape vote.
            if _near((labels[t] < COLORS) & (labels[t] != d.color), d.box, 1):
                continue
            if d.color in shape_votes:
                shape_votes[d.color].append(d.shape)
        if t == 0 and len(whole) == len(found):  # every object starts in view; an occluder may split one
            count_votes.append(len(found) == len(wanted) and all(
                sum(1 for d in found if d.color == c) == sum(1 for w, _ in wanted if w == c) for c, _ in wanted))
    # Shapes of large objects only: a small one is ~6 px wide, where anti-aliasing blurs square and disc.
    shapes = [_majority_is(shape_votes[c], s) if sum(1 for w, _ in wanted if w == c) == 1
              else s in shape_votes[c] for c, s in wanted if (c, s) in large and shape_votes[c]]
    return {"caption_colors": float(colors), "caption_shapes": float(np.mean(shapes)) if shapes else float("nan"),
            "caption_count": float(count_votes[0]) if count_votes else float("nan")}


def _majority_is(votes: list, wanted) -> bool:
    """True when `wanted` has more votes than any other value. A tie is no majority: breaking it
    by `max(set(votes), ...)` followed Python's string hashing, which differs per process, so the
    same videos scored differently in two runs (caption shapes, 2026-12-07)."""
    counts = collections.Counter(votes)
    return counts[wanted] > max((n for value, n in counts.items() if value != wanted), default=0)


def permanence(labels: np.ndarray, detections: list[list[Detection]], margin: int = 3) -> float:
    """1.0 when no color vanishes or appears between frames where nothing could hide it: away
    from occluders, other objects and the border."""
    hiding = (labels == OCCLUDER) | (labels < COLORS)
    shape = labels.shape[1:]
    peak = {}  # per color, its largest detection: how big the object is when whole
    for d in (d for found in detections for d in found):
        peak[d.color] = max(peak.get(d.color, 0), d.area)
    for t in range(1, len(detections)):
        before = {d.color for d in detections[t - 1]}
        after = {d.color for d in detections[t]}
        for d, others in [(d, t) for d in detections[t - 1] if d.color not in after] + \
                         [(d, t - 1) for d in detections[t] if d.color not in before]:
            own = labels[others] == d.color  # the frame where it is missing: what covers its place
            # It may have gone behind (or come out from) something near only if that now covers a
            # good part of where it was (objects move a few px a frame) or only a sliver of it showed
            # (already mostly hidden); only an object already touching the frame's edge can leave
            # through it.
            cover = hiding[others] & ~own
            hidden = _near(cover, d.box, margin) and (_covered(cover, d.box, margin) >= HIDDEN_COVER
                                                     or d.area < 0.5 * peak[d.color])
            if not hidden and not _at_border(d.box, shape, 1):
                return 0.0
    return 1.0


def trail_pixels(labels: np.ndarray) -> np.ndarray:
    """bool: pixels labelled as a trail shade (any painter's color)."""
    return (labels >= TRAIL) & (labels < OCCLUDER)


def trail_persistence(labels: np.ndarray) -> float:
    """Of every pixel painted as trail at some frame, the fraction still painted (or covered by
    an object or occluder) in the last frame: paint stays where it was laid (static camera). NaN
    when no trail is painted."""
    objects = ndimage.binary_dilation(labels < COLORS, np.ones((1, 5, 5), bool))
    trail = trail_pixels(labels) & ~objects  # an object's soft edge reads as its trail shade
    ever = trail.any(0)
    if ever.sum() < 2 * len(labels):
        return float("nan")
    return float((ever & (labels[-1] != BACKGROUND)).sum() / ever.sum())


def color_constancy(detections: list[list[Detection]]) -> float:
    """1.0 unless an object changes color: a color vanishes where a color absent from the previous
    frame appears (overlapping boxes)."""
    for t in range(1, len(detections)):
        before = {d.color for d in detections[t - 1]}
        after = {d.color for d in detections[t]}
        for gone in (d for d in detections[t - 1] if d.color not in after):
            for new in (d for d in detections[t] if d.color not in before):
                y0, x0, y1, x1 = gone.box
                if new.box[0] < y1 and new.box[2] > y0 and new.box[1] < x1 and new.box[3] > x0:
                    return 0.0
    return 1.0


def continuity(detections: list[list[Detection]], max_jump: float = 12.0) -> float:
    """1.0 when no object jumps further than `max_jump` px between consecutive frames (PhysWorld's
    fastest fall plus a pan moves ~9 px a frame at 32 px): a teleport scores 0."""
    for t in range(1, len(detections)):
        for color in range(COLORS):
            before = [d for d in detections[t - 1] if d.color == color]
            after = [d for d in detections[t] if d.color == color]
            if len(before) == len(after) == 1:
                if np.hypot(*np.subtract(before[0].centroid, after[0].centroid)) > max_jump:
                    return 0.0
    return 1.0


def motion_residual(detections: list[list[Detection]], labels: np.ndarray, margin: int = 2) -> float:
    """Median |second difference − its median| of each color's centroid (px), over frames where
    the object is whole (not at an occluder or border), averaged over colors. Constant velocity
    and constant gravity give 0; bounces are rare outliers the median ignores."""
    occluder = labels == OCCLUDER
    residuals = []
    for color in range(COLORS):
        track = {}
        for t, found in enumerate(detections):
            mine = [d for d in found if d.color == color]
            if len(mine) == 1 and not _near(occluder[t], mine[0].box, margin) \
                    and not _at_border(mine[0].box, labels.shape[1:], 0):
                track[t] = np.array(mine[0].centroid)
        accelerations = [track[t + 1] - 2 * track[t] + track[t - 1] for t in track if t - 1 in track and t + 1 in track]
        if len(accelerations) >= 3:
            accelerations = np.array(accelerations)
            residuals.append(float(np.median(np.linalg.norm(accelerations - np.median(accelerations, 0), axis=1))))
    return float(np.mean(residuals)) if residuals else float("nan")


def background_flicker(video: np.ndarray, labels: np.ndarray) -> float:
    """Mean |intensity change| of pixels that are background in consecutive frames (0..1 scale)."""
    gray = to_unit(video).mean(-1)
    both = (labels[1:] == BACKGROUND) & (labels[:-1] == BACKGROUND)
    return float(np.abs(gray[1:] - gray[:-1])[both].mean()) if both.any() else float("nan")


def pan_shift(video: np.ndarray, labels: np.ndarray, max_shift: float = 6.0) -> np.ndarray:
    """Per consecutive frame pair, the horizontal shift (px, + = content moves right) that best
    aligns the background texture (quarter-pixel search)."""
    gray = to_unit(video).mean(-1)
    background = labels == BACKGROUND
    columns = np.arange(gray.shape[2], dtype=np.float64)
    shifts = []
    for t in range(len(gray) - 1):
        best, best_error = 0.0, np.inf
        for shift in np.arange(-max_shift, max_shift + 0.01, 0.25):
            source = columns - shift  # frame t+1 at x shows frame t at x - shift
            valid = (source >= 0) & (source <= columns[-1])
            moved = np.stack([np.interp(source[valid], columns, row) for row in gray[t]])
            mask = background[t + 1][:, valid] & background[t][:, np.clip(np.round(source[valid]).astype(int), 0,
                                                                             gray.shape[2] - 1)]
            if mask.sum() < 16:
                continue
            error = np.abs(gray[t + 1][:, valid] - moved)[mask].mean()
            if error < best_error:
                best, best_error = shift, error
        shifts.append(best)
    return np.array(shifts)


def pan_direction(video: np.ndarray, labels: np.ndarray, camera: int) -> float:
    """For a panning camera (palette.CAMERA_NAMES: 1 left, 2 right): the fraction of frame pairs
    whose background moves the right way (a left pan moves content right). NaN for a still camera."""
    if camera == 0 or len(video) < 2:
        return float("nan")
    shifts = pan_shift(video, labels)
    expected = 1.0 if camera == 1 else -1.0
    return float(np.mean(np.sign(shifts) == expected))


def rise(detections: list[list[Detection]], color: int, height: int, min_rise: float = 0.25) -> float:
    """1.0 if the object of `color` climbs — its highest centre sits at least `min_rise` of the
    frame height above where it started (its centre over the first three frames it is seen in) —
    else 0.0; NaN if it is seen in fewer than four frames. For scenes of one object of that color
    (the largest detection a frame). Not in `score_video`: PhysWorld's default world never draws a
    riser ("rise", `palette.MOTION_NAMES`); fine-tuning experiments on that concept call it."""
    heights = [max((d for d in frame if d.color == color), key=lambda d: d.area).centroid[0]
               for frame in detections if any(d.color == color for d in frame)]
    if len(heights) < 4:
        return float("nan")
    start = float(np.mean(heights[:3]))
    return float(start - min(heights) >= min_rise * height)


def score_video(video: np.ndarray, objects: np.ndarray, camera: int) -> dict[str, float]:
    """Every probe for one video [T, H, W, 3] (uint8 or [-1, 1]) of a scene with this object
    table and camera (0 still, 1 pan left, 2 pan right)."""
    labels = segment(video)
    detections = detect(labels)
    scores = caption_adherence(detections, objects, labels)
    if len(video) > 1:
        static = camera == 0
        scores.update(permanence=permanence(labels, detections), continuity=continuity(detections),
                      color_constancy=color_constancy(detections),
                      trail_persistence=trail_persistence(labels) if static else float("nan"),
                      motion_residual_px=motion_residual(detections, labels),
                      background_flicker=background_flicker(video, labels) if static else float("nan"),
                      pan_direction=pan_direction(video, labels, camera))
    return scores


def bootstrap_mean(values, samples: int = 1000, seed: int = 0) -> dict[str, float | int | None]:
    """Mean and 95 % bootstrap CI over the finite values."""
    values = np.asarray([v for v in values if v == v], np.float64)
    if values.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (samples, values.size))].mean(1)
    return {"mean": float(values.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5)), "n": int(values.size)}


def score_videos(videos, objects, cameras) -> dict[str, dict]:
    """Each probe's mean and CI over videos (per-video NaNs, e.g. no trail, are left out)."""
    per_video = [score_video(v, o, c) for v, o, c in zip(videos, objects, cameras)]
    keys = sorted({k for scores in per_video for k in scores})
    return {key: bootstrap_mean([scores.get(key, float("nan")) for scores in per_video]) for key in keys}
