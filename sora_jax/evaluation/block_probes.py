"""Rule probes for BlockWorld: read a video back into the world's state — the camera, the block
grid, the player — and score how well it keeps the world's rules.

    reading = read(video, cell)                         # camera estimated from the frames
    action_adherence(reading, segments)                 # did each action do what it says?
    violations(reading)                                 # inside a block, floating, blocks changing unbidden
    persistence(reading)                                # an edited block still there when the camera returns
    sprite_identity(reading)                            # the same player sprite in every frame
    scores = score_videos(videos, segments_list)        # all of them over many clips, bootstrap CIs

The reading never looks at ground truth: the camera's motion comes from matching each frame to
the previous one (the player masked out), the cell grid's phase from the blocks' dark edges, and
each cell's class from its mean color, so the same code scores ground truth, VAE reconstructions
and samples. Ground truth scores its ceiling (tests/test_block_probes.py) and doctored clips
(`data/block_violations.py`) score low.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sora_jax.data import blockworld
from sora_jax.evaluation.probes import bootstrap_mean

PLAYER_DISTANCE = 0.4  # RGB distance from the player's color that counts as the player
UNSEEN = -1
SOLID = (blockworld.GRASS, blockworld.DIRT, blockworld.STONE, blockworld.PLANKS, blockworld.BEDROCK)


@dataclasses.dataclass
class Reading:
    cell: int
    camera: np.ndarray  # int [T]: the view's left edge (px), relative to the grid's origin
    player: np.ndarray  # float [T, 2]: (x, y) of the sprite's top-left corner in cells; NaN when not seen
    area: np.ndarray  # float [T]: the sprite's pixels / cell^2 (2 for the true sprite)
    color: np.ndarray  # float [T, 3]: the sprite's mean color
    cells: np.ndarray  # int [T, R, C]: each world cell's class as seen in that frame, UNSEEN if not
    in_view: np.ndarray  # bool [T, C]: columns wholly inside the frame
    col0: int  # world column of cells[..., 0]


def player_mask(frames: np.ndarray) -> np.ndarray:
    """bool [T, H, W]: pixels of the player's color."""
    return np.linalg.norm(frames - blockworld.PLAYER_COLOR, axis=-1) < PLAYER_DISTANCE


def pixel_classes(frames: np.ndarray) -> np.ndarray:
    """int [T, H, W]: each pixel's nearest block color (sky at its row's gradient shade)."""
    height = frames.shape[1]
    references = np.repeat(blockworld.BLOCK_COLORS[None], height, 0)
    references[:, blockworld.AIR] *= (0.82 + 0.18 * np.linspace(0, 1, height, dtype=np.float32))[:, None]
    distances = np.linalg.norm(frames[:, :, :, None, :] - references[None, :, None], axis=-1)
    return distances.argmin(-1)


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """bool [T, H, W] grown by `pixels` in every direction (a blurred sprite's halo)."""
    out = mask.copy()
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            out |= np.roll(np.roll(mask, dy, 1), dx, 2)
    return out


