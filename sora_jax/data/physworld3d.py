"""PhysWorld 3D: spheres, cubes and pyramids on a tiled ground under a moving perspective camera,
ray cast in numpy; every clip carries its cameras, the objects' 3D and projected centers, their
visibility and a depth map.

A scene is sampled from a seed: 2-4 objects in the six palette colors (a color at most once, so a
color names an object), at least two of them still (the static structure a moving camera must keep
rigid), the others rolling (sliding, for cubes and pyramids) along the ground or bouncing in place;
a roller may paint a mark on the ground. One light shades every surface (Lambertian) and casts the
objects' shadows on the ground; the ground's tiles give the parallax a camera move shows. The
camera orbits, dollies, cranes, pans or stays (named in the caption); a share of the clips cut
once, on a latent-frame boundary, to another view of the same scene ("Cut to a view from above.").

    clip = render_clip(seed=3, frames=17, height=32, width=56)
    clip.video            # uint8 [T, H, W, 3]
    clip.caption          # "A large red sphere rolls, ... The camera orbits to the left."
    clip.truth            # intrinsics, extrinsics, centers_3d, centers_2d, visible, depth, ids, shot

The camera (its moves, intrinsics, extrinsics, projection and conventions) is `camera3d`; the ray
casting against the primitives is `raycast`. Rendering is a loop over frames of vectorized ray
casting over the frame's rays (supersampled 2x2), so a minute-long clip renders in bounded memory.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sora_jax.data import camera3d, captions3d, palette, raycast

SHAPE_NAMES, MOTION_NAMES = palette.SHAPE_NAMES_3D, palette.MOTION_NAMES_3D
CAMERA_NAMES, CUT_NAMES = palette.CAMERA_MOVES_3D, palette.CUT_NAMES_3D
# How the objects' left-to-right order after a cut relates to the first view's.
CUT_ORDER = {"above": 1, "other_side": -1, "closer": 1, "farther": 1}  # +1 kept, -1 reversed
MAX_OBJECTS = 4
SKY, GROUND = 0, 1  # ids; object i is 2 + i
ARENA = 2.0  # objects stay inside |x|, |y| <= ARENA
LIGHT = np.array([-0.45, -0.35, 0.82]) / np.linalg.norm([-0.45, -0.35, 0.82])
AMBIENT = 0.45
SHADOW = 0.55  # ground brightness in an object's shadow
PAINT_MIX = 0.55  # a mark is this much its painter's color over the ground
PAINT_RES = 24  # paint-map cells per world unit
GRAVITY = 0.012  # world units per frame^2 (a bounce)
SUPERSAMPLE = 2
MAX_DEPTH = 100.0  # depth maps clip here (the ground toward the horizon; fog hides it long before)
SIZE_RADII = (0.36, 0.52)  # small, large (before WorldConfig.object_scale and a +-8 % jitter)
TILE = 0.8  # ground tile side, world units


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    min_objects: int = 2
    max_objects: int = 4
    min_still: int = 2
    cut_prob: float = 0.3  # share of videos (>= 9 frames) that cut once
    painter_prob: float = 0.5  # share of rollers that paint
    camera_probs: tuple[float, ...] = (0.2, 0.12, 0.12, 0.1, 0.1, 0.09, 0.09, 0.09, 0.09)  # CAMERA_NAMES
    shadows: bool = True
    object_scale: float = 1.0

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}")
        if not 0 <= self.min_still <= self.min_objects:
            raise ValueError(f"min_still={self.min_still} must be in [0, min_objects={self.min_objects}]")
        if len(self.camera_probs) != len(CAMERA_NAMES) or abs(sum(self.camera_probs) - 1) > 1e-6:
            raise ValueError(f"camera_probs needs {len(CAMERA_NAMES)} probabilities summing to 1 ({CAMERA_NAMES})")
        if not 0 <= self.cut_prob <= 1 or not 0 <= self.painter_prob <= 1:
            raise ValueError("cut_prob and painter_prob are probabilities")


@dataclasses.dataclass(frozen=True)
class Object3D:
    color: int  # palette.COLOR_NAMES
    shape: int  # SHAPE_NAMES
    size: int  # palette.SIZE_NAMES
    motion: int  # MOTION_NAMES
    paints: bool
    radius: float  # half extent (sphere radius, cube half side, pyramid base half side)
    yaw: float  # rotation about z (cube, pyramid)
    position: tuple[float, float]  # ground (x, y) at frame 0
    velocity: tuple[float, float]  # ground units per frame (a roller)
    hop: float  # initial upward speed (a bouncer)

    @property
    def reach(self) -> float:
        """The largest distance from the vertical axis to the surface (for spacing and collisions)."""
        return self.radius if SHAPE_NAMES[self.shape] == "sphere" else float(np.sqrt(2)) * self.radius

    @property
    def bound(self) -> float:
        """The radius of a sphere about its center that holds it (rays missing it miss the object)."""
        return self.radius * {"sphere": 1.0, "cube": 1.7321, "pyramid": 1.63}[SHAPE_NAMES[self.shape]]

    @property
    def height(self) -> float:
        return 1.6 * self.radius if SHAPE_NAMES[self.shape] == "pyramid" else 2 * self.radius


@dataclasses.dataclass(frozen=True)
class Scene3D:
    frames: int
    height: int
    width: int
    objects: tuple[Object3D, ...]
    camera: int  # CAMERA_NAMES: the first shot's move
    cut: int  # CUT_NAMES index, -1: one shot
    cut_frame: int  # first frame of the second shot (frames when one shot)
    path: camera3d.CameraPath
    ground_seed: int
    shadows: bool = True


@dataclasses.dataclass(frozen=True)
class Clip:
    video: np.ndarray
    caption: str
    truth: dict[str, np.ndarray]
    scene: Scene3D



def middle_latent_boundaries(frames: int) -> list[int]:
    """Frames 1 + 4k in the middle half of the clip: each the first frame of a latent frame."""
    return [c for c in range(5, frames - 3, 4) if frames / 4 <= c <= 3 * frames / 4]


def latent_boundary_cut(frames: int, rng: np.random.Generator) -> int:
    """A cut frame drawn from `middle_latent_boundaries` (`frames` when there is none)."""
    choices = middle_latent_boundaries(frames)
    return int(choices[int(rng.integers(len(choices)))]) if choices else frames


def sample_scene(rng: np.random.Generator, frames: int, height: int, width: int,
                 config: WorldConfig = WorldConfig()) -> Scene3D:
    """Draws a scene. A single frame (an image) has still objects, a static camera and no cut."""
    if frames < 1 or height < 8 or width < 8:
        raise ValueError(f"cannot render {frames}x{height}x{width}: need frames >= 1, sides >= 8")
    is_image = frames == 1
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    colors = rng.permutation(len(palette.COLOR_NAMES))[:count]
    objects, placed = [], []
    for index in range(count):
        shape, size = int(rng.integers(len(SHAPE_NAMES))), int(rng.integers(2))
        radius = float(SIZE_RADII[size] * config.object_scale * rng.uniform(0.92, 1.08))
        reach = radius * (1.0 if shape == 0 else np.sqrt(2))
        motion = 0 if is_image or index < config.min_still else int(rng.choice(3, p=(0.3, 0.45, 0.25)))
        for _ in range(100):  # apart from the others
            position = rng.uniform(-ARENA * 0.8, ARENA * 0.8, 2)
            if all(np.hypot(*(position - p)) > reach + r + 0.25 for p, r in placed):
                break
        placed.append((position, reach))
        velocity, hop = (0.0, 0.0), 0.0
        if motion == 1:
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.09)
            velocity = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
        elif motion == 2:
            hop = float(rng.uniform(0.13, 0.17))
        paints = motion == 1 and rng.random() < config.painter_prob
        objects.append(Object3D(int(colors[index]), shape, size, motion, bool(paints), radius,
                                float(rng.uniform(0, np.pi / 2)), (float(position[0]), float(position[1])),
                                velocity, hop))
    camera = 0 if is_image else int(rng.choice(len(CAMERA_NAMES), p=config.camera_probs))
    azimuth = float(rng.uniform(0, 2 * np.pi))
    elevation = float(np.radians(rng.uniform(22, 38)))
    distance = float(rng.uniform(4.6, 5.4))
    cut, cut_frame = -1, frames
    if frames >= 9 and rng.random() < config.cut_prob:
        cut, cut_frame = int(rng.integers(len(CUT_NAMES))), latent_boundary_cut(frames, rng)
    first = camera3d.shot_path(rng, CAMERA_NAMES[camera], cut_frame, azimuth, elevation, distance)
    path = first
    if cut_frame < frames:  # the second view holds still
        pose = camera3d.cut_pose(CUT_NAMES[cut], azimuth, elevation, distance)
        second = camera3d.shot_path(rng, "static", frames - cut_frame, *pose)
        path = camera3d.CameraPath(*(np.concatenate([a, b]) for a, b in zip(dataclasses.astuple(first),
                                                                    dataclasses.astuple(second))))
    return Scene3D(frames, height, width, tuple(objects), camera, cut, cut_frame, path,
                   int(rng.integers(2**31)), config.shadows)


def simulate(scene: Scene3D) -> np.ndarray:
    """Object centers [T, N, 3] in world units: rollers slide at constant speed and bounce off the
    arena's walls and still objects; bouncers hop in place under gravity (elastic floor)."""
    objects = scene.objects
    ground = np.array([o.position for o in objects], np.float64).reshape(-1, 2)
    velocity = np.array([o.velocity for o in objects], np.float64).reshape(-1, 2)
    radius = np.array([o.reach for o in objects])
    half_height = np.array([o.height / 2 for o in objects])
    lift, climb = np.zeros(len(objects)), np.array([o.hop for o in objects])
    rollers = np.array([o.motion == 1 for o in objects])
    centers = np.zeros((scene.frames, len(objects), 3))
    for frame in range(scene.frames):
        centers[frame, :, :2], centers[frame, :, 2] = ground, half_height + lift
        ground = ground + velocity
        for axis in range(2):  # the arena's walls
            out = np.abs(ground[:, axis]) > ARENA - radius
            ground[out, axis] = np.sign(ground[out, axis]) * (2 * (ARENA - radius[out]) - np.abs(ground[out, axis]))
            velocity[out, axis] *= -1
        for i in np.flatnonzero(rollers):  # off any other object (a roller meeting a roller: both turn)
            for j in range(len(objects)):
                gap = ground[i] - ground[j]
                distance = np.hypot(*gap)
                if j != i and distance < radius[i] + radius[j] and distance > 1e-9:
                    normal = gap / distance
                    if velocity[i] @ normal < 0:
                        velocity[i] -= 2 * (velocity[i] @ normal) * normal
                    ground[i] = ground[j] + normal * (radius[i] + radius[j])
        climb = climb - GRAVITY
        lift = lift + climb
        landed = lift < 0
        lift[landed], climb[landed] = -lift[landed], -climb[landed]
    return centers


