r"""A minute of video without drift, in PhysWorld or PhysWorld 3D (the run's world): 60-second
clips made by autoregressive extension (`generate.Generator`, t2v past the model's window: each
chunk conditioned on the last `overlap` latent frames), scored per 10-second window against what
their prompt asked for, and plotted against time in the video.

    .venv/bin/python experiments/minute_long.py --workdir=runs/ladder_physworld3d/32x \
        --results=experiments/results/minute_long_physworld3d

Per window (at the world's 8 frames per second, a minute is 481 frames, ten seconds 80):
- `objects_kept`: the prompt's objects (colors) seen in the window (in a quarter of its frames);
- `colors_clean`: no color the prompt does not name;
- `one_blob_per_color`: each color seen is one connected blob (a scene holds a color once);
- `area_kept`: the objects' total area against the first window's (min of the two ratios);
- `area_vs_truth`: the same against the prompt's own scene (its held-out clip, rendered): tells a
  first window that draws too little from extensions that draw too much;
- `smooth_view`: no frame pair breaking the view (`probes3d.smooth_view`);
- PhysWorld 3D: `camera_move`, the named move still shows; PhysWorld: its `permanence`,
  `continuity` and `pan_direction` probes on the window.
And over the whole video, where the chunks meet: `boundary_jump`, the mean |change| of frame
brightness and contrast across a chunk boundary over that within chunks (1: no seam). Target: no
window below 0.9 of the first window's score.
"""

import json
import pathlib

import numpy as np
from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A T2V run (a ladder rung) on physworld or physworld3d.")
_RESULTS = flags.DEFINE_string("results", None, "Write minute_long.json / .md and score_vs_time.png here.")
_VIDEOS = flags.DEFINE_integer("videos", 8, "Held-out prompts, one minute each.")
_SECONDS = flags.DEFINE_integer("seconds", 60, "Length of each video.")
_WINDOW = flags.DEFINE_integer("window_seconds", 10, "Scoring window.")
_OVERLAP = flags.DEFINE_integer("overlap", 1, "Latent frames each chunk is conditioned on.")
_FPS = 8  # the procedural worlds' frame rate (config.data.fps)
PROBES = {"physworld3d": ("objects_kept", "colors_clean", "one_blob_per_color", "area_kept", "area_vs_truth",
                           "smooth_view", "camera_move"),
          "physworld": ("objects_kept", "colors_clean", "one_blob_per_color", "area_kept", "area_vs_truth",
                        "smooth_view", "permanence", "continuity", "pan_direction")}
SEEN_SHARE = 0.25  # a color is in a window when it covers MIN_AREA px in this share of its frames


def object_labels(video: np.ndarray, world: str) -> np.ndarray:
    """int [T, H, W]: each object pixel's palette color, -1 elsewhere (PhysWorld's trails, a dim
    shade of their painter's color, are not objects)."""
    from sora_jax.evaluation import probes, probes3d

    if world == "physworld3d":
        return probes3d.segment(video)
    labels = probes.segment(video)
    return np.where(labels < probes.COLORS, labels, -1)


def window_scores(video: np.ndarray, clip, world: str) -> dict[str, float]:
    """The window's scores against its prompt's scene (`clip`: the held-out clip it came from)."""
    from scipy import ndimage

    from sora_jax.data import physworld3d
    from sora_jax.evaluation import probes, probes3d

    view = probes3d.picture(video)  # read once for every 3D probe below
    labels = object_labels(view if world == "physworld3d" else video, world)
    present = (labels[..., None] == np.arange(probes3d.COLORS)).sum((1, 2)) >= probes3d.MIN_AREA  # [T, colors]
    seen = set(np.flatnonzero(present.mean(0) >= SEEN_SHARE))
    wanted = {o.color for o in clip.scene.objects}
    blobs = []
    for t in range(len(video)):
        for color in np.flatnonzero(present[t]):
            components, count = ndimage.label(labels[t] == color, np.ones((3, 3), bool))
            sizes = np.bincount(components.ravel())[1:]
            blobs.append(float((sizes >= probes3d.MIN_AREA).sum() == 1))
    scores = {"objects_kept": len(seen & wanted) / len(wanted), "colors_clean": float(seen <= wanted),
              "one_blob_per_color": float(np.mean(blobs)) if blobs else float("nan"),
              "object_area": float((labels >= 0).sum((1, 2)).mean()),
              "smooth_view": probes3d.smooth_view(view, [slice(0, len(video))])}
    if world == "physworld3d":
        move = probes3d.classify_move(probes3d.move_features(view))
        scores["camera_move"] = float("nan") if move is None else float(move == physworld3d.CAMERA_NAMES[
            clip.scene.camera])
    else:  # PhysWorld's own probes that apply to any stretch of a video
        flat = probes.score_video(video, clip.truth["objects"], clip.scene.camera)
        scores.update({k: flat[k] for k in ("permanence", "continuity", "pan_direction")})
    return scores


def _ratio(area: float, reference: float) -> float:
    """min(a / b, b / a): 1 when the areas agree, lower as either grows."""
    return min(area / reference, reference / max(area, 1.0))