def estimate_camera(frames: np.ndarray, mask: np.ndarray, max_shift: int, cell: int) -> np.ndarray:
    """int [T]: the view's left edge relative to frame 0, from the horizontal shift that best
    aligns each frame with the previous one: block classes that differ (blur-proof, blind to the
    blocks' periodic edges) plus the clipped color difference (the blocks' speckle), the player
    and its halo excluded (it stays put on screen and would pull towards no shift). Where the view
    holds nothing to align (flat ground), the previous frame's shift stays (a camera moves in runs)."""
    count, _, width = frames.shape[:3]
    classes = pixel_classes(frames)
    mask = _dilate(mask, 2)
    camera = np.zeros(count, np.int64)
    previous = 0
    for t in range(1, count):
        costs = {}
        for shift in range(-max_shift, max_shift + 1):  # view moved right by `shift`: now[x] = before[x + shift]
            lo, hi = max(0, -shift), min(width, width - shift)
            keep = ~(mask[t, :, lo:hi] | mask[t - 1, :, lo + shift:hi + shift])
            differ = classes[t, :, lo:hi] != classes[t - 1, :, lo + shift:hi + shift]
            color = np.minimum(np.abs(frames[t, :, lo:hi] - frames[t - 1, :, lo + shift:hi + shift]).sum(-1), 0.3)
            costs[shift] = differ[keep].mean() + color[keep].mean() if keep.any() else np.inf
        # The game's camera moves by a walk's step or not at all (other shifts only at the world's
        # ends): those win unless another shift matches clearly better (a blurred frame's +-1 px).
        step = int(round(blockworld.WALK * cell))
        usual = {shift: costs[shift] for shift in (-step, 0, step) if shift in costs}
        best = min(costs.values())
        if min(usual.values()) <= best / 0.8 + 1e-9:
            costs, best = usual, min(usual.values())
        ties = [shift for shift, cost in costs.items() if cost <= best + 0.002]
        previous = previous if previous in ties else min(ties, key=abs)
        camera[t] = camera[t - 1] + previous
    return camera


def grid_phase(frames: np.ndarray, mask: np.ndarray, camera: np.ndarray, cell: int) -> int:
    """The grid's horizontal phase (px): blocks have a dark right edge, so the world columns
    p - 1 + k·cell are darker than the others where there are blocks."""
    count, height, width = frames.shape[:3]
    brightness = frames.mean(-1)
    sky = np.linalg.norm(frames - blockworld.BLOCK_COLORS[blockworld.AIR], axis=-1) < 0.3
    scores = np.zeros(cell)
    counts = np.zeros(cell)
    for t in range(count):
        keep = ~(mask[t] | sky[t])
        column_mean = np.where(keep, brightness[t], 0).sum(0) / np.maximum(keep.sum(0), 1)
        has = keep.sum(0) > 0
        residue = (np.arange(width) + camera[t]) % cell
        np.add.at(scores, residue[has], column_mean[has])
        np.add.at(counts, residue[has], 1)
    darkest = int(np.argmin(scores / np.maximum(counts, 1)))  # the edge column's residue
    return (darkest + 1) % cell


def classify(means: np.ndarray, cell: int) -> np.ndarray:
    """Nearest block class of each row's mean cell color (means [R, 3]); the sky is compared at
    its gradient's shade over the cell's face, blocks at their face color."""
    rows = len(means)
    references = np.repeat(blockworld.BLOCK_COLORS[None], rows, 0)
    centre = (np.arange(rows) * cell + (cell - 2) / 2) / max(rows * cell - 1, 1)
    references[:, blockworld.AIR] *= (0.82 + 0.18 * centre)[:, None]
    return np.linalg.norm(means[:, None, :] - references, axis=-1).argmin(-1)


