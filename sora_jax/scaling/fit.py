"""Scaling-law fits: IsoFLOP parabolas, power laws in compute with bootstrap CIs, and Chinchilla's
approach 3.

    optimum = isoflop_optimum(log_n, losses)                 # one budget: N*, L* from a parabola
    law = fit_power_law(compute, losses)                     # L = A · C^-alpha (+ E)
    sweep = fit_isoflop(runs)                                # every budget -> N*(C), L*(C), CIs
    at = predict_optimum(sweep, compute)                     # N*, L* at a budget not run yet
    joint = fit_isoflop_joint(runs)                          # the same, parabolas and line in one fit
    by_depth = fit_isoflop_joint(runs, groups=depths)        # ... with a loss offset per depth
    parametric = fit_chinchilla(n, d, losses)                # L = E + A/N^alpha + B/D^beta
    loss = chinchilla_loss(parametric, n, d)                 # ... and what it says for other runs
    best = grid_optimum(lrs, losses)                         # an LR or batch grid's best value
    critical = fit_critical_batch(batches, steps)            # McCandlish et al.: S = S_min + E_min/B

Points are plain floats (FLOPs, parameters, tokens, losses), so the fits run on any sweep,
including the synthetic ones the tests use to check that known exponents come back.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize


def isoflop_optimum(log_n, losses) -> tuple[float, float, float]:
    """A parabola of loss vs ln N at one budget -> (ln N*, L*, curvature). A flat or inverted
    parabola (no interior minimum) returns the best point and curvature <= 0."""
    log_n, losses = np.asarray(log_n, np.float64), np.asarray(losses, np.float64)
    a, b, c = np.polyfit(log_n, losses, 2)
    if a <= 0:
        best = int(np.argmin(losses))
        return float(log_n[best]), float(losses[best]), float(a)
    vertex = -b / (2 * a)
    return float(vertex), float(c - b * b / (4 * a)), float(a)


def grid_optimum(values, losses) -> float:
    """The best of a geometric grid (LRs, batch sizes): the minimum of a parabola in log value
    through the grid's lowest point and its two neighbours, kept between them; the lowest point
    itself when it is at an edge (the optimum lies outside the grid) or the parabola is flat."""
    values, losses = np.asarray(values, np.float64), np.asarray(losses, np.float64)
    i = int(np.argmin(losses))
    if i == 0 or i == len(values) - 1:
        return float(values[i])
    x, y = np.log(values[i - 1:i + 2]), losses[i - 1:i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return float(np.exp(np.clip(-b / (2 * a), x[0], x[-1]))) if a > 0 else float(values[i])


def fit_critical_batch(batches, steps) -> dict[str, float]:
    """McCandlish et al. (2018): the steps S a batch size B needs to reach a given loss follow
    (S / S_min - 1)(E / E_min - 1) = 1 with E = B·S, i.e. S = S_min + E_min / B, a line in 1/B.
    Returns {S_min, E_min, B_crit = E_min / S_min} (least squares; needs >= 2 batch sizes)."""
    batches, steps = np.asarray(batches, np.float64), np.asarray(steps, np.float64)
    e_min, s_min = np.polyfit(1.0 / batches, steps, 1)
    return {"S_min": float(s_min), "E_min": float(e_min),
            "B_crit": float(e_min / s_min) if s_min > 0 else float("inf")}


def fit_power_law(compute, losses, offset: bool = False) -> dict[str, float]:
    """L = A · C^-alpha (a line in log-log), or with `offset` L = E + A · C^-alpha (least squares
    on log L). Returns {A, alpha, E, r2}: r2 is the share of log L's variance the law explains."""
    compute, losses = np.asarray(compute, np.float64), np.asarray(losses, np.float64)
    slope, intercept = np.polyfit(np.log(compute), np.log(losses), 1)
    if not offset:
        law = {"A": float(np.exp(intercept)), "alpha": float(-slope), "E": 0.0}
        return {**law, "r2": _r2(np.log(losses), np.log(predict(law, compute)))}
    scale = np.log(compute).mean()

    def residuals(p):
        log_a, alpha, log_e = p
        predicted = np.exp(log_e) + np.exp(log_a - alpha * (np.log(compute) - scale))
        return np.log(predicted) - np.log(losses)

    start = (intercept + slope * scale + np.log(0.5), max(-slope, 1e-3), np.log(0.5 * losses.min()))
    log_a, alpha, log_e = optimize.least_squares(residuals, start).x
    law = {"A": float(np.exp(log_a + alpha * scale)), "alpha": float(alpha), "E": float(np.exp(log_e))}
    return {**law, "r2": _r2(np.log(losses), np.log(predict(law, compute)))}


