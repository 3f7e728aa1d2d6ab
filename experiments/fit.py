r"""Refits an IsoFLOP sweep and redraws the figure: parabolas per budget, N*(C) and L*(C) power laws
with bootstrap CIs, approach 2 in one stage (also with a loss offset per depth), Chinchilla
approach 3.

From a finished sweep's report, or from the run records a sweep publishes as its runs finish
(`scaling/records.py`) — the fit of the runs done so far, while the sweep is still going:

    .venv/bin/python experiments/fit.py --sweep=experiments/results/isoflop_demo/isoflop.json --bootstrap=2000
    .venv/bin/python experiments/fit.py --records=experiments/results/isoflop_v2/runs \
        --out=experiments/results/isoflop_v2/interim --predict=2.4e13

`--predict=C` also prints N* and L* at compute C from the fit (`fit.predict_optimum`, as the
sweep's own prediction computes them), to compare with a committed `predictions.json` — and L* from
a law with an irreducible term (L = E + A·C^-alpha through the budgets' vertices), the form
IsoFLOP v2's missed prediction pointed to; committed before a larger budget runs, it is a
pre-registered prediction of its own:

    .venv/bin/python experiments/fit.py --records=experiments/results/isoflop_v2/runs \
        --out=experiments/results/isoflop_v2/prediction_64x --predict=9.6e13

`--predict_budget=64x` (with `--config`, the sweep's preset, and `--sizes`, its grid) also gives
each run that budget's sweep will train its loss under Chinchilla's approach 3 fitted to the
runs so far, L(N, D) = E + A/N^alpha + B/D^beta at the run's parameters and tokens — a prediction
per run, checkable as each one finishes:

    .venv/bin/python experiments/fit.py --records=experiments/results/isoflop_v2/runs \
        --out=experiments/results/isoflop_64x/prediction_per_run --predict=9.6e13 --predict_budget=64x

`--backtest` asks which L*(C) form to believe: every budget predicted from the budgets below it
alone, under each form, against its measured L* (`fit.backtest_loss_laws`):

    .venv/bin/python experiments/fit.py --records=experiments/results/isoflop_64x/runs --backtest \
        --out=experiments/results/isoflop_64x/backtest

While that budget runs, `--against` sets each of its finished runs beside its prediction (a budget
with fewer than three finished runs is left out of the fit, not refused; `--leave_out=16x` leaves
a finished budget out, to predict it from the others after the fact):

    .venv/bin/python experiments/fit.py --records=experiments/results/isoflop_64x/runs \
        --against=experiments/results/isoflop_64x/prediction_per_run/refit.json --out=/tmp/interim
"""

import json
import pathlib
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_SWEEP = flags.DEFINE_string("sweep", None, "isoflop.py's report (isoflop.json).")
_RECORDS = flags.DEFINE_string("records", None, "A folder of run records (<results>/runs/): fit the runs in it.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 2000, "Bootstrap resamples for the CIs.")
_PREDICT = flags.DEFINE_float("predict", None, "Print N* and L* predicted at this compute (FLOPs).")
_PREDICT_BUDGET = flags.DEFINE_string("predict_budget", None, "Predict the loss of each run of this budget "
                                      "(a sweep of --config with --sizes) under approach 3.")
_CONFIG = config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "The sweep's preset.")
_SIZES = flags.DEFINE_integer("sizes", 7, "The sweep's grid: this many sizes around the rule's choice.")
_LEAVE_OUT = flags.DEFINE_list("leave_out", [], "With --records: budgets (16x, ...) left out of the fit, "
                                "to predict them from the others (and check them with --against).")
_AGAINST = flags.DEFINE_string("against", None, "A refit.json with `runs_predicted` (--predict_budget): "
                               "set each finished run of that budget against its prediction.")
_BACKTEST = flags.DEFINE_bool("backtest", False, "Also predict each budget from the budgets below it alone, "
                               "under every L*(C) form, against its measured L* (`fit.backtest_loss_laws`).")
