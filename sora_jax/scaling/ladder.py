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
import os
import pathlib
import time

from sora_jax.pipelines import vae as vae_pipeline
from sora_jax.scaling import flops, plan


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
                     "params": rung.ladder.params, "batch": rung.data.batch_size, "steps": rung.total_steps,
                     "tokens_per_param": round(tokens_seen(rung, rung.total_steps) / rung.ladder.params, 1),
                     "learning_rate": rung.optimizer.learning_rate, "expected_minutes": round(minutes, 1),
                     "epochs": plan.epochs(rung), "clips": plan.train_clips(rung)})
    return rows


def tokens_seen(config, steps: int) -> int:
    """Video tokens a run of `config` sees in `steps` (nominal: steps x batch x tokens of the
    ladder's largest clip) — the D of the scaling fits."""
    vae = config.ladder.get("vae") or vae_pipeline.geometry(config.vae_workdir)  # runs from before 2026-12-05
    shape = flops.DiTShape.from_config(config.model, vae["channels"])
    return steps * config.data.batch_size * math.prod(shape.grid(plan.latent_thw(config.ladder.clip, vae)))


def format_table(rows: list[dict]) -> str:
    header = (f"{'budget':>6} {'FLOPs':>9} {'model':>8} {'params':>9} {'batch':>5} {'steps':>7} {'tok/param':>9} "
              f"{'lr':>8} "
              f"{'minutes':>8} {'clips':>7} {'epochs':>7}")
    lines = [header]
    for r in rows:
        epochs = "?" if r["epochs"] is None else f"{r['epochs']:.1f}"
        clips = "?" if r["clips"] is None else f"{r['clips']:d}"
        lines.append(f"{r['budget']:>6} {r['compute_flops']:9.2e} {r['model']:>8} {r['params']:9,d} {r['batch']:5d} "
                     f"{r['steps']:7d} "
                     f"{r['tokens_per_param']:9.1f} {r['learning_rate']:8.2e} {r['expected_minutes']:8.1f} "
                     f"{clips:>7} {epochs:>7}")
    return "\n".join(lines)


def run_name(budget: str, size: str | None) -> str:
    return budget if size is None else f"{budget}_{size}"


def train_rungs(config, workdir: str | pathlib.Path, budgets=None, size: str | None = None, engine=None) -> list[dict]:
    """Trains each rung not finished yet (resuming a started one); returns the rungs' summaries."""
    return train_runs(config, workdir, [(budget, size) for budget in budgets or config.ladder.rungs], engine)


def train_runs(config, workdir: str | pathlib.Path, runs: list[tuple[str, str | None]], engine=None,
               indexed: list[tuple[str, str | None]] | None = None, finished=None) -> list[dict]:
    """Trains the (budget, size) runs not finished yet, each in `<workdir>/<budget>[_<size>]`, on
    `engine` (`engines.make(config)` by default: `config.engine`); returns their summaries in the
    order given. `<workdir>/runs.json` indexes the runs (or all of `indexed`: a sweep's, trained in
    phases) and their state as they finish; `finished(run_dir)`, if given, is called as each does."""
    from sora_jax.scaling import engines

    engine = engine or engines.make(config)
    cache = str(pathlib.Path(workdir) / "latent_cache")
    rungs = {run_name(budget, size): rung_config(config, budget, size, latent_cache_dir=cache) for budget, size in runs}
    listed = {run_name(budget, size): rungs.get(run_name(budget, size)) or rung_config(config, budget, size)
              for budget, size in indexed or runs}
    return train_configs(workdir, rungs, engine, listed, finished)


def train_configs(workdir: str | pathlib.Path, rungs: dict, engine, listed: dict | None = None,
                  finished=None) -> list[dict]:
    """Trains `rungs` ({run name: its config}, e.g. `rung_config`s, or an experiment's variants of
    them) not finished yet in `<workdir>/<name>/`; returns their summaries in order. Every config is
    checked before anything is prepared or runs; the data and the shared latent cache (built once,
    for the run that reads the most clips) are made as a job of their own before the runs start
    side by side; `<workdir>/runs.json` indexes `listed` (default: the rungs) as runs finish, and
    `finished(run_dir)` (if given) is called for each."""
    import jax

    from sora_jax.scaling import engines
    from sora_jax.train import validate

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for rung in rungs.values():  # every rung's config, its VAE included, before data is prepared or anything runs
        validate.check(rung, jax.device_count())
    build_count = max(rung.data.num_train for rung in rungs.values())
    for rung in rungs.values():
        with rung.unlocked():
            rung.data.cache_build_count = build_count
    todo = [name for name in rungs if not (workdir / name / "final_metrics.json").exists()]
    listed = listed or rungs

    def on_done(job, result) -> None:
        write_index(workdir, listed)
        if finished:
            finished(workdir / job.name)

    write_index(workdir, listed)
    if todo:
        engine.map([engines.Job("inputs", prepare_inputs, (rungs[todo[0]], str(workdir / todo[0])))])
        engine.map([engines.Job(name, train_run, (rungs[name], str(workdir / name))) for name in todo],
                   on_done=on_done)
    return [summary(workdir / name) for name in rungs]