def _r2(observed: np.ndarray, fitted: np.ndarray) -> float:
    spread = np.sum((observed - observed.mean()) ** 2)
    return float(1 - np.sum((observed - fitted) ** 2) / spread) if spread > 0 else float("nan")


def predict(law: dict, compute) -> np.ndarray:
    return law["E"] + law["A"] * np.asarray(compute, np.float64) ** -law["alpha"]


def fit_isoflop(runs: list[dict], bootstrap: int = 1000, seed: int = 0) -> dict:
    """runs: [{compute, params, loss}] with ≥ 3 sizes per budget. Per budget a parabola gives
    N* and L*; across budgets N* = k · C^a and L* = A · C^-alpha. CIs (95 %) resample the runs of
    each budget with replacement and refit everything."""
    budgets = sorted({r["compute"] for r in runs})
    by_budget = {c: [r for r in runs if r["compute"] == c] for c in budgets}
    if len(budgets) < 2 or any(len(v) < 3 for v in by_budget.values()):
        raise ValueError("an IsoFLOP fit needs >= 2 budgets with >= 3 sizes each")

    def fit(groups):
        optima = [isoflop_optimum(np.log([r["params"] for r in g]), [r["loss"] for r in g]) for g in groups]
        log_n_opt = np.array([o[0] for o in optima])
        slope, intercept = np.polyfit(np.log(budgets), log_n_opt, 1)
        law = fit_power_law(budgets, [o[1] for o in optima])
        return optima, {"k": float(np.exp(intercept)), "a": float(slope)}, law

    optima, n_opt, loss_law = fit([by_budget[c] for c in budgets])
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        groups = [[g[i] for i in rng.integers(0, len(g), len(g))] for g in (by_budget[c] for c in budgets)]
        if any(len({r["params"] for r in g}) < 3 for g in groups):
            continue  # a parabola needs three distinct sizes
        _, n_b, l_b = fit(groups)
        samples.append((n_b["a"], l_b["alpha"]))
    samples = np.array(samples).reshape(-1, 2)

    def ci(column):  # no resamples (bootstrap=0): no interval
        return ([float(np.nanpercentile(samples[:, column], q)) for q in (2.5, 97.5)] if len(samples)
                else [float("nan")] * 2)

    return {
        "budgets": [
            {"compute": c, "n_opt": float(np.exp(o[0])), "loss_opt": o[1], "curvature": o[2],
             "sizes": len(by_budget[c])} for c, o in zip(budgets, optima)],
        "n_opt": {**n_opt, "a_ci": ci(0)},
        "loss": {**loss_law, "alpha_ci": ci(1)},
        "bootstrap_samples": int(len(samples)),
    }


def loss_law_with_floor(sweep: dict) -> dict:
    """L* = E + A · C^-alpha through a `fit_isoflop` result's vertices (>= 4 budgets to pin E)."""
    return fit_power_law([b["compute"] for b in sweep["budgets"]], [b["loss_opt"] for b in sweep["budgets"]],
                         offset=True)


def predict_optimum(sweep: dict, compute: float, joint: dict | None = None) -> dict:
    """N* and L* at `compute` from a `fit_isoflop` result, as a prediction for a budget not run yet:
    N* = k · C^a; L* from its power law through the budgets' vertices, and from the same vertices
    under a law with an irreducible term (L = E + A · C^-alpha: a loss curve that flattens); with
    `joint` (a `fit_isoflop_joint` result) also that fit's N*."""
    with_floor = loss_law_with_floor(sweep)
    prediction = {"compute": float(compute), "n_opt": sweep["n_opt"]["k"] * compute ** sweep["n_opt"]["a"],
                  "loss_opt": float(predict(sweep["loss"], compute)),
                  "loss_law_with_floor": with_floor, "loss_opt_with_floor": float(predict(with_floor, compute))}
    if joint is not None:
        prediction["n_opt_one_fit"] = joint["n_opt"]["k"] * compute ** joint["n_opt"]["a"]
    return prediction