_OUT = flags.DEFINE_string("out", None, "Where to write the refit JSON and PNG (default: beside --sweep).")


def _runs_from_records(folder: pathlib.Path) -> tuple[list[dict], list[dict]]:
    """The finished runs in `folder`: those of budgets with >= 3 (fitted) and of the others."""
    from sora_jax.scaling import isoflop, ladder

    finished = sorted(p for p in folder.iterdir() if (p / "final_metrics.json").exists())
    if not finished:
        raise app.UsageError(f"--records={folder}: no run records (<name>/final_metrics.json) in it")
    summaries = [ladder.summary(p) for p in finished]
    left_out = {s["planned_flops"] for s in summaries if s["budget"] in _LEAVE_OUT.value}
    runs = isoflop.runs_of(summaries)
    counts = {c: sum(r["compute"] == c for r in runs) for c in {r["compute"] for r in runs}}
    for compute in sorted(counts):  # a budget still running: its runs are checked (--against), not fitted
        if counts[compute] < 3 and compute not in left_out:
            print(f"C = {compute:.2e}: {counts[compute]} run(s) finished, fewer than a parabola needs: left out")
            left_out.add(compute)
    return [r for r in runs if r["compute"] not in left_out], [r for r in runs if r["compute"] in left_out]


def _predict_runs(chinchilla: dict, budget: str) -> list[dict]:
    """Each run the sweep would train at `budget`: its size, parameters, tokens (its planned steps x
    batch x the nominal clip's tokens, as `ladder.summary` counts them) and approach 3's loss."""
    from sora_jax.scaling import fit, isoflop, ladder

    rows = []
    for size in isoflop.sizes_around(_CONFIG.value, budget, _SIZES.value):
        rung = ladder.rung_config(_CONFIG.value, budget, size)
        tokens = ladder.tokens_seen(rung, rung.total_steps)
        rows.append({"run": ladder.run_name(budget, size), "model": size, "params": rung.ladder.params,
                     "tokens": tokens, "compute": rung.ladder.compute_flops,
                     "loss_approach3": float(fit.chinchilla_loss(chinchilla, rung.ladder.params, tokens))})
    return rows


def _check(committed: dict, runs: list[dict]) -> list[dict]:
    """Each finished run that `committed` (a refit.json) predicted: measured loss, prediction, error."""
    predicted = {row["run"]: row for row in committed.get("runs_predicted", [])}
    if not predicted:
        raise app.UsageError(f"--against={_AGAINST.value}: no runs_predicted in it (written by --predict_budget)")
    return [{"run": r["run"], "loss": r["loss"], "loss_approach3": predicted[r["run"]]["loss_approach3"],
             "error": predicted[r["run"]]["loss_approach3"] / r["loss"] - 1}
            for r in runs if r["run"] in predicted]


