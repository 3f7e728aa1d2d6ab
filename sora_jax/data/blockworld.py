"""BlockWorld: a side-view block game whose every clip carries its rules' ground truth.

A world is a grid of blocks (grass over dirt over stone, bedrock at the bottom, sky above) wider
than the frame; a player sprite walks, jumps, digs the block in front or below (it is gone for
good) and places a block (it stays). Gravity and collision hold for the player; the camera follows
it horizontally, so places leave the frame and come back. A scripted policy sends one action per
`FRAMES_PER_ACTION` frames — one latent frame of the 4x-temporal VAE, so a model can be driven one
latent frame per action — and only actions that take effect, so a caption that names them is true.

    clip = render_clip(seed=3, frames=33, height=32, width=56)
    clip.video      # uint8 [T, H, W, 3]
    clip.caption    # "In a block world, the player digs the block below, walks right, then walks back left."
    clip.truth      # per frame: player (x, y) in cells, facing, camera (px), block grid, action

Units: positions in cells (the player's top-left corner; it is 1 cell wide, 2 tall), rows grow
downwards. Physics runs per frame on multiples of 1/8 cell, so it is exact in floating point.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ACTIONS = ("none", "left", "right", "jump", "dig_front", "dig_down", "place")
NONE, LEFT, RIGHT, JUMP, DIG_FRONT, DIG_DOWN, PLACE = range(len(ACTIONS))
FRAMES_PER_ACTION = 4  # one latent frame of a 4x-temporal VAE
BLOCK_NAMES = ("air", "grass", "dirt", "stone", "planks", "bedrock")
AIR, GRASS, DIRT, STONE, PLANKS, BEDROCK = range(len(BLOCK_NAMES))
# RGB in [0, 1]; AIR's entry is the sky (drawn with a vertical gradient).
BLOCK_COLORS = np.array([[0.55, 0.78, 1.0], [0.2, 0.75, 0.15], [0.55, 0.33, 0.12], [0.5, 0.5, 0.52],
                         [1.0, 0.85, 0.2], [0.12, 0.12, 0.15]], np.float32)
PLAYER_COLOR = np.array([1.0, 0.1, 1.0], np.float32)
EYE_COLOR = np.array([1.0, 1.0, 1.0], np.float32)
WALK = 0.75  # cells per frame: a walk action moves three cells
GRAVITY = 0.125  # cells per frame^2
JUMP_SPEED = 0.625  # cells per frame: a jump clears one block, not two
MAX_FALL = 0.875  # under one cell per frame, so a fall never skips a block
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """What clips may contain."""

    world_views: float = 3.0  # world width in view widths
    explore_caption_prob: float = 0.2  # captions that name no action ("The player explores.")
    return_prob: float = 0.5  # long clips that edit a block, walk out of view and come back (persistence)

    def __post_init__(self):
        if self.world_views < 1.5:
            raise ValueError(f"world_views must be >= 1.5 (the camera needs room to move), got {self.world_views}")
        for name in ("explore_caption_prob", "return_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclasses.dataclass
class Player:
    x: float  # left edge, cells
    y: float  # top edge, cells (the sprite is 2 cells tall)
    vy: float = 0.0
    facing: int = 1  # +1 right, -1 left
    on_ground: bool = True

    def copy(self) -> "Player":
        return dataclasses.replace(self)


@dataclasses.dataclass
class Clip:
    video: np.ndarray  # uint8 [T, H, W, 3]
    caption: str
    truth: dict[str, np.ndarray]
    segments: list[int]  # one action per FRAMES_PER_ACTION frames after the first


def cell_size(height: int, width: int) -> int:
    """Pixels per block: eight blocks across the short side."""
    return max(2, min(height, width) // 8)


# --- Rules -------------------------------------------------------------------------------------


def solid(grid: np.ndarray, row: int, col: int) -> bool:
    """Blocks and the world's side walls are solid; above the top is open sky."""
    rows, cols = grid.shape
    if col < 0 or col >= cols or row >= rows:
        return True
    return row >= 0 and grid[row, col] != AIR