def read(video: np.ndarray, cell: int, camera: np.ndarray | None = None) -> Reading:
    """A video (uint8 [T, H, W, 3]) read back into the world's state. `camera` (px, e.g. ground
    truth) skips estimating the camera and the grid phase."""
    frames = np.asarray(video, np.float32) / 255.0
    count, height, width = frames.shape[:3]
    mask = player_mask(frames)
    halo = _dilate(mask, 1)  # a blurred sprite tints the pixels around it: cells are read without them
    if camera is None:
        camera = estimate_camera(frames, mask, max_shift=cell, cell=cell)
        camera = camera - grid_phase(frames, mask, camera, cell)
    camera = np.asarray(camera, np.int64)
    rows = height // cell
    col0 = int(np.floor(camera.min() / cell))
    cols = int(np.ceil((camera.max() + width) / cell)) - col0
    cells = np.full((count, rows, cols), UNSEEN, np.int64)
    in_view = np.zeros((count, cols), bool)
    inner = np.zeros((cell, cell), bool)
    inner[:cell - 1, :cell - 1] = True  # the face, without the dark edge
    for t in range(count):
        for c in range(cols):
            left = (col0 + c) * cell - camera[t]
            if left < 0 or left + cell > width:
                continue
            in_view[t, c] = True
            patch = frames[t, :rows * cell, left:left + cell].reshape(rows, cell, cell, 3)
            visible = inner[None] & ~halo[t, :rows * cell, left:left + cell].reshape(rows, cell, cell)
            enough = visible.sum((1, 2)) >= 0.25 * inner.sum()
            means = (patch * visible[..., None]).sum((1, 2)) / np.maximum(visible.sum((1, 2)), 1)[:, None]
            classes = classify(means, cell)
            cells[t, :, c] = np.where(enough, classes, UNSEEN)
    player = np.full((count, 2), np.nan)
    area = mask.sum((1, 2)) / cell**2
    color = np.zeros((count, 3))
    for t in range(count):
        if area[t] >= 0.5:  # at least a quarter of the sprite
            ys, xs = np.nonzero(mask[t])
            box = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
            if len(ys) / box < 0.5:  # scattered pixels of its color (noise), not one sprite
                continue
            player[t] = ((xs.mean() + 0.5 + camera[t]) / cell - 0.5, (ys.mean() + 0.5) / cell - 1.0)
            color[t] = frames[t][mask[t]].mean(0)
    return Reading(cell=cell, camera=camera, player=player, area=area, color=color, cells=cells, in_view=in_view,
                   col0=col0)


def last_seen(reading: Reading) -> np.ndarray:
    """int [T, R, C]: each cell's class as last seen at or before each frame (UNSEEN before)."""
    out = reading.cells.copy()
    for t in range(1, len(out)):
        out[t] = np.where(out[t] == UNSEEN, out[t - 1], out[t])
    return out


def _cell(reading: Reading, row: float, col: float) -> tuple[int, int] | None:
    if np.isnan(row) or np.isnan(col):  # the player not seen there
        return None
    r, c = int(np.floor(row)), int(np.floor(col)) - reading.col0
    rows, cols = reading.cells.shape[1:]
    return (r, c) if 0 <= r < rows and 0 <= c < cols else None


def _changed(seen: np.ndarray, index, start: int, end: int, before, after) -> bool:
    """Whether a cell's last-seen class goes from one of `before` at `start` to one of `after` by `end`."""
    if index is None:
        return False
    r, c = index
    end = min(end, len(seen) - 1)
    return seen[start, r, c] in before and any(seen[t, r, c] in after for t in range(start + 1, end + 1))


def action_adherence(reading: Reading, segments: list[int]) -> dict:
    """Per action (one per FRAMES_PER_ACTION frames): walks move the player >= 1.5 cells the named
    way, a jump lifts it >= 0.75 cell, waiting keeps it within half a cell, a dig turns a block
    next to it (in front, or below — or it drops into the hole) into air, a place turns the air
    beside its feet into planks. Returns {score, per_action: {name: score}, passed: [bool]}."""
    seen = last_seen(reading)
    per = blockworld.FRAMES_PER_ACTION
    air, planks = (blockworld.AIR,), (blockworld.PLANKS,)
    passed = []
    for s, action in enumerate(segments):
        a, b = per * s, min(per * (s + 1), len(reading.player) - 1)
        (xa, ya), (xb, yb) = reading.player[a], reading.player[b]
        if np.isnan(xa) or np.isnan(xb):
            passed.append(False)
            continue
        dx, dy = xb - xa, yb - ya
        column = xa + 0.5
        if action in (blockworld.LEFT, blockworld.RIGHT):
            ok = dx * (1 if action == blockworld.RIGHT else -1) >= 1.5
        elif action == blockworld.JUMP:
            ok = np.nanmin(reading.player[a:b + 1, 1]) <= ya - 0.75
        elif action == blockworld.NONE:
            ok = abs(dx) < 0.5 and abs(dy) < 0.5
        elif action == blockworld.DIG_DOWN:
            ok = dy >= 0.75 or _changed(seen, _cell(reading, ya + 2.05, column), a, b + per, SOLID, air)
        elif action == blockworld.DIG_FRONT:
            ok = any(_changed(seen, _cell(reading, row, column + side), a, b + per, SOLID, air)
                     for side in (-1, 1) for row in (ya + 1.05, ya + 0.05))
        else:  # place: in front of the feet, as they were when it acted
            feet = reading.player[min(a + 1, b), 1] + 1.05
            ok = any(_changed(seen, _cell(reading, row, column + side), a, b + per, air, planks)
                     for side in (-1, 1) for row in (feet, ya + 1.05))
        passed.append(bool(ok))
    per_action = {}
    for index, name in enumerate(blockworld.ACTIONS):
        mine = [p for p, action in zip(passed, segments) if action == index]
        if mine:
            per_action[name] = float(np.mean(mine))
    return {"score": float(np.mean(passed)) if passed else float("nan"), "per_action": per_action, "passed": passed}