def main(argv):
    del argv
    from sora_jax.scaling import fit, isoflop, plots

    if bool(_SWEEP.value) == bool(_RECORDS.value):
        raise app.UsageError("give one of --sweep (a report) or --records (a folder of run records)")
    if _SWEEP.value:
        path = pathlib.Path(_SWEEP.value)
        runs, pending, out = json.loads(path.read_text())["runs"], [], path.parent
    else:
        path = pathlib.Path(_RECORDS.value)
        (runs, pending), out = _runs_from_records(path), path.parent / "interim"
    out = pathlib.Path(_OUT.value) if _OUT.value else out
    try:
        sweep = fit.fit_isoflop(runs, bootstrap=_BOOTSTRAP.value)
    except ValueError as error:
        raise app.UsageError(f"{len(runs)} runs: {error}") from None
    joint = fit.fit_isoflop_joint(runs, bootstrap=_BOOTSTRAP.value)
    by_depth = fit.fit_isoflop_joint(runs, bootstrap=_BOOTSTRAP.value, groups=isoflop.depths(runs))
    chinchilla = fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs], [r["loss"] for r in runs],
                                    bootstrap=_BOOTSTRAP.value)
    report = {"runs": len(runs), "fit": sweep, "joint": joint, "joint_by_depth": by_depth, "chinchilla": chinchilla}
    if _PREDICT.value:
        report["prediction"] = {**fit.predict_optimum(sweep, _PREDICT.value, joint),
                                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if _PREDICT_BUDGET.value:
        report["runs_predicted"] = _predict_runs(chinchilla, _PREDICT_BUDGET.value)
        in_sample = fit.chinchilla_loss(chinchilla, [r["params"] for r in runs], [r["tokens"] for r in runs])
        report["approach3_in_sample_rms"] = float(np.sqrt(np.mean((np.log(in_sample) - np.log(
            [r["loss"] for r in runs])) ** 2)))
        report["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _BACKTEST.value:
        report["backtest"] = fit.backtest_loss_laws(runs)
    if _AGAINST.value:
        report["checked"] = _check(json.loads(pathlib.Path(_AGAINST.value).read_text()), runs + pending)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refit.json").write_text(json.dumps(report, indent=1))
    plots.plot_isoflop(runs, sweep, out / "refit.png", report.get("prediction"))
    print(f"{len(runs)} runs")
    for budget in sweep["budgets"]:
        print(f"C = {budget['compute']:.2e}: N* = {budget['n_opt']:.3g}, L* = {budget['loss_opt']:.4f}")
    print(f"N* = {sweep['n_opt']['k']:.3g} C^{sweep['n_opt']['a']:.3f}, 95% CI {sweep['n_opt']['a_ci']}")
    print(f"in one fit: N* ~ C^{joint['n_opt']['a']:.3f}, 95% CI {joint['n_opt']['a_ci']}, "
          f"rms residual {joint['rms_residual']:.4f}")
    offsets = ", ".join(f"depth {g}: {o['loss']:+.4f} {o['ci']}" for g, o in by_depth["offsets"].items())
    print(f"in one fit, a loss offset per depth (against depth {by_depth['reference']}: {offsets}): "
          f"N* ~ C^{by_depth['n_opt']['a']:.3f}, 95% CI {by_depth['n_opt']['a_ci']}, "
          f"rms residual {by_depth['rms_residual']:.4f}")
    print(f"L* = {sweep['loss']['A']:.3f} C^-{sweep['loss']['alpha']:.4f}, 95% CI {sweep['loss']['alpha_ci']}, "
          f"R² {sweep['loss']['r2']:.4f}")
    print(f"Chinchilla approach 3: a = {chinchilla['a']:.3f}, 95% CI {chinchilla.get('a_ci')}")
    if "prediction" in report:
        p = report["prediction"]
        print(f"at C = {p['compute']:.3g}: N* = {p['n_opt']:.4g} (one fit {p['n_opt_one_fit']:.4g}), "
              f"L* = {p['loss_opt']:.4f} (a power law) or {p['loss_opt_with_floor']:.4f} "
              f"(with an irreducible term E = {p['loss_law_with_floor']['E']:.3f})")
    for row in report.get("runs_predicted", []):
        print(f"{row['run']}: N = {row['params']:.3g}, D = {row['tokens']:.3g}, approach 3 predicts L = "
              f"{row['loss_approach3']:.4f}")
    if "runs_predicted" in report:
        print(f"approach 3 on the runs it was fitted to: rms error {report['approach3_in_sample_rms']:.4f} in log L")
    for row in report.get("checked", []):
        print(f"{row['run']}: measured L = {row['loss']:.4f}, approach 3 said {row['loss_approach3']:.4f} "
              f"({100 * row['error']:+.1f} %)")
    for row in report.get("backtest", []):
        errors = ", ".join(f"{form} {100 * error:+.1f} %" for form, error in row["error"].items())
        print(f"backtest: C = {row['compute']:.2e} ({row['step']:.0f}x the largest of {row['budgets_known']} known "
              f"budgets), L* {row['loss_opt']:.4f}: {errors}")
    print(f"wrote {out / 'refit.json'}, {out / 'refit.png'}")


if __name__ == "__main__":
    app.run(main)