def overlaps(grid: np.ndarray, x: float, y: float) -> bool:
    """Whether a player at (x, y) would stand inside a solid block."""
    cols = range(int(np.floor(x + _EPS)), int(np.ceil(x + 1 - _EPS)))
    rows = range(int(np.floor(y + _EPS)), int(np.ceil(y + 2 - _EPS)))
    return any(solid(grid, r, c) for r in rows for c in cols)


def front_cell(player: Player) -> tuple[int, int]:
    """(row, col) of the block in front of the player's feet."""
    return int(np.floor(player.y + 1 + _EPS)), int(np.floor(player.x + 0.5)) + player.facing


def below_cell(player: Player) -> tuple[int, int]:
    return int(np.floor(player.y + 2 + _EPS)), int(np.floor(player.x + 0.5))


def _edit(grid: np.ndarray, player: Player, action: int) -> tuple[int, int] | None:
    """Digs or places per `action`; returns the (row, col) changed, or None."""
    rows, cols = grid.shape
    if action == DIG_FRONT:
        row, col = front_cell(player)
        targets = [(row, col), (row - 1, col)]  # the feet block, else the head block
    elif action == DIG_DOWN:
        targets = [below_cell(player)]
    elif action == PLACE:
        row, col = front_cell(player)
        if 0 <= row < rows and 0 <= col < cols and grid[row, col] == AIR:
            grid[row, col] = PLANKS
            if not overlaps(grid, player.x, player.y):
                return row, col
            grid[row, col] = AIR
        return None
    else:
        return None
    for row, col in targets:
        if 0 <= row < rows and 0 <= col < cols and grid[row, col] not in (AIR, BEDROCK):
            grid[row, col] = AIR
            return row, col
    return None


def step(grid: np.ndarray, player: Player, action: int, first: bool) -> tuple[int, int] | None:
    """One frame of the rules, in place: the action's impulse or edit on its first frame, walking
    on each frame of it, then gravity and collision. Returns the block changed, if any."""
    changed = None
    if first:
        if action in (LEFT, RIGHT):
            player.facing = -1 if action == LEFT else 1
        elif action == JUMP and player.on_ground:
            player.vy = -JUMP_SPEED
        else:
            changed = _edit(grid, player, action)
    if action in (LEFT, RIGHT):
        x = player.x + WALK * player.facing
        if not overlaps(grid, x, player.y):
            player.x = x
    player.vy = min(player.vy + GRAVITY, MAX_FALL)
    y = player.y + player.vy
    if overlaps(grid, player.x, y):
        y = np.floor(y + 2 - _EPS) - 2 if player.vy > 0 else np.floor(y) + 1  # land on / bump under the block
        player.vy = 0.0
    player.y = float(y)
    player.on_ground = overlaps(grid, player.x, player.y + 0.125)
    if player.on_ground and player.vy > 0:
        player.vy = 0.0
    return changed


def simulate(grid: np.ndarray, player: Player, segments: list[int]) -> dict[str, np.ndarray]:
    """Runs `segments` (one action per FRAMES_PER_ACTION frames) from (grid, player), both copied.
    Returns per frame (1 + 4 per segment): player [T, 2], facing [T], grid [T, R, C], action [T]
    (the action acting during the frame; none at frame 0), changed [T, 2] (the block changed that
    frame, -1 if none)."""
    grid, player = grid.copy(), player.copy()
    frames = 1 + FRAMES_PER_ACTION * len(segments)
    out = {"player": np.zeros((frames, 2), np.float32), "facing": np.zeros(frames, np.int8),
           "grid": np.zeros((frames, *grid.shape), np.uint8), "action": np.zeros(frames, np.int8),
           "changed": np.full((frames, 2), -1, np.int16)}

    def record(t):
        out["player"][t] = player.x, player.y
        out["facing"][t] = player.facing
        out["grid"][t] = grid

    record(0)
    for s, action in enumerate(segments):
        for k in range(FRAMES_PER_ACTION):
            t = 1 + s * FRAMES_PER_ACTION + k
            changed = step(grid, player, action, first=k == 0)
            out["action"][t] = action
            if changed is not None:
                out["changed"][t] = changed
            record(t)
    return out


