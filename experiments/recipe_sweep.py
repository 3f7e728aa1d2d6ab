r"""Which recipe buys the most probe score per training FLOP at the demo budget.

    # sampling knobs (guidance, steps, solver, timestep shift) on one trained rung: no training
    .venv/bin/python experiments/recipe_sweep.py --stage=sampling --run=out/ladder/32x \
        --out=experiments/results/recipe_demo/sampling.json
    # training knobs: one run per variant of a ladder rung at the same budget, each scored alike
    # (--config.* overrides set the recipe the variants start from; docs/scaling.md has the ones used)
    .venv/bin/python experiments/recipe_sweep.py --stage=training --budget=4x --workdir=out/recipe_demo \
        --config=sora_jax/configs/scaling.py:demo --out=experiments/results/recipe_demo/training.json

Every point is scored as the ladder scores a rung (`scaling/compare.py`): the same held-out probe
scenes and noise, world probes with bootstrap CIs; plus, per point, the **ceiling fraction**: the
mean over the object and motion probes (`SCORED`) of min(1, probe / its value on the VAE's
reconstructions of the same scenes), i.e. how much of what the latent allows the samples reach.
Training variants also report the validation loss (its own fixed clips, timesteps and noise).
Points are appended to `--out` as they finish; rerunning skips the finished ones (training runs
resume from their checkpoints). It ends by printing the table (`--table` prints it from `--out` alone).
"""

from __future__ import annotations

import json
import pathlib
import re
import time

from absl import app, flags
from ml_collections import config_flags

from sora_jax.scaling import compare, ladder

FLAGS = flags.FLAGS
flags.DEFINE_enum("stage", "sampling", ["sampling", "training"], "Sweep sampling knobs on --run, or training knobs.")
flags.DEFINE_string("run", "", "sampling: a finished text-to-video run (a ladder rung).")
flags.DEFINE_string("workdir", "out/recipe_demo", "training: where the variants' runs go (one subdirectory each).")
flags.DEFINE_string("budget", "4x", "training: the ladder budget every variant spends.")
flags.DEFINE_string("latent_cache", "", "training: a latent cache to share (e.g. the demo ladder's); "
                    "default <workdir>/latent_cache.")
flags.DEFINE_multi_string("only", [], "Run only these points (names from SAMPLING / TRAINING).")
flags.DEFINE_integer("probe_samples", 128, "Probe scenes sampled per point.")
flags.DEFINE_string("out", "", "JSON output: every point's scores.")
flags.DEFINE_string("picture", "", "sampling: also write this PNG, one column per selected point and the truth, "
                    "rows the first four probe scenes with a painter (the scored samples' noise).")
flags.DEFINE_bool("table", False, "Only print --out's points as a markdown table.")
config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "training: the ladder preset.")

# Probes in the ceiling fraction: caption_count is left out (a handful of scenes qualify: its CI
# spans 0..1), background_flicker and motion_residual_px are lower-is-better pixel measures.
SCORED = ("caption_colors", "caption_shapes", "permanence", "continuity", "color_constancy", "trail_persistence",
          "pan_direction")

# name -> sampling overrides for T2VPipeline.sample_latents (the run's config: euler, 30 steps, 4.0)
SAMPLING = {
    "base (euler 30, guidance 4)": {},
    "guidance 1": {"guidance": 1.0},
    "guidance 2": {"guidance": 2.0},
    "guidance 3": {"guidance": 3.0},
    "guidance 6": {"guidance": 6.0},
    "euler 10": {"steps": 10},
    "euler 60": {"steps": 60},
    "heun 15": {"method": "heun", "steps": 15},
    "ab2 30": {"method": "ab2"},
    "shift 2": {"shift": 2.0},
    "shift 3": {"shift": 3.0},
    "ddim eta 0.5": {"method": "ddim", "eta": 0.5},  # fresh noise each step (samplers.sample)
    "ddim eta 1": {"method": "ddim", "eta": 1.0},  # ancestral
    "ddim eta 1, 60 steps": {"method": "ddim", "eta": 1.0, "steps": 60},
    "ddim eta 1 below t 0.5": {"method": "ddim", "eta": 1.0, "eta_t_max": 0.5},  # Euler while layout and colors form
    "ddim eta 1 below t 0.75": {"method": "ddim", "eta": 1.0, "eta_t_max": 0.75},
}