def prepare_inputs(rung, run_dir: str) -> None:
    """A job: the rung's dataset prepared (PhysWorld renders its split once) and the latent caches
    its runs share built, so runs started side by side find them made."""
    from sora_jax.data import prepare, worlds
    from sora_jax.train import trainer

    if worlds.is_world(rung.data.dataset):
        prepare.prepare(rung.data.dataset, rung.data.data_dir)
    task = trainer.make_task(rung, pathlib.Path(run_dir))
    for split in (rung.data.train_split, rung.data.eval_split):
        task.cache(split)


def train_run(rung, run_dir: str) -> dict:
    """A job: trains one run to its budget (resuming its last checkpoint), records where each
    attempt ran (`attempts.json`: host, process) and its wall time; returns its summary."""
    import socket

    from sora_jax.scaling import engines
    from sora_jax.train import trainer

    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    attempts_file = run_dir / "attempts.json"
    attempts = json.loads(attempts_file.read_text()) if attempts_file.exists() else []
    attempts.append({"host": socket.gethostname(), "pid": os.getpid(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    attempts_file.write_text(json.dumps(attempts, indent=1))
    print(f"ladder: training {run_dir.name}: {rung.model.variant}, {rung.total_steps} steps, "
          f"{rung.ladder.compute_flops:.2e} FLOPs", flush=True)
    started = time.perf_counter()
    try:
        result = trainer.train(rung, run_dir)
    finally:
        _release_compiled()
    _add_seconds(run_dir, time.perf_counter() - started)
    if result.get("preempted"):
        raise engines.Preempted(f"ladder: preempted during {run_dir.name} at step {result['step']}")
    if result.get("stop_requested"):  # the run finished; the signal stops the sweep before the next
        raise engines.Preempted(f"ladder: {result['stop_requested']} while {run_dir.name} finished (it is done)")
    return summary(run_dir)


def _release_compiled() -> None:
    """Drops the finished run's compiled programs. One process trains run after run (the local
    engine; a reused Ray worker): XLA:CPU maps each compiled kernel's code and data into memory,
    and jax's caches keep every run's programs alive — ~3,500-5,000 mappings a run here, so a
    sweep died in its 13th run at the kernel's 65,530-mapping limit (`vm.max_map_count`: "LLVM
    compilation error: Cannot allocate memory"). Cleared, a run leaves ~400 behind."""
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


def write_index(workdir: pathlib.Path, rungs: dict) -> None:
    """`<workdir>/runs.json`: every run of the ladder or sweep, its plan and its state (`done`,
    `started`: a checkpoint to resume, `pending`), with the results of the finished ones."""
    rows = []
    for name, rung in rungs.items():
        run_dir = workdir / name
        row = {"run": name, "budget": rung.ladder.budget, "model": rung.model.variant, "params": rung.ladder.params,
               "planned_flops": rung.ladder.compute_flops, "steps": rung.total_steps}
        if (run_dir / "final_metrics.json").exists():
            done = summary(run_dir)
            row.update(state="done", val_loss=done["val_loss"], compute_flops=done["compute_flops"],
                       wall_seconds=done["wall_seconds"])
        else:
            row["state"] = "started" if (run_dir / "checkpoints").exists() else "pending"
        rows.append(row)
    path = workdir / "runs.json"
    path.with_suffix(".tmp").write_text(json.dumps(rows, indent=1))
    path.with_suffix(".tmp").replace(path)


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
            "tokens": tokens_seen(ml_collections.ConfigDict(config), final["step"]),
            "val_loss": final["val_loss"],
            "val_loss_by_t": [final[k] for k in sorted((k for k in final if k.startswith("val_loss_t")),
                                                       key=lambda k: int(k[len("val_loss_t"):]))],
            "wall_seconds": json.loads(wall.read_text())["seconds"] if wall.exists() else None}


def run(config, workdir: str | pathlib.Path, budgets=None) -> dict:
    """Trains the rungs, then scores every rung the same way (`compare.py`): validation losses,
    world probes and the side-by-side video; writes `<workdir>/ladder.json` and the plots."""
    from sora_jax.scaling import compare, engines

    workdir = pathlib.Path(workdir)
    engine = engines.make(config)
    summaries = train_rungs(config, workdir, budgets, engine=engine)
    scoring = (workdir, summaries, config, config.ladder.probe_samples, config.ladder.voe_quads)
    report, = engine.map([engines.Job("compare", compare.compare, scoring)])
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
