"""PhysWorld: a procedural world whose every clip carries its own ground truth.

A scene is sampled from a seed (objects, motions, occluders, camera), simulated in world
coordinates, then rendered with vectorized numpy over `[T, H, W]` (no per-pixel Python loops).
The world is wider than the frame when the camera pans, so the background texture, objects and
trails move consistently under the camera. Occluders are drawn in front of objects.

    clip = render_clip(seed=3, frames=17, height=32, width=56)
    clip.video        # uint8 [T, H, W, 3]
    clip.caption      # "A large red circle bounces around, ..."
    clip.truth        # per-frame centers, boxes, visible fraction, trail mask, camera offset
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sora_jax.data import captions, palette

MAX_OBJECTS = 3
MAX_OCCLUDERS = 2
_SUBSTEPS = 4  # physics substeps per frame, so fast bounces stay inside the walls


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """What the world may contain. `holdout` lists (color, shape) pairs never sampled."""

    min_objects: int = 1
    max_objects: int = MAX_OBJECTS
    max_occluders: int = MAX_OCCLUDERS
    painter_prob: float = 0.35
    pan_prob: float = 0.4
    # bounce, fall, still; a fourth entry draws "rise" (gravity reversed), which no prepared split has
    motion_probs: tuple[float, ...] = (0.45, 0.3, 0.25)
    holdout: tuple[tuple[str, str], ...] = (("green", "triangle"),)
    only_holdout: bool = False  # sample *only* held-out pairs: a generalization test set
    # Object half-extent as a multiple of 9 % / 16 % of the short side (small / large); trails
    # scale with it. 1.0 is PhysWorld 1.x; 1.4 since 2.0.0, chosen by measuring what a 4x VAE
    # keeps (docs/scaling.md, "World scale against tokenizer resolution"). A scale changes sizes
    # only: the same seed draws the same scene otherwise.
    object_scale: float = 1.4

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}")
        if not 0 <= self.max_occluders <= MAX_OCCLUDERS:
            raise ValueError(f"max_occluders must be in [0, {MAX_OCCLUDERS}]")
        for color, shape in self.holdout:
            if color not in palette.COLOR_NAMES or shape not in palette.SHAPE_NAMES:
                raise ValueError(f"holdout pair ({color!r}, {shape!r}) is not a color/shape pair")
        if self.only_holdout and not self.holdout:
            raise ValueError("only_holdout=True needs a non-empty holdout")
        if len(self.motion_probs) not in (3, 4) or min(self.motion_probs) < 0 or abs(sum(self.motion_probs) - 1) > 1e-6:
            raise ValueError(f"motion_probs={self.motion_probs} must be 3 or 4 probabilities (bounce, fall, still[, "
                             f"rise]) summing to 1")
        if not 0.5 <= self.object_scale <= 2.5:
            raise ValueError(f"object_scale must be in [0.5, 2.5], got {self.object_scale}")


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    color: int  # index into palette.COLOR_NAMES
    shape: int  # index into palette.SHAPE_NAMES
    size: int  # index into palette.SIZE_NAMES
    motion: int  # index into palette.MOTION_NAMES
    paints: bool
    radius: float  # half extent in pixels
    position: tuple[float, float]  # (x, y) in world pixels at frame 0
    velocity: tuple[float, float]  # pixels per frame


@dataclasses.dataclass(frozen=True)
class Scene:
    frames: int
    height: int
    width: int
    world_width: int
    objects: tuple[ObjectSpec, ...]
    occluders: tuple[tuple[float, float, float, float], ...]  # (x0, y0, x1, y1) world pixels
    camera: int  # index into palette.CAMERA_NAMES
    camera_offsets: np.ndarray  # [T] world x of the frame's left edge
    background: np.ndarray  # [H, world_width] texture intensity


@dataclasses.dataclass(frozen=True)
class Clip:
    video: np.ndarray  # uint8 [T, H, W, 3]
    caption: str
    truth: dict[str, np.ndarray]
    scene: Scene


def _allowed_pairs(config: WorldConfig) -> list[tuple[int, int]]:
    held = {(palette.COLOR_NAMES.index(c), palette.SHAPE_NAMES.index(s)) for c, s in config.holdout}
    pairs = [(c, s) for c in range(len(palette.COLOR_NAMES)) for s in range(len(palette.SHAPE_NAMES))]
    return [p for p in pairs if (p in held) == config.only_holdout]


def _background(rng: np.random.Generator, height: int, world_width: int) -> np.ndarray:
    """A smooth near-black texture: coarse noise upsampled bilinearly plus fine grain."""
    coarse = rng.random((height // 4 + 2, world_width // 4 + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, world_width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    smooth = (
        coarse[y0][:, x0] * (1 - fy) * (1 - fx)
        + coarse[y0 + 1][:, x0] * fy * (1 - fx)
        + coarse[y0][:, x0 + 1] * (1 - fy) * fx
        + coarse[y0 + 1][:, x0 + 1] * fy * fx
    )
    texture = 0.75 * smooth + 0.25 * rng.random((height, world_width))
    low, high = palette.BACKGROUND_RANGE
    return (low + (high - low) * texture).astype(np.float32)


def sample_scene(
    rng: np.random.Generator, frames: int, height: int, width: int, config: WorldConfig = WorldConfig()
) -> Scene:
    """Draws a scene. A single frame (an image) has still objects, no painting and no pan."""
    if frames < 1 or height < 8 or width < 8:
        raise ValueError(f"cannot render {frames}x{height}x{width}: need frames >= 1, sides >= 8")
    is_image = frames == 1
    short = min(height, width)
    camera = 0
    speed = 0.0
    if not is_image and rng.random() < config.pan_prob:
        camera = int(rng.integers(1, 3))
        speed = float(rng.uniform(0.03, 0.06) * short)
    world_width = width + int(np.ceil(speed * (frames - 1))) + 1
    start = 0.0 if camera != 1 else world_width - width - 1.0
    direction = {0: 0.0, 1: -1.0, 2: 1.0}[camera]
    camera_offsets = (start + direction * speed * np.arange(frames)).astype(np.float32)

    pairs = _allowed_pairs(config)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    objects = []
    for _ in range(count):
        color, shape = pairs[int(rng.integers(len(pairs)))]
        size = int(rng.integers(2))
        radius = float(short * (0.09 if size == 0 else 0.16) * config.object_scale * rng.uniform(0.9, 1.1))
        motion = 2 if is_image else int(rng.choice(len(config.motion_probs), p=config.motion_probs))
        paints = (not is_image) and motion != 2 and rng.random() < config.painter_prob
        # Start where the camera sees the object at frame 0, inside the walls.
        x = float(rng.uniform(radius, width - radius) + camera_offsets[0])
        y = float(rng.uniform(radius, max(2 * radius, height * (0.5 if motion in (1, 3) else 1.0)) - radius))
        if motion == 3:  # a riser starts in the lower half (the mirror of a faller)
            y = height - y
        velocity = (0.0, 0.0)
        if motion == 0:
            angle, speed_px = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.11) * short
            velocity = (float(speed_px * np.cos(angle)), float(speed_px * np.sin(angle)))
        elif motion in (1, 3):
            velocity = (float(rng.uniform(-0.03, 0.03) * short), 0.0)
        objects.append(ObjectSpec(color, shape, size, motion, bool(paints), radius, (x, y), velocity))

    occluders = []
    for _ in range(int(rng.integers(0, config.max_occluders + 1))):
        bar_width = rng.uniform(0.12, 0.2) * short
        bar_height = rng.uniform(0.55, 1.0) * height
        x0 = rng.uniform(0, world_width - bar_width)
        y0 = rng.uniform(0, height - bar_height)
        occluders.append((float(x0), float(y0), float(x0 + bar_width), float(y0 + bar_height)))

    return Scene(
        frames=frames, height=height, width=width, world_width=world_width,
        objects=tuple(objects), occluders=tuple(occluders), camera=camera,
        camera_offsets=camera_offsets, background=_background(rng, height, world_width),
    )


def simulate(scene: Scene) -> np.ndarray:
    """Object centers in world pixels, [T, N, 2] as (x, y)."""
    count = len(scene.objects)
    position = np.array([o.position for o in scene.objects], np.float64).reshape(count, 2)
    velocity = np.array([o.velocity for o in scene.objects], np.float64).reshape(count, 2)
    radius = np.array([o.radius for o in scene.objects], np.float64)
    falls = np.array([o.motion == 1 for o in scene.objects], bool)
    rises = np.array([o.motion == 3 for o in scene.objects], bool)  # gravity reversed
    gravity = 0.025 * min(scene.height, scene.width)
    low = np.stack([radius, radius], -1)
    high = np.stack([scene.world_width - radius, scene.height - radius], -1)
    centers = np.zeros((scene.frames, count, 2))
    dt = 1.0 / _SUBSTEPS
    for frame in range(scene.frames):
        centers[frame] = position
        for _ in range(_SUBSTEPS):
            velocity[:, 1] += np.where(falls, gravity * dt, np.where(rises, -gravity * dt, 0.0))
            position = position + velocity * dt
            below, above = position < low, position > high
            position = np.where(below, 2 * low - position, np.where(above, 2 * high - position, position))
            bounced = below | above
            # Walls are elastic; a falling object's floor bounce (a riser's ceiling bounce) loses 15%.
            vertical = np.arange(2) == 1
            restitution = np.where((falls[:, None] & above | rises[:, None] & below) & vertical, 0.85, 1.0)
            velocity = np.where(bounced, -velocity * restitution, velocity)
    return centers.astype(np.float32)


def _shape_coverage(shape: int, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at the origin, from pixel offsets."""
    if shape == 0:  # circle
        distance = np.sqrt(dx * dx + dy * dy) - radius
    elif shape == 1:  # square
        distance = np.maximum(np.abs(dx), np.abs(dy)) - radius
    else:  # triangle pointing up: apex (0, -r), base corners (+-r, r)
        edge = np.hypot(2.0, 1.0)
        sides = (2 * np.abs(dx) - dy - radius) / edge
        distance = np.maximum(sides, dy - radius)
    return np.clip(0.5 - distance, 0.0, 1.0)


