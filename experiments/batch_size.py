r"""Batch size against compute: at each budget, the rule's model trained at several batch sizes
for the same FLOPs (steps = budget / FLOPs per step), on the ladder preset's recipe. Two readings:

- the loss-vs-batch curve at fixed compute and its best batch B*(C) (a parabola in log B), fitted
  across budgets as B* = b0 · (C / C0)^beta — the rule `plan.py` applies with `ladder.batch_rule=fit`;
- the critical batch (McCandlish et al. 2018) from the validation-loss curves during the
  constant-LR phase: the steps S that each batch needs to reach a loss, fitted as
  S = S_min + E_min / B, B_crit = E_min / S_min.

    .venv/bin/python experiments/batch_size.py --workdir=runs/batch_size \
        --results=experiments/results/batch_size [--engine=ray] [--config.ladder.lr_scale=...]

Runs are ordinary workdirs (`<workdir>/<budget>_b<batch>`), trained by the sweep machinery
(resumable, one latent cache, `runs.json`); rerun to resume. The LR is the preset's for every
batch (a joint LR x batch fit, as in Yin et al. 2024, is the next step).
"""

import json
import pathlib

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "A scaling.py preset.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/batch_size", "One subdirectory per run.")
_RESULTS = flags.DEFINE_string("results", None, "Write batch_size.json/.md/.png and batch_fit.json here.")
_BUDGETS = flags.DEFINE_list("budgets", ["1x", "4x"], "Budgets (multiples of the preset's base compute).")
_BATCHES = flags.DEFINE_list("batches", ["2", "4", "8", "16", "32", "64"], "Batch sizes (clips of the largest "
                             "latent; shorter clips and images batch up to 4x, as in every ladder run).")
_SKIP = flags.DEFINE_list("skip", [], "Runs of the grid to leave out (e.g. 4x_b2: 8,000 steps of batch 2).")
_EVALS = flags.DEFINE_integer("evals", 10, "Validation-loss evaluations per run (the curves for B_crit).")
_ENGINE = flags.DEFINE_enum("engine", "local", ["local", "ray"], "Where the runs execute.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: report the budgets whose runs all finished.")
TARGETS = (1.0, 1.02, 1.05)  # critical-batch losses: x the loss every run reaches in its constant-LR phase