def ground_texture(seed: int) -> np.ndarray:
    """Per-tile gray levels [16, 16] (tiles of TILE units; the pattern repeats every 16 tiles)."""
    rng = np.random.default_rng(seed)
    checker = (np.add.outer(np.arange(16), np.arange(16)) % 2).astype(np.float64)
    return 0.30 + 0.16 * checker + 0.06 * rng.random((16, 16))


def _ground_color(points: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    cells = np.floor(points[:, :2] / TILE).astype(np.int64) % 16
    return tiles[cells[:, 0], cells[:, 1]]


def _paint_stroke(paint: np.ndarray, a: np.ndarray, b: np.ndarray, width: float) -> None:
    """Paints the ground segment a -> b (ground units) into `paint` [cells, cells] in place."""
    cells = paint.shape[0]
    coords = (np.arange(cells) + 0.5) / PAINT_RES - cells / (2 * PAINT_RES)
    px, py = coords[:, None], coords[None, :]
    ab = b - a
    along = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / max(ab @ ab, 1e-12), 0, 1)
    distance = np.hypot(px - a[0] - along * ab[0], py - a[1] - along * ab[1])
    np.maximum(paint, np.clip((width - distance) * PAINT_RES + 0.5, 0, 1), out=paint)


def _sample_paint(paint: np.ndarray, points: np.ndarray) -> np.ndarray:
    cells = paint.shape[0]
    index = np.floor(points[:, :2] * PAINT_RES + cells / 2).astype(np.int64)
    inside = (index >= 0).all(1) & (index < cells).all(1)
    index = np.clip(index, 0, cells - 1)
    return np.where(inside, paint[index[:, 0], index[:, 1]], 0.0)