def _near_player(reading: Reading, t: int, row: int, c: int) -> bool:
    """Whether cell (row, c) is within reach of the player at frame t (where digs and places act)."""
    x, y = reading.player[t]
    if np.isnan(x):
        return True  # unknown: do not blame
    return abs(reading.col0 + c + 0.5 - (x + 0.5)) <= 1.75 and y - 1.0 <= row + 0.5 <= y + 3.25


def _runs(values: np.ndarray, shortest: int) -> list[tuple[int, int, int]]:
    """(start, value, length) of each run of equal values, runs shorter than `shortest` (misreads:
    a frame, or a blurred latent frame's four) folded into the run before them."""
    runs: list[list[int]] = []
    for i, value in enumerate(values):
        if runs and runs[-1][1] == value:
            runs[-1][2] += 1
        else:
            runs.append([i, int(value), 1])
    kept: list[list[int]] = []
    for run in runs:
        if kept and (run[2] < shortest and run is not runs[-1] or kept[-1][1] == run[1]):
            kept[-1][2] += run[2]
        else:
            kept.append(run)
    return [tuple(run) for run in kept]


def violations(reading: Reading, min_float_frames: int = 3, min_inside_frames: int = 2, settle: int = 5) -> dict:
    """Rule breaks in a clip: the player inside a block it has not dug (its shrunk box over cells
    last seen solid, `min_inside_frames` frames running), floating (nothing below its feet and no
    vertical motion for `min_float_frames` frames), and blocks changing away from the player (the
    state a cell ends in, seen four times or more, differs from the one before it; runs shorter
    than `settle` observations are misreads — a frame, or a blurred latent frame's four). Returns counts
    per kind and `clean`."""
    seen = last_seen(reading)
    count = len(seen)
    inside = floating_frames = spontaneous = 0
    still = inside_run = 0
    for t in range(count):
        x, y = reading.player[t]
        if np.isnan(x):
            still = 0
            continue
        covered = [_cell(reading, row, col) for row in (y + 0.25, y + 1.75) for col in (x + 0.25, x + 0.75)]
        inside_run = inside_run + 1 if any(i is not None and seen[t][i] in SOLID for i in covered) else 0
        inside += inside_run >= min_inside_frames
        support = [_cell(reading, y + 2.1, col) for col in (x + 0.1, x + 0.9)]
        unsupported = all(i is not None and seen[t][i] == blockworld.AIR for i in support)
        moving = t > 0 and not np.isnan(reading.player[t - 1, 1]) and abs(y - reading.player[t - 1, 1]) > 0.06
        still = still + 1 if unsupported and not moving else 0
        floating_frames += still >= min_float_frames
    observed = reading.cells
    rows, cols = observed.shape[1:]
    for r in range(rows):
        for c in range(cols):
            times = np.flatnonzero(observed[:, r, c] != UNSEEN)
            values = observed[times, r, c]
            runs = _runs(values, settle)
            if len(runs) >= 2 and runs[-1][2] >= 4:  # the state it ends in, kept four times or more
                start = runs[-1][0]
                if not any(_near_player(reading, t, r, c) for t in range(times[start - 1], times[start] + 1)):
                    spontaneous += 1
    return {"inside_block_frames": int(inside), "floating_frames": int(floating_frames),
            "spontaneous_changes": int(spontaneous), "clean": not (inside or floating_frames or spontaneous)}