def _segment_distance(px, py, ax, ay, bx, by) -> np.ndarray:
    """Distance from points (px, py) to segments a->b; a, b broadcast against p."""
    abx, aby = bx - ax, by - ay
    length2 = np.maximum(abx * abx + aby * aby, 1e-12)
    along = np.clip(((px - ax) * abx + (py - ay) * aby) / length2, 0.0, 1.0)
    return np.hypot(px - ax - along * abx, py - ay - along * aby)


def _camera_view(world: np.ndarray, left: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Samples `[T, H, world_width]` at each frame's columns (`left`/`frac`: [T, W]) -> [T, H, W]."""
    frames, height = world.shape[:2]
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    return world[t, y, left[:, None]] * (1 - frac[:, None]) + world[t, y, left[:, None] + 1] * frac[:, None]


def _over(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> np.ndarray:
    return canvas * (1 - alpha[..., None]) + alpha[..., None] * color


def _shape_area(shape: int, radius: float) -> float:
    return {0: np.pi * radius**2, 1: 4 * radius**2, 2: 2 * radius**2}[shape]


def render(scene: Scene) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Renders a scene to uint8 `[T, H, W, 3]` and its per-frame ground truth."""
    frames, height, width = scene.frames, scene.height, scene.width
    centers_world = simulate(scene)
    ys = (np.arange(height, dtype=np.float32) + 0.5)[None, :, None]  # [1, H, 1]
    xs = np.arange(width, dtype=np.float32)[None, None, :] + 0.5
    world_x = xs + scene.camera_offsets[:, None, None]  # [T, 1, W]

    # Background and paint live in world coordinates; the camera samples them (linear in x).
    column = world_x[:, 0, :] - 0.5
    left = np.clip(np.floor(column).astype(int), 0, scene.world_width - 2)
    frac = np.clip(column - left, 0.0, 1.0)
    texture = _camera_view(np.broadcast_to(scene.background, (frames, height, scene.world_width)), left, frac)
    canvas = np.repeat(texture[..., None], 3, axis=-1)  # [T, H, W, 3]
    world_columns = np.arange(scene.world_width, dtype=np.float32)[None, None, :] + 0.5

    trail_mask = np.zeros((frames, height, width), bool)
    trail_paint = np.zeros((frames, height, width), np.float32)  # soft coverage, edges included
    for index, obj in enumerate(scene.objects):
        if not obj.paints:
            continue
        path = centers_world[:, index]
        previous = np.concatenate([path[:1], path[:-1]])
        stroke_radius = max(1.0, 0.35 * obj.radius)
        distance = _segment_distance(
            world_columns, ys, previous[:, 0, None, None], previous[:, 1, None, None],
            path[:, 0, None, None], path[:, 1, None, None],
        )  # [T, H, world_width]
        # Paint stays where it was laid down: a running maximum over time, in the world.
        world_paint = np.maximum.accumulate(np.clip(stroke_radius + 0.5 - distance, 0.0, 1.0), axis=0)
        painted = _camera_view(world_paint, left, frac)
        canvas = _over(canvas, painted, palette.TRAIL_COLORS[obj.color])
        trail_mask |= painted > 0.5
        trail_paint = np.maximum(trail_paint, painted)

    coverages = []
    for index, obj in enumerate(scene.objects):
        dx = world_x - centers_world[:, index, 0, None, None]
        dy = ys - centers_world[:, index, 1, None, None]
        coverage = _shape_coverage(obj.shape, dx, dy, obj.radius).astype(np.float32)
        canvas = _over(canvas, coverage, palette.OBJECT_COLORS[obj.color])
        coverages.append(coverage)

    occluded = np.zeros((frames, height, width), np.float32)
    for x0, y0, x1, y1 in scene.occluders:
        inside_x = np.clip(np.minimum(world_x - x0, x1 - world_x) + 0.5, 0, 1)
        inside_y = np.clip(np.minimum(ys - y0, y1 - ys) + 0.5, 0, 1)
        bar = (inside_x * inside_y).astype(np.float32)
        canvas = _over(canvas, bar, palette.OCCLUDER_COLOR)
        occluded = 1 - (1 - occluded) * (1 - bar)

    count = len(scene.objects)
    visible = np.zeros((frames, MAX_OBJECTS), np.float32)
    for index, obj in enumerate(scene.objects):
        on_top = coverages[index] * (1 - occluded)
        for later in coverages[index + 1 :]:
            on_top = on_top * (1 - later)
        visible[:, index] = np.clip(on_top.sum((1, 2)) / _shape_area(obj.shape, obj.radius), 0, 1)

    centers = np.full((frames, MAX_OBJECTS, 2), np.nan, np.float32)
    centers[:, :count] = centers_world - np.stack([scene.camera_offsets, np.zeros(frames)], -1)[:, None]
    radii = np.array([o.radius for o in scene.objects], np.float32)[None, :, None]
    boxes = np.full((frames, MAX_OBJECTS, 4), np.nan, np.float32)
    boxes[:, :count] = np.concatenate([centers[:, :count] - radii, centers[:, :count] + radii], -1)
    video = np.rint(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
    truth = {
        "centers": centers,
        "boxes": boxes,
        "visible": visible,
        "trail_mask": trail_mask,
        "trail_paint": trail_paint,
        "camera_offset": scene.camera_offsets.astype(np.float32),
        "objects": object_table(scene),
    }
    return video, truth


def object_table(scene: Scene) -> np.ndarray:
    """int32 [MAX_OBJECTS, 5]: (color, shape, size, motion, paints) per object, -1 padded."""
    table = np.full((MAX_OBJECTS, 5), -1, np.int32)
    for index, o in enumerate(scene.objects):
        table[index] = (o.color, o.shape, o.size, o.motion, int(o.paints))
    return table


def render_clip(
    seed: int | list[int], frames: int, height: int, width: int, config: WorldConfig = WorldConfig()
) -> Clip:
    """The clip for `seed`: the same seed and shape always give the same pixels and caption."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, frames, height, width, config)
    video, truth = render(scene)
    caption = captions.describe(scene, np.random.default_rng([*np.atleast_1d(seed).tolist(), 1]))
    return Clip(video=video, caption=caption, truth=truth, scene=scene)
