"""The compute ladder as one command: a run per budget (1x, 4x, 32x), each in its own workdir,
resumable at any point; then the same evaluation for every rung.

    sora-jax ladder --config=sora_jax/configs/scaling.py:demo --workdir=out/ladder

`<workdir>/<budget>/` is an ordinary training run (checkpoints, metrics, samples): killing the
ladder and rerunning the command resumes the unfinished rung from its last checkpoint and skips
finished ones. All rungs share one latent cache (`<workdir>/latent_cache`). Overrides given on
the command line (`--config.data.data_dir=...`) apply to every rung, except the fields the
budget decides (model size, steps, LR, warmup, checkpoint and eval cadence).
"""

from __future__ import annotations

import json
import math
import pathlib
import time

from sora_jax.pipelines import vae as vae_pipeline
from sora_jax.scaling import flops, plan


def flatten(config, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def rung_config(config, budget: str, size: str | None = None, latent_cache_dir: str | None = None):
    """The config of one rung: `config` (a `sora_jax/configs/scaling.py` preset with the command line's
    overrides) re-planned for `budget` (`plan.apply_budget` decides the model size, LR, steps and
    cadences; every other field is carried as given)."""
    rung = config.copy_and_resolve_references()
    with rung.unlocked():
        plan.apply_budget(rung, budget, config.ladder.size if size is None else size)
        if latent_cache_dir and not rung.data.latent_cache_dir:
            rung.data.latent_cache_dir = latent_cache_dir
    return rung


def table(config) -> list[dict]:
    """The ladder's plan: one row per rung (params, steps, tokens per parameter, expected time)."""
    rows = []
    for budget in config.ladder.rungs:
        rung = rung_config(config, budget)
        minutes = rung.total_steps * rung.ladder.flops_per_step / rung.ladder.assumed_flops_per_s / 60
        rows.append({"budget": budget, "compute_flops": rung.ladder.compute_flops, "model": rung.model.variant,
                     "params": rung.ladder.params, "steps": rung.total_steps,
                     "tokens_per_param": round(rung.total_steps * rung.data.batch_size
                                               * _tokens_per_clip(rung) / rung.ladder.params, 1),
                     "learning_rate": rung.optimizer.learning_rate, "expected_minutes": round(minutes, 1),
                     "epochs": plan.epochs(rung), "clips": plan.train_clips(rung)})
    return rows


def _tokens_per_clip(config) -> int:
    """Video tokens of the ladder's nominal (largest) clip."""
    vae = config.ladder.get("vae") or vae_pipeline.geometry(config.vae_workdir)  # runs from before 2026-12-05
    shape = flops.DiTShape.from_config(config.model, vae["channels"])
    return math.prod(shape.grid(plan.latent_thw(config.ladder.clip, vae)))


def format_table(rows: list[dict]) -> str:
    header = (f"{'budget':>6} {'FLOPs':>9} {'model':>8} {'params':>9} {'steps':>7} {'tok/param':>9} {'lr':>8} "
              f"{'minutes':>8} {'clips':>7} {'epochs':>7}")
    lines = [header]
    for r in rows:
        epochs = "?" if r["epochs"] is None else f"{r['epochs']:.1f}"
        clips = "?" if r["clips"] is None else f"{r['clips']:d}"
        lines.append(f"{r['budget']:>6} {r['compute_flops']:9.2e} {r['model']:>8} {r['params']:9,d} {r['steps']:7d} "
                     f"{r['tokens_per_param']:9.1f} {r['learning_rate']:8.2e} {r['expected_minutes']:8.1f} "
                     f"{clips:>7} {epochs:>7}")
    return "\n".join(lines)


def train_rungs(config, workdir: str | pathlib.Path, budgets=None, size: str | None = None) -> list[dict]:
    """Trains each rung not finished yet (resuming a started one); returns the rungs' summaries."""
    import jax

    from sora_jax.data import prepare
    from sora_jax.train import trainer, validate

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = str(workdir / "latent_cache")
    summaries = []
    rungs = {b: rung_config(config, b, size, latent_cache_dir=cache) for b in budgets or config.ladder.rungs}
    for rung in rungs.values():  # every rung's config, its VAE included, before data is prepared or anything runs
        validate.check(rung, jax.device_count())
    # One latent cache for every rung: built once, for the rung that reads the most clips.
    build_count = max(rung.data.num_train for rung in rungs.values())
    for budget, rung in rungs.items():
        with rung.unlocked():
            rung.data.cache_build_count = build_count
        run_dir = workdir / (budget if size is None else f"{budget}_{size}")
        if not (run_dir / "final_metrics.json").exists():
            if rung.data.dataset.startswith("physworld/"):
                prepare.prepare(rung.data.dataset, rung.data.data_dir)
            print(f"ladder: training {run_dir.name}: {rung.model.variant}, {rung.total_steps} steps, "
                  f"{rung.ladder.compute_flops:.2e} FLOPs", flush=True)
            started = time.perf_counter()
            result = trainer.train(rung, run_dir)
            _add_seconds(run_dir, time.perf_counter() - started)
            if result.get("preempted"):
                raise SystemExit(f"ladder: preempted during {run_dir.name}; rerun the same command to resume")
        summaries.append(summary(run_dir))
    return summaries


def _add_seconds(run_dir: pathlib.Path, seconds: float) -> None:
    """Wall time of a rung, summed over the pieces it ran in."""
    path = run_dir / "wall_seconds.json"
    total = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
    path.write_text(json.dumps({"seconds": total + seconds}))


def summary(run_dir: pathlib.Path) -> dict:
    """One finished rung: its budget, size, realized compute, tokens seen (nominal: steps x batch x
    tokens of the largest clip), validation losses, wall time."""
    import ml_collections

    config = json.loads((run_dir / "config.json").read_text())
    final = json.loads((run_dir / "final_metrics.json").read_text())
    wall = run_dir / "wall_seconds.json"
    return {"run": run_dir.name, "budget": config["ladder"]["budget"], "model": config["model"]["variant"],
            "depth": config["model"]["depth"], "width": config["model"]["width"], "params": config["ladder"]["params"],
            "planned_flops": config["ladder"]["compute_flops"], "compute_flops": final.get("compute_flops"),
            "steps": final["step"],
            "tokens": final["step"] * config["data"]["batch_size"]
            * _tokens_per_clip(ml_collections.ConfigDict(config)),
            "val_loss": final["val_loss"],
            "val_loss_by_t": [final[k] for k in sorted((k for k in final if k.startswith("val_loss_t")),
                                                       key=lambda k: int(k[len("val_loss_t"):]))],
            "wall_seconds": json.loads(wall.read_text())["seconds"] if wall.exists() else None}


def run(config, workdir: str | pathlib.Path, budgets=None) -> dict:
    """Trains the rungs, then scores every rung the same way (`compare.py`): validation losses,
    world probes and the side-by-side video; writes `<workdir>/ladder.json` and the plots."""
    from sora_jax.scaling import compare

    workdir = pathlib.Path(workdir)
    summaries = train_rungs(config, workdir, budgets)
    report = compare.compare(workdir, summaries, config, config.ladder.probe_samples, config.ladder.voe_quads)
    print(compare.terminal_table(report))
    print(f"ladder: wrote {workdir / 'ladder.json'}, {workdir / 'side_by_side.mp4'} (and .gif), "
          f"{workdir / 'loss_vs_compute.png'}, {workdir / 'probes_vs_compute.png'}")
    return report


PUBLISHED = ("ladder.json", "ladder.md", "loss_vs_compute.png", "probes_vs_compute.png", "side_by_side.gif",
             "side_by_side.png")


def publish(workdir: str | pathlib.Path, results: str | pathlib.Path, names=PUBLISHED) -> list[pathlib.Path]:
    """Copies the small outputs (JSON, tables, figures, the GIF) of a ladder or sweep to `results`
    (e.g. experiments/results/ladder_demo) for committing."""
    import shutil

    results = pathlib.Path(results)
    results.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        if (pathlib.Path(workdir) / name).exists():
            copied.append(pathlib.Path(shutil.copy2(pathlib.Path(workdir) / name, results / name)))
    return copied