def backtest_loss_laws(runs: list[dict], min_budgets: int = 3) -> list[dict]:
    """Which L*(C) form extrapolates, measured on the sweep itself: each budget from the
    (`min_budgets` + 1)-th up is predicted from the budgets below it alone — as a prediction
    committed before it ran would have been — and set against its own parabola's L*. Forms: the
    power law through the known vertices; with an irreducible term (from four known budgets); a
    power law through the last three known vertices only (a curve that bends keeps its local
    slope); Chinchilla's approach 3 fitted to the known runs, evaluated at the target budget's own
    runs (their N and D) and put through the same parabola as the measurement. Runs need
    compute, params, tokens and loss. Returns one row per predicted budget."""
    budgets = sorted({r["compute"] for r in runs})
    measured = fit_isoflop(runs, bootstrap=0)["budgets"]
    rows = []
    for k in range(min_budgets, len(budgets)):
        target, known = budgets[k], [r for r in runs if r["compute"] < budgets[k]]
        sweep = fit_isoflop(known, bootstrap=0)
        vertices = [b["loss_opt"] for b in sweep["budgets"]]
        forms = {"power law": float(predict(sweep["loss"], target)),
                 "last three budgets": float(predict(fit_power_law(budgets[k - 3:k], vertices[-3:]), target))}
        if k >= 4:
            forms["with a floor"] = float(predict(loss_law_with_floor(sweep), target))
        chinchilla = fit_chinchilla([r["params"] for r in known], [r["tokens"] for r in known],
                                    [r["loss"] for r in known])
        mine = [r for r in runs if r["compute"] == target]
        at_runs = chinchilla_loss(chinchilla, [r["params"] for r in mine], [r["tokens"] for r in mine])
        forms["approach 3"] = isoflop_optimum(np.log([r["params"] for r in mine]), at_runs)[1]
        truth = measured[k]["loss_opt"]
        rows.append({"compute": target, "step": target / budgets[k - 1], "budgets_known": k, "loss_opt": truth,
                     "predicted": forms, "error": {form: value / truth - 1 for form, value in forms.items()}})
    return rows


def fit_isoflop_joint(runs: list[dict], bootstrap: int = 1000, seed: int = 0, groups: list | None = None) -> dict:
    """Approach 2 in one stage: every budget's parabola (its own L* and curvature) fitted together
    with their vertices on one line, ln N* = ln k + a ln C. `fit_isoflop` fits each parabola alone
    and then a line through the vertices, weighting a vertex that its budget pins loosely (sizes
    scattered about the parabola, a flat bottom) like one it pins tightly; here each run weighs
    the same, so the exponent follows all runs at once. L*(C) as in `fit_isoflop`, through the
    fitted vertices. CIs (95 %) resample each budget's runs, as `fit_isoflop` does.

    `groups`: a label per run (its depth, say). Each label but the most common (the reference)
    adds one constant to its runs' losses at every budget (`offsets`, with CIs): a shape effect
    that a parabola in N alone takes for scatter, and that throws its vertex. L* and N* are then
    the reference shape's."""
    log_c = np.log(np.asarray([r["compute"] for r in runs], np.float64))
    log_n = np.log(np.asarray([r["params"] for r in runs], np.float64))
    losses = np.asarray([r["loss"] for r in runs], np.float64)
    budgets = sorted(set(log_c))
    which = np.array([budgets.index(c) for c in log_c])
    count, centre = len(budgets), float(np.mean(budgets))
    if count < 2 or any((which == b).sum() < 3 for b in range(count)):
        raise ValueError("an IsoFLOP fit needs >= 2 budgets with >= 3 sizes each")
    labels = [] if groups is None else list(groups)
    if groups is not None and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} group labels for {len(runs)} runs")
    reference = max(set(labels), key=labels.count) if labels else None
    others = sorted(set(labels) - {reference}, key=str)
    member = np.array([[label == g for g in others] for label in labels], np.float64).reshape(len(runs), len(others))
    alone = [isoflop_optimum(log_n[which == b], losses[which == b]) for b in range(count)]
    slope, intercept = np.polyfit(np.asarray(budgets) - centre, [o[0] for o in alone], 1)
    start = np.array([intercept, slope, *(o[1] for o in alone), *(max(o[2], 1e-3) for o in alone),
                      *np.zeros(len(others))])
    offsets = np.asarray(budgets) - centre

    def residuals(p, rows):  # p: ln k (at the centre), a, L*_b..., curvature_b..., group offsets...
        vertex = (p[0] + p[1] * offsets)[which[rows]]
        shape = member[rows] @ p[2 + 2 * count:]
        return p[2 + which[rows]] + p[2 + count + which[rows]] * (log_n[rows] - vertex) ** 2 + shape - losses[rows]

    def fit(rows):
        p = optimize.least_squares(residuals, start, args=(rows,)).x
        return p, fit_power_law(np.exp(budgets), p[2:2 + count])

    everything = np.arange(len(losses))
    best, law = fit(everything)
    rng = np.random.default_rng(seed)
    groups_by_budget = [np.flatnonzero(which == b) for b in range(count)]
    samples = []
    for _ in range(bootstrap):
        picks = [rng.choice(g, len(g)) for g in groups_by_budget]
        if any(len(set(log_n[pick])) < 3 for pick in picks):
            continue  # a parabola needs three distinct sizes
        rows = np.concatenate(picks)
        if len(others) and (member[rows].sum(0) == 0).any():
            continue  # a group's offset needs one of its runs
        p, resampled = fit(rows)
        samples.append((p[1], resampled["alpha"], *p[2 + 2 * count:]))
    samples = np.array(samples) if samples else np.full((1, 2 + len(others)), np.nan)
    low, high = np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)
    result = {"budgets": [{"compute": float(np.exp(c)), "n_opt": float(np.exp(best[0] + best[1] * o)),
                           "loss_opt": float(best[2 + b]), "curvature": float(best[2 + count + b])}
                          for b, (c, o) in enumerate(zip(budgets, offsets))],
              "n_opt": {"k": float(np.exp(best[0] - best[1] * centre)), "a": float(best[1]),
                        "a_ci": [float(low[0]), float(high[0])]},
              "loss": {**law, "alpha_ci": [float(low[1]), float(high[1])]},
              "rms_residual": float(np.sqrt(np.mean(residuals(best, everything) ** 2))),
              "bootstrap_samples": int(len(samples))}
    if labels:
        result["reference"] = reference
        result["offsets"] = {str(g): {"loss": float(best[2 + 2 * count + i]),
                                      "ci": [float(low[2 + i]), float(high[2 + i])]} for i, g in enumerate(others)}
    return result