def _settled(values: np.ndarray, start: int, length: int) -> bool:
    return start + length <= len(values) and (values[start:start + length] == values[start]).all()


def persistence(reading: Reading, settle: int = 3) -> dict:
    """Blocks the player changed (dug or placed beside it, the new state seen `settle` times
    running), then out of view, then back: whether each is as it was last seen before it left
    (the majority of its first `settle` observations on return). Returns {events, kept} (kept /
    events is the score); one event per block, its first return after its first edit."""
    observed = reading.cells
    rows, cols = observed.shape[1:]
    events = kept = 0
    for r in range(rows):
        for c in range(cols):
            times = np.flatnonzero(observed[:, r, c] != UNSEEN)
            values = observed[times, r, c]
            edited = None
            for i in range(1, len(times)):
                before, after = values[i - 1], values[i]
                dug = before in SOLID and after == blockworld.AIR
                placed = before == blockworld.AIR and after == blockworld.PLANKS
                if (dug or placed) and _settled(values, i, settle) and \
                        any(_near_player(reading, t, r, c) for t in range(times[i - 1], times[i] + 1)):
                    edited = times[i]
                    break
            if edited is None:
                continue
            gone = np.flatnonzero(~reading.in_view[edited:, c])
            if not len(gone):
                continue
            left = edited + gone[0]
            back = times[times > left]
            last = values[times < left]
            if len(back) and len(last):
                returned = observed[back[:settle], r, c]
                events += 1
                kept += (returned == last[-1]).mean() > 0.5
    return {"events": int(events), "kept": int(kept)}


def sprite_identity(reading: Reading) -> float:
    """Share of frames with one player sprite: seen as one compact blob, its area within 0.6–1.6x of
    the clip's median and of the sprite's 2 blocks, its color within 0.25 of the player's."""
    seen = ~np.isnan(reading.player[:, 0])
    if not seen.any():
        return 0.0
    median = np.median(reading.area[seen])
    ok = seen & (reading.area >= 0.6 * median) & (reading.area <= 1.6 * median) & \
        (reading.area >= 1.2) & (reading.area <= 3.2) & \
        (np.linalg.norm(reading.color - blockworld.PLAYER_COLOR, axis=-1) < 0.25)
    return float(ok.mean())


def score_videos(videos, segments_list, cameras=None) -> dict[str, dict]:
    """The rule probes over many clips (uint8 [T, H, W, 3] each, with the actions sent or named),
    as bootstrap means with 95 % CIs: action adherence (per clip), rule-clean clips (among those
    with a player seen in at least half the frames: a world without one keeps its rules vacuously),
    persistence (per event), sprite identity."""
    adherence, clean, kept, identity = [], [], [], []
    for i, (video, segments) in enumerate(zip(videos, segments_list)):
        cell = blockworld.cell_size(*np.asarray(video).shape[1:3])
        reading = read(video, cell, None if cameras is None else cameras[i])
        if segments:
            adherence.append(action_adherence(reading, segments)["score"])
        if np.mean(~np.isnan(reading.player[:, 0])) >= 0.5:
            clean.append(float(violations(reading)["clean"]))
        events = persistence(reading)
        kept += [1.0] * events["kept"] + [0.0] * (events["events"] - events["kept"])
        identity.append(sprite_identity(reading))
    out = {"action_adherence": adherence, "rule_clean": clean, "persistence": kept, "sprite_identity": identity}
    return {name: bootstrap_mean(np.array(values, np.float64)) for name, values in out.items() if values}
