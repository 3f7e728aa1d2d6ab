"""IsoFLOP sweeps: at each budget, several model sizes around the rule's optimum, each trained
to exactly that budget (steps = budget / FLOPs per step), so loss vs size is a parabola whose
minimum is the compute-optimal size (Chinchilla approach 2).

The sweep runs budgets smallest first. Before the largest budget runs, the fit over the smaller
ones predicts its N* and L*, and the prediction is written to `predictions.json` with a time
stamp; after it runs, the report compares prediction and measurement.
"""

from __future__ import annotations

import json
import pathlib
import time

from sora_jax.scaling import fit, ladder
from sora_jax.scaling import plan as plan_lib


def sizes_around(config, budget: str, count: int) -> list[str]:
    """`count` MODEL_GRID shapes centred (in grid order) on the rule's choice for `budget`."""
    centre = ladder.rung_config(config, budget)
    index = plan_lib.MODEL_GRID.index((centre.model.depth, centre.model.width))
    start = min(max(0, index - count // 2), len(plan_lib.MODEL_GRID) - count)
    return [f"L{d}d{w}" for d, w in plan_lib.MODEL_GRID[start:start + count]]


def runs_of(summaries: list[dict]) -> list[dict]:
    """The fits' rows (compute, params, tokens, loss, ...) from run summaries (`ladder.summary`)."""
    return [{"compute": s["planned_flops"], "realized_flops": s["compute_flops"], "params": s["params"],
             "tokens": s["tokens"], "loss": s["val_loss"], "run": s["run"],
             "model": s["model"], "val_loss_by_t": s["val_loss_by_t"]} for s in summaries]


def depths(runs: list[dict]) -> list[int]:
    """Each run's depth (from its model's name, `L3d64` -> 3): the fits' shape groups."""
    return [plan_lib.parse_size(r["model"])[0] for r in runs]


def plan(config, budgets: list[str], sizes: int | list[str]) -> list[tuple[str, str]]:
    """The sweep's (budget, size) runs: `sizes` grid shapes centred on the rule's choice at each
    budget (a count), or the same named shapes (`L4d128`, ...) at every budget."""
    if isinstance(sizes, int):
        return [(budget, size) for budget in budgets for size in sizes_around(config, budget, sizes)]
    for size in sizes:
        plan_lib.parse_size(size)  # a malformed name is refused before anything runs
    return [(budget, size) for budget in budgets for size in sizes]


def sweep(config, workdir: str | pathlib.Path, budgets: list[str], sizes: int | list[str] = 5,
          bootstrap: int = 1000, engine=None, results: str | pathlib.Path | None = None) -> dict:
    """Trains every (budget, size) run on `engine` (`config.engine` by default) and fits them. With
    three or more budgets the largest runs last: the fit over the others predicts its N* and L*
    first (`predictions.json`), and the report sets prediction against measurement. With
    `results` (the folder `publish` writes), each run's record is copied to `<results>/runs/` as
    it finishes, and the records and prediction found there count as done (`records.py`): a sweep
    resumes from its committed results on a machine that kept no workdir."""
    from sora_jax.scaling import engines, records

    workdir = pathlib.Path(workdir)
    runs = plan(config, budgets, sizes)
    finished = None
    if results is not None:
        planned = {ladder.run_name(b, s): ladder.rung_config(config, b, s) for b, s in runs}
        finished = records.attach(pathlib.Path(results), workdir, planned, also=("predictions.json",))
    engine = engine or engines.make(config)
    workdir.mkdir(parents=True, exist_ok=True)
    predicted = budgets[-1] if len(budgets) >= 3 else None
    first = [run for run in runs if run[0] != predicted]
    summaries = ladder.train_runs(config, workdir, first, engine, indexed=runs, finished=finished)
    prediction = None
    if predicted is not None:
        prediction = _predict(workdir, runs_of(summaries), config, predicted, bootstrap)
        if results is not None:  # published before the runs it predicts start
            ladder.publish(workdir, results, ("predictions.json",))
        summaries += ladder.train_runs(config, workdir, [run for run in runs if run[0] == predicted], engine,
                                       indexed=runs, finished=finished)
    runs = runs_of(summaries)
    report = {"preset": config.ladder.preset, "budgets": budgets, "runs": runs,
              "fit": fit.fit_isoflop(runs, bootstrap=bootstrap),
              "joint": fit.fit_isoflop_joint(runs, bootstrap=bootstrap),
              "joint_by_depth": fit.fit_isoflop_joint(runs, bootstrap=bootstrap, groups=depths(runs)),
              "chinchilla": fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs],
                                               [r["loss"] for r in runs], bootstrap=bootstrap)}
    if prediction is not None:
        measured = next(b for b in report["fit"]["budgets"] if b["compute"] == prediction["compute"])
        floor = prediction.get("loss_opt_with_floor")  # predictions written before 2026-12-07 lack it
        report["prediction"] = {**prediction, "measured_n_opt": measured["n_opt"],
                                "measured_loss_opt": measured["loss_opt"],
                                "loss_error": prediction["loss_opt"] / measured["loss_opt"] - 1,
                                **({"loss_error_with_floor": floor / measured["loss_opt"] - 1} if floor else {}),
                                "n_opt_ratio": prediction["n_opt"] / measured["n_opt"]}
    return report