# name -> config overrides of the rung (dotted keys); the budget re-plans size, steps and LR after them
TRAINING = {
    "base": {},
    "lr x2": {"ladder.lr_scale": 2.0},
    "lr x0.5": {"ladder.lr_scale": 0.5},
    "lr x4": {"ladder.lr_scale": 4.0},
    "lr x8": {"ladder.lr_scale": 8.0},
    "batch 8": {"data.batch_size": 8, "data.max_batch_size": 32},
    "batch 32": {"data.batch_size": 32},
    "batch 8 + lr x2": {"data.batch_size": 8, "data.max_batch_size": 32, "ladder.lr_scale": 2.0},
    "batch 8 + lr x4": {"data.batch_size": 8, "data.max_batch_size": 32, "ladder.lr_scale": 4.0},
    "t2v only": {"flow.tasks.t2v": 1.0, "flow.tasks.t2i": 0.0, "flow.tasks.i2v": 0.0, "flow.tasks.extend_forward": 0.0,
                 "flow.tasks.extend_backward": 0.0, "flow.tasks.connect": 0.0, "flow.tasks.random_frames": 0.0},
    "shift 2": {"flow.shift": 2.0},
    "text dropout 0": {"flow.text_dropout": 0.0},
    "text dropout 0.2": {"flow.text_dropout": 0.2},
    "text dropout 0.3": {"flow.text_dropout": 0.3},
    "warmup x0.25": {"ladder.warmup_scale": 0.25},  # the plan's min(100, steps/10) warmup, scaled
    "warmup x4": {"ladder.warmup_scale": 4.0},
    "2x params": {"ladder.size_scale": 2.0},
    "0.5x params": {"ladder.size_scale": 0.5},
    "4x params": {"ladder.size_scale": 4.0},
    "patch 1": {"model.patch": (1, 1, 1)},
    "output conv 3": {"model.output_conv": 3},  # U-ViT's 3x3 conv over the output latent (models/dit.py)
    "EMA 0.99": {"optimizer.ema_decay": 0.99},
    "no EMA": {"optimizer.ema_decay": 0.0},
    "cooldown 0.5": {"optimizer.cooldown_fraction": 0.5},
    # width against depth near the demo 4x rung's parameters (L2d96: 2 x 14 x 96^2 ~ 258k): the
    # plan's grid grows both together; these hold the count and move the ratio.
    "deep L4d64": {"ladder.size": "L4d64"},
    "shallow L1d128": {"ladder.size": "L1d128"},
}


def ceiling_fraction(scores: dict, vae: dict) -> float:
    fractions = [min(1.0, scores[k]["mean"] / vae[k]["mean"]) for k in SCORED
                 if (scores.get(k) or {}).get("mean") is not None and vae[k]["mean"]]
    return sum(fractions) / len(fractions)


def _load(path: str) -> dict:
    return json.loads(pathlib.Path(path).read_text()) if path and pathlib.Path(path).exists() else {}


def _save(path: str, report: dict) -> None:
    if path:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(path).write_text(json.dumps(report, indent=1, default=compare.jsonable))


def _score(pipeline, params, scenes, vae_ceiling, **sampling) -> dict:
    scores = compare.score(compare.sample_scenes(pipeline, params, scenes, **sampling), scenes)
    return {"probes": scores, "ceiling_fraction": ceiling_fraction(scores, vae_ceiling)}


def _line(name: str, point: dict) -> str:
    loss = f"val loss {point['val_loss']:.4f}, " if "val_loss" in point else ""
    return (f"{name:<28} {loss}ceiling fraction {point['ceiling_fraction']:.3f}; "
            + ", ".join(f"{k} {point['probes'][k]['mean']:.3f}" for k in SCORED[:3]))


def _selected(table: dict) -> dict:
    unknown = set(FLAGS.only) - set(table)
    if unknown:
        raise SystemExit(f"--only {sorted(unknown)}: unknown; valid: {', '.join(table)}")
    return {k: v for k, v in table.items() if not FLAGS.only or k in FLAGS.only}


def sweep_sampling(report: dict) -> None:
    from sora_jax import generate

    if not FLAGS.run or not (pathlib.Path(FLAGS.run) / "final_metrics.json").exists():
        raise SystemExit(f"--run={FLAGS.run!r} is not a finished text-to-video run (no final_metrics.json)")
    generator = generate.Generator(FLAGS.run)
    scenes = compare.probe_scenes(FLAGS.probe_samples)
    report.setdefault("run", FLAGS.run)
    report.setdefault("ceilings", compare.ceilings(generator.pipeline, scenes))
    points = report.setdefault("points", {})
    for name, overrides in _selected(SAMPLING).items():
        if name in points:
            continue
        started = time.perf_counter()
        points[name] = {"overrides": overrides, **_score(generator.pipeline, generator.params, scenes,
                                                         report["ceilings"]["vae"], **overrides)}
        points[name]["seconds"] = time.perf_counter() - started
        print(_line(name, points[name]), flush=True)
        _save(FLAGS.out, report)
    if FLAGS.picture:
        write_picture(generator, scenes, list(_selected(SAMPLING)), FLAGS.picture)