def boundary_jump(video: np.ndarray, chunk_frames: int, first_frames: int) -> float:
    """Mean |change| of per-frame brightness and contrast across chunk boundaries over the mean
    within chunks."""
    gray = video.astype(np.float32).mean(-1)
    stats = np.stack([gray.mean((1, 2)), gray.std((1, 2))], -1)
    change = np.abs(np.diff(stats, axis=0)).sum(-1)  # change[i]: frame i -> i + 1
    boundaries = np.arange(first_frames - 1, len(video) - 1, chunk_frames)
    inside = np.setdiff1d(np.arange(len(change)), boundaries)
    return float(change[boundaries].mean() / max(change[inside].mean(), 1e-6))


def main(argv):
    del argv
    from sora_jax import generate
    from sora_jax.evaluation.probes import bootstrap_mean
    from sora_jax.scaling import plots, world_evals

    generator = generate.Generator(_WORKDIR.value)
    world = world_evals.for_dataset(generator.config.data.dataset)
    if world.name not in PROBES:
        raise SystemExit(f"minute_long: {world.name} runs are not scored here (physworld, physworld3d)")
    shown = PROBES[world.name]
    scenes = [s for s in world.scenes(4 * _VIDEOS.value)
              if len(s.video) > 1 and getattr(s.scene, "cut", -1) < 0][:_VIDEOS.value]
    frames = 1 + _FPS * _SECONDS.value
    window = _FPS * _WINDOW.value
    per_window, jumps, seconds, truth_areas = [], [], [], []
    for number, scene in enumerate(scenes):
        result = generator.generate(generate.Request(prompt=scene.caption, frames=frames, height=32, width=56,
                                                     seed=number, enrich=False, overlap=_OVERLAP.value,
                                                     allow_long=True))
        video = result.video
        seconds.append(result.meta["seconds"])
        scores = [window_scores(video[start:start + window + 1], scene, world.name)
                  for start in range(0, len(video) - window, window)]
        first_area = max(scores[0]["object_area"], 1.0)
        truth_area = max(float((object_labels(scene.video, world.name) >= 0).sum((1, 2)).mean()), 1.0)
        for row in scores:  # the objects' total area against the first window's (1: kept, <1: grown or shrunk)
            row["area_kept"] = _ratio(row["object_area"], first_area)
            row["area_vs_truth"] = _ratio(row["object_area"], truth_area)
        per_window.append(scores)
        truth_areas.append(truth_area)
        temporal = generator.temporal
        chunk = (generator.train_window - _OVERLAP.value) * temporal
        jumps.append(boundary_jump(video, chunk, 1 + (generator.train_window - 1) * temporal))
        print(f"video {number}: {len(video)} frames in {result.meta['seconds']:.0f} s; "
              + ", ".join(f"{p} " + " ".join(f"{w[p]:.2f}" for w in per_window[-1]) for p in shown), flush=True)
    windows = len(per_window[0])
    table = {probe: [bootstrap_mean([v[w][probe] for v in per_window]) for w in range(windows)] for probe in shown}
    report = {"run": _WORKDIR.value, "world": world.name, "videos": len(scenes), "frames": frames, "fps": _FPS,
              "window_seconds": _WINDOW.value, "overlap": _OVERLAP.value, "per_window": table,
              "boundary_jump": bootstrap_mean(jumps),
              # object pixels per frame: each window's mean over videos, and the prompts' own scenes'
              "object_area_px": [float(np.mean([v[w]["object_area"] for v in per_window])) for w in range(windows)],
              "truth_object_area_px": float(np.mean(truth_areas)), "seconds_per_video": float(np.mean(seconds)),
              "ratio_to_first_window": {p: [None if (w["mean"] is None or table[p][0]["mean"] in (None, 0))
                                            else w["mean"] / table[p][0]["mean"] for w in table[p]] for p in shown}}
    lines = ["| probe | " + " | ".join(f"{_WINDOW.value * w}-{_WINDOW.value * (w + 1)} s" for w in range(windows))
             + " | lowest / first |", "|---" * (windows + 2) + "|"]
    for probe in shown:
        ratios = [r for r in report["ratio_to_first_window"][probe] if r is not None]
        cells = " | ".join("–" if w["mean"] is None else f"{w['mean']:.2f}" for w in table[probe])
        lines.append(f"| {probe} | {cells} | " + (f"{min(ratios):.2f}" if ratios else "–") + " |")
    jump = report["boundary_jump"]
    lines.append(f"\nBrightness/contrast change across chunk boundaries over within chunks: {jump['mean']:.2f} "
                 f"[{jump['low']:.2f}, {jump['high']:.2f}] (1 = no seam). {len(scenes)} videos of {frames} frames, "
                 f"{report['seconds_per_video']:.0f} s each to generate.")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if _RESULTS.value:
        out = pathlib.Path(_RESULTS.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "minute_long.json").write_text(json.dumps(report, indent=1))
        (out / "minute_long.md").write_text(markdown)
        plt = plots._pyplot()
        figure, axis = plt.subplots(figsize=(6, 3.5))
        centers = (np.arange(windows) + 0.5) * _WINDOW.value
        for probe in shown:
            means = [np.nan if w["mean"] is None else w["mean"] for w in table[probe]]
            axis.plot(centers, means, marker="o", label=probe)
        axis.set_xlabel("time in the video (s)")
        axis.set_ylabel("score (mean over videos)")
        axis.set_ylim(0, 1.05)
        axis.legend(fontsize=8)
        axis.set_title(f"{len(scenes)} one-minute videos by extension, {_WINDOW.value}-s windows")
        figure.tight_layout()
        figure.savefig(out / "score_vs_time.png", dpi=120)


if __name__ == "__main__":
    app.run(main)
