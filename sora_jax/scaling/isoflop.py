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


def _runs(summaries: list[dict]) -> list[dict]:
    return [{"compute": s["planned_flops"], "realized_flops": s["compute_flops"], "params": s["params"],
             "tokens": s["tokens"], "loss": s["val_loss"], "run": s["run"],
             "model": s["model"], "val_loss_by_t": s["val_loss_by_t"]} for s in summaries]


def sweep(config, workdir: str | pathlib.Path, budgets: list[str], count: int = 5, bootstrap: int = 1000) -> dict:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    summaries = []
    prediction = None
    for position, budget in enumerate(budgets):
        if position == len(budgets) - 1 and position >= 2:
            prediction = _predict(workdir, _runs(summaries), config, budget, bootstrap)
        for size in sizes_around(config, budget, count):
            summaries += ladder.train_rungs(config, workdir, [budget], size=size)
    runs = _runs(summaries)
    report = {"preset": config.ladder.preset, "budgets": budgets, "runs": runs,
              "fit": fit.fit_isoflop(runs, bootstrap=bootstrap),
              "chinchilla": fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs],
                                               [r["loss"] for r in runs])}
    if prediction is not None:
        measured = next(b for b in report["fit"]["budgets"] if b["compute"] == prediction["compute"])
        report["prediction"] = {**prediction, "measured_n_opt": measured["n_opt"],
                                "measured_loss_opt": measured["loss_opt"],
                                "loss_error": prediction["loss_opt"] / measured["loss_opt"] - 1,
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
    prediction = {"compute": compute, "budget": budget,
                  "n_opt": so_far["n_opt"]["k"] * compute ** so_far["n_opt"]["a"],
                  "loss_opt": float(fit.predict(so_far["loss"], compute)),
                  "from_budgets": [b["compute"] for b in so_far["budgets"]],
                  "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(prediction, indent=1))
    print(f"isoflop: predicted before running {budget}: N* = {prediction['n_opt']:.3g}, "
          f"L* = {prediction['loss_opt']:.4f} (-> {path})", flush=True)
    return prediction