def write_picture(generator, scenes, names: list[str], path: str) -> None:
    """The points side by side on four scenes with a painter among the first batch of 16 (the
    ladder's noise: the videos the points were scored on), the truth last."""
    import numpy as np

    from sora_jax.data import video_io

    first = scenes[:16]
    rows = [i for i, s in enumerate(first) if (s.truth["objects"][:, 4] == 1).any()][:4] or list(range(4))
    columns = {name: compare.sample_scenes(generator.pipeline, generator.params, first, **SAMPLING[name])[rows]
               for name in names}
    columns["truth"] = np.stack([first[i].video for i in rows])
    grid = compare.side_by_side(columns, len(rows), [first[i].caption for i in rows], scale=4)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    video_io.write_video(pathlib.Path(path), compare.still(grid))
    print(f"recipe: wrote {path}", flush=True)


def variant_config(config, overrides: dict, budget: str, cache: str):
    config = config.copy_and_resolve_references()
    with config.unlocked():
        for key, value in overrides.items():
            *parents, leaf = key.split(".")
            node = config
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    return ladder.rung_config(config, budget, latent_cache_dir=cache)


def sweep_training(report: dict) -> None:
    from sora_jax import generate
    from sora_jax.data import prepare
    from sora_jax.train import trainer

    workdir = pathlib.Path(FLAGS.workdir)
    cache = FLAGS.latent_cache or str(workdir / "latent_cache")
    variants = {name: variant_config(FLAGS.config, overrides, FLAGS.budget, cache)
                for name, overrides in _selected(TRAINING).items()}  # every override checked before training
    scenes = compare.probe_scenes(FLAGS.probe_samples)
    report.setdefault("budget", FLAGS.budget)
    points = report.setdefault("points", {})
    for name, rung in variants.items():
        if name in points:
            continue
        run_dir = workdir / re.sub(r"[^A-Za-z0-9.]+", "_", name)  # "batch 8 + lr x4" -> batch_8_lr_x4
        prepare.prepare(rung.data.dataset, rung.data.data_dir)
        print(f"recipe: training {name!r}: {rung.model.variant} patch {tuple(rung.model.patch)}, "
              f"{rung.total_steps} steps of {rung.data.batch_size}, lr {rung.optimizer.learning_rate:.2e}", flush=True)
        started = time.perf_counter()
        if not (run_dir / "final_metrics.json").exists():
            trainer.train(rung, run_dir)
        generator = generate.Generator(run_dir)
        if "ceilings" not in report:
            report["ceilings"] = compare.ceilings(generator.pipeline, scenes)
        summary = ladder.summary(run_dir)
        points[name] = {"overrides": TRAINING[name], "model": summary["model"], "params": summary["params"],
                        "steps": summary["steps"], "compute_flops": summary["compute_flops"],
                        "learning_rate": rung.optimizer.learning_rate, "val_loss": summary["val_loss"],
                        **_score(generator.pipeline, generator.params, scenes, report["ceilings"]["vae"]),
                        "seconds": time.perf_counter() - started}
        print(_line(name, points[name]), flush=True)
        _save(FLAGS.out, report)


SHOWN = ("caption_colors", "caption_shapes", "permanence", "continuity", "trail_persistence", "pan_direction")


def markdown(report: dict) -> str:
    """The sweep as a table, one row per point, best first: by validation loss for training points
    (fixed clips, timesteps and noise: it separates points the probes' CIs do not), by ceiling
    fraction for sampling points (one model: validation loss does not change)."""
    training = report.get("stage") == "training"
    header = ["point", *(["model", "steps", "lr", "val loss"] if training else []), "ceiling fraction",
              *(k.replace("_", " ") for k in SHOWN)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    points = sorted(report["points"].items(),
                    key=lambda item: item[1]["val_loss"] if training else -item[1]["ceiling_fraction"])
    for name, point in points:
        cells = [name]
        if training:
            cells += [point["model"], str(point["steps"]), f"{point['learning_rate']:.1e}", f"{point['val_loss']:.3f}"]
        cells.append(f"{point['ceiling_fraction']:.3f}")
        cells += [f"{point['probes'][k]['mean']:.2f}" if point["probes"][k]["mean"] is not None else "–" for k in SHOWN]
        lines.append("| " + " | ".join(cells) + " |")
    vae = report["ceilings"]["vae"]
    lines.append("| *VAE ceiling* | " + " | " * (4 if training else 0) + "1 | "
                 + " | ".join(f"{vae[k]['mean']:.2f}" for k in SHOWN) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    report = _load(FLAGS.out)
    if not FLAGS.table:
        report["stage"] = FLAGS.stage
        (sweep_sampling if FLAGS.stage == "sampling" else sweep_training)(report)
        _save(FLAGS.out, report)
    if not report.get("points"):
        raise SystemExit(f"{FLAGS.out!r} holds no finished point")
    print(markdown(report))


if __name__ == "__main__":
    app.run(main)
