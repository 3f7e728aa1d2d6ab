"""Where a DiT loses the objects: probe scores when it starts from the ground truth noised to t.

    .venv/bin/python experiments/sdedit_probes.py --runs=runs/ladder_cpu/32x --samples=256 \
        --out=experiments/results/ladder_cpu/sdedit_probes.json

The held-out probe scenes (the ladder's 256, its noise) are encoded by the run's VAE, noised to
each strength s (t = the run's shifted grid at s, as `sora-jax sample --mode=edit` does), and
denoised with the scene's caption by the run's sampler. s = 0 is the VAE reconstruction (the
ladder's ceiling), s = 1 the ladder's own score (pure noise). In between, the layout is given
up to a point: if a probe holds up to s = 0.75 and falls only near 1, the model draws what it is
shown and fails to *decide* the objects from the caption (the high-noise steps); if it falls
already at small s, it cannot *render* them (the low-noise steps: patch size, decoder head).
Each scene's object count is recorded too, so counts can be split by how many objects it asks for.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import numpy as np
from absl import app, flags

from sora_jax.diffusion import flow
from sora_jax.evaluation import probes
from sora_jax.pipelines import t2v
from sora_jax.scaling import world_evals

flags.DEFINE_multi_string("runs", None, "Finished text-to-video runs (repeat for several).")
flags.DEFINE_list("strengths", ["0", "0.25", "0.5", "0.75", "0.9", "1"], "Noise strengths s in [0, 1].")
flags.DEFINE_integer("samples", 256, "Probe scenes (the ladder's first N).")
flags.DEFINE_integer("batch", 16, "Scenes a sampling call.")
flags.DEFINE_string("out", None, "JSON file for the results; a PNG of the same name beside it.")
flags.DEFINE_multi_string("label", [], "A short name per --runs, in order, for the figure (default: the paths).")
flags.mark_flag_as_required("runs")

SHOWN = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity", "trail_persistence",
         "pan_direction")


def edit_videos(pipeline, params, scenes, strength: float, batch: int) -> np.ndarray:
    """uint8 videos: each scene's ground truth noised to `strength` and denoised with its caption;
    batch b uses the noise of seed b, as the ladder's sampling does."""
    videos = []
    for number, start in enumerate(range(0, len(scenes), batch)):
        chunk = scenes[start:start + batch]
        clean = pipeline.encode(np.stack([s.video for s in chunk]))
        if strength == 0:
            videos.append(pipeline.decode(clean))
            continue
        noise = np.asarray(jax.random.normal(jax.random.PRNGKey(number), clean.shape))  # the ladder's noise
        t = float(flow.shift_timesteps(strength, pipeline.sampling_shift(clean.shape)))
        noised = (1.0 - t) * clean + t * noise
        latents = pipeline.sample_latents(params, [s.caption for s in chunk], clean.shape[1:], start=strength,
                                          noise=noised)
        videos.append(pipeline.decode(latents))
    return np.concatenate(videos)


def per_scene(videos, scenes) -> list[dict]:
    rows = []
    for video, scene in zip(videos, scenes):
        objects = scene.truth["objects"]
        scores = probes.score_video(video, objects, scene.scene.camera)
        rows.append({"objects": int((objects[:, 0] >= 0).sum()), **{k: scores.get(k) for k in SHOWN}})
    return rows


PLOTTED = ("caption_shapes", "trail_persistence", "caption_count", "permanence")


def plot(results: dict, labels: dict[str, str], path: pathlib.Path) -> None:
    """One panel per probe in PLOTTED: its mean and 95 % CI against the starting noise s, a line per
    run; s = 0 is the VAE's reconstruction (the ceiling), s = 1 the run drawing from pure noise."""
    from sora_jax.scaling import plots

    plt = plots._pyplot()
    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(3.4 * len(PLOTTED), 3.2), sharex=True)
    for axis, probe in zip(axes, PLOTTED):
        for run, entry in results["runs"].items():
            points = sorted((float(s), p["probes"][probe]) for s, p in entry["strengths"].items()
                            if p["probes"][probe]["mean"] is not None)
            x = [s for s, _ in points]
            axis.plot(x, [p["mean"] for _, p in points], marker="o", label=labels.get(run, run))
            axis.fill_between(x, [p["low"] for _, p in points], [p["high"] for _, p in points], alpha=0.15)
        axis.set_title(probe.replace("_", " "))
        axis.set_xlabel("starting noise s (0 = VAE, 1 = pure noise)")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("probe score")
    axes[0].legend(fontsize=8)
    figure.suptitle("Where the objects are lost: the ground truth noised to s, then denoised by each model")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _print_row(strength: float, point: dict) -> None:
    means = [point["probes"][k]["mean"] for k in SHOWN]
    print(f"  {strength:>5.2f} " + " ".join(f"{m:>12.3f}" if m is not None else f"{'-':>12}" for m in means)
          + f"   {point['seconds']:7.0f}", flush=True)


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    scenes = world_evals.probe_scenes(args.samples)
    strengths = [float(s) for s in args.strengths]
    if any(not 0.0 <= s <= 1.0 for s in strengths):
        raise SystemExit(f"--strengths must lie in [0, 1], got {args.strengths}")
    path = pathlib.Path(args.out) if args.out else None
    results = {"samples": args.samples, "probe_seed": world_evals.PROBE_SEED,
               "probe_clip": list(world_evals.PROBE_CLIP), "runs": {}}
    if path and path.exists():  # resume: finished (run, strength) points are kept, not redone
        results = json.loads(path.read_text())
        if results["samples"] != args.samples:
            raise SystemExit(f"{path} holds {results['samples']} scenes a point; "
                             f"rerun with --samples={results['samples']}")
    for run in args.runs:
        pipeline, params, meta, step = t2v.load(run)
        done = results["runs"].setdefault(run, {"step": int(step), "strengths": {}})
        if done["step"] != int(step):
            raise SystemExit(f"{path} scored {run} at step {done['step']}; it is now at step {step}")
        print(f"{run} (step {step})")
        print(f"  {'s':>5} " + " ".join(f"{k[:12]:>12}" for k in SHOWN) + "   seconds")
        for strength in strengths:
            if str(strength) in done["strengths"]:  # finished before: shown, not redone
                _print_row(strength, done["strengths"][str(strength)])
                continue
            began = time.perf_counter()
            rows = per_scene(edit_videos(pipeline, params, scenes, strength, args.batch), scenes)
            summary = {k: probes.bootstrap_mean([r[k] if r[k] is not None else float("nan") for r in rows])
                       for k in SHOWN}
            by_count = {}
            for n in sorted({r["objects"] for r in rows}):
                by_count[n] = probes.bootstrap_mean([r["caption_count"] for r in rows
                                                     if r["objects"] == n and r["caption_count"] is not None])
            done["strengths"][str(strength)] = {"probes": summary, "count_by_objects": by_count,
                                                "seconds": time.perf_counter() - began}
            _print_row(strength, done["strengths"][str(strength)])
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(results, indent=1))
    if path:
        if args.label and len(args.label) != len(args.runs):
            raise SystemExit(f"--label: {len(args.label)} given for {len(args.runs)} --runs")
        plot(results, dict(zip(args.runs, args.label)), path.with_suffix(".png"))
        print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    app.run(main)