def _predict(workdir: pathlib.Path, runs: list[dict], config, budget: str, bootstrap: int) -> dict:
    """N* and L* at `budget` from the fit over the budgets run so far, written before it runs."""
    path = workdir / "predictions.json"
    compute = ladder.rung_config(config, budget).ladder.compute_flops
    if path.exists():  # a resumed sweep keeps the prediction it made before the run
        saved = json.loads(path.read_text())
        if saved["compute"] == compute:
            return saved
    so_far = fit.fit_isoflop(runs, bootstrap=bootstrap)
    prediction = {"budget": budget, **fit.predict_optimum(so_far, compute),
                  "from_budgets": [b["compute"] for b in so_far["budgets"]],
                  "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(prediction, indent=1))
    print(f"isoflop: predicted before running {budget}: N* = {prediction['n_opt']:.3g}, "
          f"L* = {prediction['loss_opt']:.4f} (a power law; {prediction['loss_opt_with_floor']:.4f} with an "
          f"irreducible term) (-> {path})", flush=True)
    return prediction


def write_report(report: dict, workdir: str | pathlib.Path) -> None:
    """`isoflop.json` and the parabolas with N*(C) and L*(C) (`isoflop.png`) in the sweep's workdir."""
    from sora_jax.scaling import plots

    workdir = pathlib.Path(workdir)
    (workdir / "isoflop.json").write_text(json.dumps(report, indent=1))
    plots.plot_isoflop(report["runs"], report["fit"], workdir / "isoflop.png", report.get("prediction"))


def summary_line(report: dict) -> str:
    fitted, chinchilla = report["fit"], report["chinchilla"]
    joint = report.get("joint")
    line = (f"N* = {fitted['n_opt']['k']:.3g} C^{fitted['n_opt']['a']:.3f} (95% CI {fitted['n_opt']['a_ci']}"
            + (f"; in one fit C^{joint['n_opt']['a']:.3f}, CI {joint['n_opt']['a_ci']}" if joint else "") + "); "
            f"L* = {fitted['loss']['A']:.3f} C^-{fitted['loss']['alpha']:.4f} (95% CI {fitted['loss']['alpha_ci']}); "
            f"Chinchilla approach 3: alpha={chinchilla['alpha']:.3f}, beta={chinchilla['beta']:.3f}, "
            f"a={chinchilla['a']:.3f}" + (f" (95% CI {chinchilla['a_ci']})" if "a_ci" in chinchilla else ""))
    if "prediction" in report:
        p = report["prediction"]
        line += (f"\nprediction for {p['budget']}: L* {p['loss_opt']:.4f} vs measured {p['measured_loss_opt']:.4f} "
                 f"({100 * p['loss_error']:+.1f} %"
                 + (f"; with an irreducible term {p['loss_opt_with_floor']:.4f}, "
                    f"{100 * p['loss_error_with_floor']:+.1f} %" if "loss_error_with_floor" in p else "")
                 + f"), N* {p['n_opt']:.3g} vs {p['measured_n_opt']:.3g}")
    return line


PUBLISHED = ("isoflop.json", "isoflop.png", "predictions.json", "runs.json")


def publish(workdir: str | pathlib.Path, report: dict, results: str | pathlib.Path) -> list[pathlib.Path]:
    """The sweep's small outputs copied to `results` for committing, plus `isoflop_fit.json`: the
    (k, a) of N* = k·C^a and the L* fit, which `scaling.py:<preset>,rule=fit` sizes models with
    once copied to `experiments/results/isoflop_fit.json`."""
    copied = ladder.publish(workdir, results, PUBLISHED)
    rule = pathlib.Path(results) / "isoflop_fit.json"
    rule.write_text(json.dumps({"preset": report["preset"], "budgets": report["budgets"],
                                "n_opt": report["fit"]["n_opt"], "loss": report["fit"]["loss"]}, indent=1))
    return [*copied, rule]