# --- A world and a policy ----------------------------------------------------------------------


def sample_world(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, Player]:
    """Rolling terrain (a random walk of the surface), a few pillars, the player on the surface in
    the middle with room above it."""
    low, high = rows - max(2, rows // 4) - 1, max(4, rows // 2)  # surface rows: at least 4 rows of sky
    surface = np.empty(cols, np.int64)
    surface[0] = rng.integers(high, low + 1)
    for c in range(1, cols):
        surface[c] = np.clip(surface[c - 1] + (rng.choice([-1, 1]) if rng.random() < 0.3 else 0), high, low)
    grid = np.full((rows, cols), AIR, np.uint8)
    depth = np.arange(rows)[:, None] - surface[None, :]
    grid[depth == 0] = GRASS
    grid[(depth >= 1) & (depth <= 1 + rng.integers(0, 2))] = DIRT
    grid[(grid == AIR) & (depth > 0)] = STONE
    grid[-1] = BEDROCK
    start = cols // 2
    for c in np.flatnonzero(rng.random(cols) < 0.08):  # single-block pillars: something to jump onto
        if abs(c - start) > 1 and surface[c] - 1 >= 3:
            grid[surface[c] - 1, c] = STONE
    player = Player(x=float(start), y=float(surface[start] - 2), facing=int(rng.choice([-1, 1])))
    return grid, player


def _effective(grid: np.ndarray, player: Player, action: int) -> bool:
    """Whether `action` would do what its name says from here: move three cells, leave the ground,
    change a block, or (none) stand still on the ground."""
    g, p = grid.copy(), player.copy()
    changed = False
    for k in range(FRAMES_PER_ACTION):
        changed |= step(g, p, action, first=k == 0) is not None
    if action in (LEFT, RIGHT):
        return abs(p.x - player.x) >= WALK * FRAMES_PER_ACTION - _EPS
    if action == JUMP:
        return player.on_ground
    if action == NONE:
        return player.on_ground
    return changed


def _advance(grid: np.ndarray, player: Player, action: int) -> None:
    for k in range(FRAMES_PER_ACTION):
        step(grid, player, action, first=k == 0)


def scripted_policy(rng: np.random.Generator, grid: np.ndarray, player: Player, count: int,
                    config: WorldConfig, view_cols: int = 14) -> list[int]:
    """`count` actions that each take effect: wandering (walks with a preferred direction, jumps
    onto what blocks the way, digs and places), or — for persistence — an edit, a walk away until
    the edited block leaves the `view_cols`-wide frame, and back."""
    grid, player = grid.copy(), player.copy()
    actions: list[int] = []

    def send(action: int) -> bool:
        if len(actions) < count and _effective(grid, player, action):
            actions.append(action)
            _advance(grid, player, action)
            return True
        return False

    legs = int(np.ceil((view_cols / 2 + 1) / (WALK * FRAMES_PER_ACTION)))  # walks that take it out of view
    if count >= 1 + 2 * legs and rng.random() < config.return_prob:
        edits = [DIG_DOWN, DIG_FRONT, PLACE]
        rng.shuffle(edits)
        edit = next((e for e in edits if send(e)), None)
        if edit is not None:
            behind = LEFT if player.facing > 0 else RIGHT  # away from a block dug or placed in front
            direction = behind if edit != DIG_DOWN else int(rng.choice([LEFT, RIGHT]))
            if edit == DIG_DOWN:
                send(JUMP)  # out of the hole
            for leg in (direction, LEFT + RIGHT - direction):
                for _ in range(legs):
                    if not send(leg):
                        send(JUMP) and send(leg)
    direction = RIGHT if player.facing > 0 else LEFT
    weights = {"walk": 0.5, JUMP: 0.15, DIG_FRONT: 0.1, DIG_DOWN: 0.1, PLACE: 0.1, NONE: 0.05}
    while len(actions) < count:
        if rng.random() < 0.2:
            direction = LEFT + RIGHT - direction
        keys = list(weights)
        choice = keys[rng.choice(len(keys), p=np.array(list(weights.values())) / sum(weights.values()))]
        action = direction if choice == "walk" else choice
        if send(action):
            continue
        if action in (LEFT, RIGHT) and send(JUMP) and send(action):  # a ledge in the way: jump onto it
            continue
        if not any(send(a) for a in rng.permutation([LEFT, RIGHT, JUMP, DIG_DOWN, DIG_FRONT, PLACE])) \
                and len(actions) < count:
            actions.append(NONE)  # nothing takes effect (in mid-air): wait
            _advance(grid, player, NONE)
    return actions


def latent_actions(frame_actions: np.ndarray, latent_frames: int) -> np.ndarray:
    """int8 [latent_frames]: the action of each latent frame + 1 (0 = none given). Latent frame 0
    is the first video frame alone (no action yet); latent frame j >= 1 holds the `temporal` frames
    ending at frame j · temporal, which one action spans (`blockworld.FRAMES_PER_ACTION`)."""
    out = np.zeros(latent_frames, np.int8)
    if latent_frames > 1:
        temporal = (len(frame_actions) - 1) // (latent_frames - 1)
        out[1:] = np.asarray(frame_actions)[temporal * np.arange(1, latent_frames)] + 1
    return out


# --- Captions ----------------------------------------------------------------------------------

_LEADS = ("In a block world, ", "In a world of blocks, ", "On grassy blocks under a blue sky, ", "")
_VERBS = {NONE: "waits", JUMP: "jumps", DIG_FRONT: "digs the block in front", DIG_DOWN: "digs the block below",
          PLACE: "places a block"}


def action_phrases(segments: list[int], players: np.ndarray) -> list[str]:
    """One phrase per run of actions: consecutive walks one way merge ("walks right"; "walks back
    left" after walking right), a jump that ends higher is "jumps onto the ledge"."""
    phrases: list[str] = []
    last_walk = None
    for s, action in enumerate(segments):
        if action in (LEFT, RIGHT):
            if s > 0 and segments[s - 1] == action:
                continue
            side = "left" if action == LEFT else "right"
            back = last_walk is not None and last_walk != action
            phrases.append(f"walks {'back ' if back else ''}{side}")
            last_walk = action
        elif action == JUMP:  # onto a ledge: a walk follows and ends a block or more higher, on the ground
            walked = s + 1 < len(segments) and segments[s + 1] in (LEFT, RIGHT)
            end = FRAMES_PER_ACTION * (s + 2)
            higher = walked and players[end, 1] <= players[FRAMES_PER_ACTION * s, 1] - 1 + _EPS \
                and float(players[end, 1]).is_integer()
            phrases.append("jumps onto the ledge" if higher else "jumps")
        else:
            phrases.append(_VERBS[action])
    return phrases


def caption(rng: np.random.Generator, segments: list[int], players: np.ndarray, config: WorldConfig) -> str:
    lead = _LEADS[int(rng.integers(len(_LEADS)))]
    subject = "the player" if lead else "The player"
    if not segments:
        return f"{lead}{subject} stands on the ground."
    if rng.random() < config.explore_caption_prob:
        return f"{lead}{subject} explores."
    phrases = action_phrases(segments, players)
    said = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + ", then " + phrases[-1]
    return f"{lead}{subject} {said}."


# --- Rendering ---------------------------------------------------------------------------------


def camera_offsets(players: np.ndarray, cell: int, view_width: int, world_cols: int) -> np.ndarray:
    """Left edge of the view (px) per frame: the player centred, clamped to the world."""
    centre = (players[:, 0] + 0.5) * cell
    return np.clip(np.round(centre - view_width / 2), 0, world_cols * cell - view_width).astype(np.int32)


def block_texture(rows: int, cols: int, cell: int) -> np.ndarray:
    """float32 [R * cell, C * cell]: each block's faint speckle (a pure function of the world
    position, so it scrolls with the world and no two places look alike)."""
    y, x = np.mgrid[:rows * cell, :cols * cell].astype(np.uint64)
    hashed = (x * np.uint64(73856093) ^ y * np.uint64(19349663)) % np.uint64(1009)
    return (0.85 + 0.3 * hashed.astype(np.float32) / 1008).astype(np.float32)


def block_image(grid: np.ndarray, cell: int) -> np.ndarray:
    """float32 [R * cell, C * cell, 3]: blocks with a darker bottom and right edge (so single blocks
    read as blocks) and a faint speckle, sky with a vertical gradient."""
    rows, cols = grid.shape
    image = BLOCK_COLORS[np.repeat(np.repeat(grid, cell, 0), cell, 1)]
    inner = np.arange(cell)
    edge = (inner[:, None] == cell - 1) | (inner[None, :] == cell - 1)
    shade = np.where(np.tile(edge, (rows, cols)), 0.78, block_texture(rows, cols, cell)).astype(np.float32)
    sky = np.repeat(np.repeat(grid == AIR, cell, 0), cell, 1)
    gradient = (0.82 + 0.18 * np.linspace(0, 1, rows * cell, dtype=np.float32))[:, None]
    return image * np.where(sky, gradient, shade)[..., None]


def render(grids: np.ndarray, players: np.ndarray, facing: np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 video [T, H, W, 3] of the simulated frames, and the camera offsets [T] (px)."""
    cell = cell_size(height, width)
    frames, rows, cols = grids.shape
    camera = camera_offsets(players, cell, width, cols)
    video = np.empty((frames, height, width, 3), np.float32)
    eye = max(1, cell // 4)
    for t in range(frames):
        world = block_image(grids[t], cell)[:height]
        px, py = int(round(players[t, 0] * cell)), int(round(players[t, 1] * cell))
        world[max(py, 0):py + 2 * cell, px:px + cell] = PLAYER_COLOR
        ex = px + (cell - 2 * eye if facing[t] > 0 else eye)
        world[max(py + eye, 0):py + 2 * eye, ex:ex + eye] = EYE_COLOR
        video[t] = world[:, camera[t]:camera[t] + width]
    return np.round(np.clip(video, 0, 1) * 255).astype(np.uint8), camera


def render_clip(seed, frames: int, height: int, width: int, config: WorldConfig = WorldConfig()) -> Clip:
    """A clip of `frames` = 1 + 4k frames (k actions; 1 is an image) from its seed."""
    if frames != 1 and (frames - 1) % FRAMES_PER_ACTION:
        raise ValueError(f"frames must be 1 + {FRAMES_PER_ACTION}k, got {frames}")
    rng = np.random.default_rng(seed)
    cell = cell_size(height, width)
    rows, view_cols = height // cell, -(-width // cell)
    grid, player = sample_world(rng, rows, max(int(round(view_cols * config.world_views)), view_cols + 4))
    segments = scripted_policy(rng, grid, player, (frames - 1) // FRAMES_PER_ACTION, config, view_cols)
    truth = simulate(grid, player, segments)
    video, truth["camera"] = render(truth["grid"], truth["player"], truth["facing"], height, width)
    return Clip(video=video, caption=caption(rng, segments, truth["player"], config), truth=truth, segments=segments)