def run_configs(config, workdir: pathlib.Path) -> dict:
    """{run name: config}: each budget's rung at each batch size, evaluated `--evals` times."""
    from sora_jax.scaling import ladder

    runs = {}
    for budget in _BUDGETS.value:
        for batch in (int(b) for b in _BATCHES.value):
            base = config.copy_and_resolve_references()
            with base.unlocked():
                base.ladder.batch_rule = "preset"
                base.data.batch_size, base.data.max_batch_size = batch, 4 * batch
            rung = ladder.rung_config(base, budget, latent_cache_dir=str(workdir / "latent_cache"))
            with rung.unlocked():
                rung.log.eval_every_steps = max(1, rung.total_steps // _EVALS.value)
            runs[f"{budget}_b{batch}"] = rung
    return {name: rung for name, rung in runs.items() if name not in _SKIP.value}


def curve(run_dir: pathlib.Path) -> list[tuple[int, float]]:
    """(step, validation loss) of every evaluation the run logged."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return sorted({r["step"]: r["val_loss"] for r in rows if "val_loss" in r}.items())


def steps_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """The first step at which the curve reaches `target` (linear between evaluations), or None."""
    for (s0, l0), (s1, l1) in zip([(0, np.inf)] + points, points):
        if l1 <= target:
            return float(s1) if not np.isfinite(l0) else s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
    return None


def critical_batch(runs: dict, summaries: dict, workdir: pathlib.Path, names: list[str]) -> list[dict]:
    """B_crit at a few loss levels from the constant-LR part of each run's curve."""
    from sora_jax.scaling import fit

    phase = {n: [(s, loss) for s, loss in curve(workdir / n)
                 if s <= (1 - runs[n].optimizer.cooldown_fraction) * runs[n].total_steps] for n in names}
    reached = max(min(loss for _, loss in points) for points in phase.values() if points)
    out = []
    for factor in TARGETS:
        target = reached * factor
        rows = [(runs[n].data.batch_size, steps_to_reach(phase[n], target)) for n in names if phase[n]]
        rows = [(b, s) for b, s in rows if s is not None]
        if len(rows) >= 3:
            fitted = fit.fit_critical_batch(*zip(*rows))
            out.append({"target_loss": target, "points": [{"batch": b, "steps": s} for b, s in rows], **fitted})
    return out


def main(argv):
    del argv
    from sora_jax.scaling import engines, fit, ladder

    config = _CONFIG.value
    config.engine.name = _ENGINE.value
    workdir = pathlib.Path(_WORKDIR.value)
    runs = run_configs(config, workdir)
    budgets = list(_BUDGETS.value)
    if _REPORT_ONLY.value:
        summaries = {n: ladder.summary(workdir / n) for n in runs if (workdir / n / "final_metrics.json").exists()}
        budgets = [b for b in budgets if all(n in summaries for n in runs if n.startswith(f"{b}_"))]
        if not budgets:
            raise SystemExit(f"no budget has all its runs finished in {workdir}")
    else:
        summaries = dict(zip(runs, ladder.train_configs(workdir, runs, engines.make(config))))
    report = {"preset": config.ladder.preset, "parametrization": config.model.parametrization, "budgets": {}}
    for budget in budgets:
        names = [n for n in runs if n.startswith(f"{budget}_")]
        batches = np.array([runs[n].data.batch_size for n in names], np.float64)
        losses = np.array([summaries[n]["val_loss"] for n in names])
        report["budgets"][budget] = {
            "compute_flops": runs[names[0]].ladder.compute_flops, "model": runs[names[0]].model.variant,
            "lr": runs[names[0]].optimizer.learning_rate,
            "runs": [{"batch": int(b), "steps": runs[n].total_steps, "val_loss": float(loss)}
                     for n, b, loss in zip(names, batches, losses)],
            "best_batch": fit.grid_optimum(batches, losses),
            "critical": critical_batch(runs, summaries, workdir, names)}
    rows = report["budgets"]
    compute = np.array([rows[b]["compute_flops"] for b in budgets])
    best = np.array([rows[b]["best_batch"] for b in budgets])
    if len(budgets) >= 2:
        beta, log_b0 = np.polyfit(np.log(compute / compute[0]), np.log(best), 1)
        report["rule"] = {"b0": float(np.exp(log_b0)), "c0": float(compute[0]), "beta": float(beta),
                          "source": f"experiments/batch_size.py: best batch at {', '.join(budgets)} "
                                    f"({config.ladder.preset} preset, {config.model.parametrization})"}
    lines = ["| budget | model | " + " | ".join(f"batch {b}" for b in _BATCHES.value)
             + " | best batch | B_crit (loss) |", "|---" * (len(_BATCHES.value) + 4) + "|"]
    for budget in budgets:
        row = rows[budget]
        losses = {r["batch"]: r["val_loss"] for r in row["runs"]}
        crit = "; ".join(f"{c['B_crit']:.0f} ({c['target_loss']:.3f})" for c in row["critical"]) or "–"
        lines.append(f"| {budget} | {row['model']} | " + " | ".join(f"{losses[int(b)]:.4f}" if int(b) in losses else "–"
                                                                   for b in _BATCHES.value)
                     + f" | {row['best_batch']:.1f} | {crit} |")
    if "rule" in report:
        lines.append(f"\nRule: B* = {report['rule']['b0']:.2f} · (C / {report['rule']['c0']:.2e})^"
                     f"{report['rule']['beta']:.3f}")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if _RESULTS.value:
        write_results(pathlib.Path(_RESULTS.value), report, markdown)


def write_results(out: pathlib.Path, report: dict, markdown: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "batch_size.json").write_text(json.dumps(report, indent=1))
    (out / "batch_size.md").write_text(markdown)
    if "rule" in report:
        (out / "batch_fit.json").write_text(json.dumps(report["rule"], indent=1))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for budget, row in report["budgets"].items():
        line, = left.plot([r["batch"] for r in row["runs"]], [r["val_loss"] for r in row["runs"]], marker="o",
                          label=f"{budget} ({row['compute_flops']:.1e} FLOPs, {row['model']})")
        left.axvline(row["best_batch"], color=line.get_color(), ls=":", lw=1)
        for critical in row["critical"][:1]:
            points = critical["points"]
            right.plot([p["batch"] * p["steps"] for p in points], [p["steps"] for p in points], marker="o",
                       color=line.get_color(), ls="none",
                       label=f"{budget}: loss {critical['target_loss']:.3f}, B_crit {critical['B_crit']:.0f}")
            b = np.geomspace(min(p["batch"] for p in points), max(p["batch"] for p in points), 50)
            s = critical["S_min"] + critical["E_min"] / b
            right.plot(b * s, s, color=line.get_color(), lw=1)
    left.set(xscale="log", xlabel="batch (clips)", ylabel="validation loss at equal FLOPs",
             title="loss vs batch at fixed compute")
    left.legend(fontsize=8)
    right.set(xscale="log", yscale="log", xlabel="clips seen E", ylabel="steps S",
              title="steps vs clips to reach a loss (S = S_min + E_min/B)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "batch_size.png", dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