def chinchilla_loss(law: dict, params, tokens) -> np.ndarray:
    """A `fit_chinchilla` law's loss for models of `params` trained on `tokens`."""
    params, tokens = np.asarray(params, np.float64), np.asarray(tokens, np.float64)
    return law["E"] + law["A"] / params ** law["alpha"] + law["B"] / tokens ** law["beta"]


def _huber(residual: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(residual) <= delta
    return np.where(small, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta))


def fit_chinchilla(params, tokens, losses, delta: float = 1e-3, bootstrap: int = 0, seed: int = 0) -> dict:
    """Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta, minimizing a Huber loss on
    log L from a grid of starts (Hoffmann et al. 2022, appendix D.2). Also returns the
    compute-optimal exponent a = beta / (alpha + beta) of N* ∝ C^a. `bootstrap` > 0 adds 95 %
    CIs of alpha, beta and a (`*_ci`): the runs resampled with replacement and refitted, each
    refit started from the full fit (Besiroglu et al. 2024 bootstrap approach 3 the same way)."""
    log_n = np.log(np.asarray(params, np.float64))
    log_d = np.log(np.asarray(tokens, np.float64))
    log_l = np.log(np.asarray(losses, np.float64))

    def objective(p, rows):  # the Huber loss and its gradient
        a, b, e, alpha, beta = p
        terms = np.stack([a - alpha * log_n[rows], b - beta * log_d[rows], np.full(len(rows), e)])
        predicted = np.logaddexp.reduce(terms, axis=0)
        residual = predicted - log_l[rows]
        weights = np.exp(terms - predicted) * np.clip(residual, -delta, delta)  # d loss / d term
        gradient = [weights[0].sum(), weights[1].sum(), weights[2].sum(),
                    -(weights[0] * log_n[rows]).sum(), -(weights[1] * log_d[rows]).sum()]
        return _huber(residual, delta).sum(), np.array(gradient)

    every = np.arange(len(log_l))
    best = None
    for start in itertools.product((0, 5, 10), (0, 5, 10), (-1, 0, 1), (0.2, 0.5), (0.2, 0.5)):
        result = optimize.minimize(objective, start, args=(every,), jac=True, method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    law = {"A": float(np.exp(a)), "B": float(np.exp(b)), "E": float(np.exp(e)), "alpha": float(alpha),
           "beta": float(beta), "a": float(beta / (alpha + beta)), "objective": float(best.fun)}
    if bootstrap:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):
            refit = optimize.minimize(objective, best.x, args=(rng.integers(0, len(every), len(every)),),
                                      jac=True, method="L-BFGS-B", options={"ftol": 0.0, "gtol": 1e-12}).x
            samples.append((refit[3], refit[4], refit[4] / (refit[3] + refit[4])))
        for name, column in zip(("alpha", "beta", "a"), np.array(samples).T):
            law[f"{name}_ci"] = [float(np.percentile(column, 2.5)), float(np.percentile(column, 97.5))]
        law["bootstrap_samples"] = bootstrap
    return law