def _sky(rays: np.ndarray) -> np.ndarray:
    up = np.clip(rays[:, 2], 0, 1)[:, None]
    return (1 - up) * np.array([0.16, 0.17, 0.2]) + up * np.array([0.06, 0.07, 0.1])


def render(scene: Scene3D, ground_path: camera3d.CameraPath | None = None, light: np.ndarray = LIGHT,
           shadow_light: np.ndarray | None = None, scales: np.ndarray | None = None
           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 [T, H, W, 3] and the per-frame ground truth. `ground_path`: the ground, sky and
    shadows as a second camera sees them, the objects as the scene's camera does — a composite no
    camera can film (`violations3d`'s reversed parallax). `light`: the unit direction toward the
    light; `shadow_light`: cast the shadows from another one than shades the objects (another
    composite: `violations3d`'s shadows toward the light). `scales` [T, N]: each object's size
    per frame, a factor on its radius, its base kept on the ground (`violations3d`'s size that
    drifts against a dolly)."""
    shadow_light = light if shadow_light is None else shadow_light
    frames, height, width, s = scene.frames, scene.height, scene.width, SUPERSAMPLE
    centers = simulate(scene)
    count = len(scene.objects)
    sized = [[o] * frames for o in scene.objects]  # [N][T]: the object as drawn in each frame
    if scales is not None:
        sized = [[dataclasses.replace(o, radius=o.radius * float(scales[t, i])) for t in range(frames)]
                 for i, o in enumerate(scene.objects)]
        for i, o in enumerate(scene.objects):  # the center rises or sinks with the size: the base stays put
            centers[:, i, 2] += (np.array([d.height for d in sized[i]]) - o.height) / 2
    f = camera3d.focal(height, width)
    sub = (np.arange(s) + 0.5) / s
    xs = (np.arange(width)[:, None] + sub[None]).reshape(-1) - width / 2
    ys = (np.arange(height)[:, None] + sub[None]).reshape(-1) - height / 2
    grid_y, grid_x = np.meshgrid(ys / f, xs / f, indexing="ij")  # [H s, W s]
    tiles = ground_texture(scene.ground_seed)
    paint = np.zeros((count, int(2 * ARENA * PAINT_RES) + 8, int(2 * ARENA * PAINT_RES) + 8))
    right, down, forward = camera3d.camera_axes(scene.path.yaw, scene.path.pitch)
    background = ground_path or scene.path
    ground_axes = camera3d.camera_axes(background.yaw, background.pitch)
    base = np.array([palette.OBJECT_COLORS[o.color] for o in scene.objects], np.float64).reshape(-1, 3)
    video = np.zeros((frames, height, width, 3), np.uint8)
    depth_map = np.zeros((frames, height, width), np.float32)
    ids = np.zeros((frames, height, width), np.uint8)
    visible = np.zeros((frames, MAX_OBJECTS), np.float32)
    for t in range(frames):
        origin = scene.path.position[t]
        rays = forward[t] + grid_x[..., None] * right[t] + grid_y[..., None] * down[t]
        rays = (rays / np.linalg.norm(rays, axis=-1, keepdims=True)).reshape(-1, 3)
        origin_g, rays_g = origin, rays
        if ground_path is not None:
            origin_g = ground_path.position[t]
            g_right, g_down, g_forward = (axis[t] for axis in ground_axes)
            rays_g = g_forward + grid_x[..., None] * g_right + grid_y[..., None] * g_down
            rays_g = (rays_g / np.linalg.norm(rays_g, axis=-1, keepdims=True)).reshape(-1, 3)
        hits = [raycast.hit(sized[i][t], centers[t, i], origin, rays) for i in range(count)]
        distance = np.stack([h[0] for h in hits] + [np.full(len(rays), np.inf)])  # [N + 1, R]
        with np.errstate(divide="ignore", invalid="ignore"):
            ground_t = np.where(rays_g[:, 2] < -1e-6, -origin_g[2] / rays_g[:, 2], np.inf)
        nearest = distance.argmin(0)
        nearest_t = distance.min(0)
        on_ground = ground_t < (nearest_t if ground_path is None else np.where(np.isfinite(nearest_t), -1.0, np.inf))
        color = _sky(rays_g)
        points = origin_g + np.where(np.isfinite(ground_t), ground_t, 0)[:, None] * rays_g
        for i, o in enumerate(scene.objects):  # marks laid down up to this frame
            if o.paints and t > 0:
                _paint_stroke(paint[i], centers[t - 1, i, :2], centers[t, i, :2], 0.45 * o.radius)
        ground = _ground_color(points, tiles)[:, None] * np.ones(3)
        for i, o in enumerate(scene.objects):
            if o.paints:
                mark = _sample_paint(paint[i], points)[:, None]
                ground = ground * (1 - PAINT_MIX * mark) + PAINT_MIX * mark * base[i]
        lit = np.full(len(rays), AMBIENT + (1 - AMBIENT) * light[2])
        if scene.shadows:
            shadowed = np.zeros(len(rays), bool)
            for i in range(count):
                shadowed |= raycast.shadowed(sized[i][t], centers[t, i], points, on_ground, shadow_light)
            lit = np.where(shadowed, lit * SHADOW, lit)
        fog = np.exp(-np.maximum(ground_t - 6.0, 0) / 6.0)[:, None]
        ground_color = fog * ground * lit[:, None] + (1 - fog) * color
        color = np.where(on_ground[:, None], ground_color, color)
        for i in range(count):
            mine = (nearest == i) & np.isfinite(nearest_t)
            if mine.any():
                shade = AMBIENT + (1 - AMBIENT) * np.clip(hits[i][1][mine] @ light, 0, None)
                color[mine] = shade[:, None] * base[i]
        pixels = color.reshape(height, s, width, s, 3).mean((1, 3))
        video[t] = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        label = np.where(np.isfinite(nearest_t), 2 + nearest, np.where(on_ground, GROUND, SKY))
        ids[t] = label.reshape(height, s, width, s)[:, s // 2, :, s // 2]
        surface = np.where(np.isfinite(nearest_t), nearest_t, np.where(on_ground, ground_t, np.nan))
        cam_depth = (surface * (rays @ forward[t])).reshape(height, s, width, s)[:, s // 2, :, s // 2]
        depth_map[t] = np.minimum(np.nan_to_num(cam_depth, nan=0.0), MAX_DEPTH)
        for i in range(count):
            anywhere = np.isfinite(distance[i]).sum()
            visible[t, i] = ((nearest == i) & np.isfinite(nearest_t)).sum() / anywhere if anywhere else 0.0
    centers_2d, center_depth = camera3d.project(centers, scene.path, height, width)
    truth = {
        "intrinsics": camera3d.intrinsics(height, width),
        "extrinsics": camera3d.extrinsics(scene.path),
        "centers_3d": _pad(centers.astype(np.float32), frames),
        "centers_2d": _pad(centers_2d, frames),
        "center_depth": _pad(center_depth[..., None], frames)[..., 0],
        "visible": visible,
        "depth": depth_map,
        "ids": ids,
        "shot": (np.arange(frames) >= scene.cut_frame).astype(np.int32),
        "objects": object_table(scene),
    }
    return video, truth


def _pad(array: np.ndarray, frames: int) -> np.ndarray:
    padded = np.full((frames, MAX_OBJECTS, *array.shape[2:]), np.nan, np.float32)
    padded[:, :array.shape[1]] = array
    return padded


def object_table(scene: Scene3D) -> np.ndarray:
    """int32 [MAX_OBJECTS, 5]: (color, shape, size, motion, paints) per object, -1 padded."""
    table = np.full((MAX_OBJECTS, 5), -1, np.int32)
    for index, o in enumerate(scene.objects):
        table[index] = (o.color, o.shape, o.size, o.motion, int(o.paints))
    return table


def render_clip(seed: int | list[int], frames: int, height: int, width: int,
                config: WorldConfig = WorldConfig()) -> Clip:
    """The clip for `seed`: the same seed and shape always give the same pixels and caption."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, frames, height, width, config)
    video, truth = render(scene)
    caption = captions3d.describe(scene, np.random.default_rng([*np.atleast_1d(seed).tolist(), 1]))
    return Clip(video, caption, truth, scene)
