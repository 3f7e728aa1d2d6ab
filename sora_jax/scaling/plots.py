"""The ladder's and the IsoFLOP sweep's figures (matplotlib, Agg): loss vs compute with its fit,
per-timestep loss curves, probes vs compute with ceilings, IsoFLOP parabolas and N*(C)."""

from __future__ import annotations

import pathlib

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(report: dict, path: pathlib.Path) -> None:
    plt = _pyplot()
    rungs = [r for r in report["rungs"] if r.get("compute_flops")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    compute = np.array([r["compute_flops"] for r in rungs])
    left.scatter(compute, [r["val_loss"] for r in rungs], color="C0", zorder=3)
    for r in rungs:
        left.annotate(f"{r['budget']} {r['model']}", (r["compute_flops"], r["val_loss"]), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    if "loss_fit" in report:
        from sora_jax.scaling import fit

        law = report["loss_fit"]
        grid = np.geomspace(compute.min() / 2, compute.max() * 2, 50)
        left.plot(grid, fit.predict(law, grid), "--", color="C1", label=f"L = {law['A']:.2f} C^-{law['alpha']:.3f}")
        left.legend()
    left.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel="validation loss",
             title="Validation loss vs compute")
    for index, r in enumerate(rungs):
        if r["val_loss_by_t"]:
            quantiles = len(r["val_loss_by_t"])
            right.plot((np.arange(quantiles) + 0.5) / quantiles, r["val_loss_by_t"], "o-", color=f"C{index}",
                       label=r["budget"])
    right.set(xlabel="timestep t (0 = data, 1 = noise)", ylabel="validation loss", title="Per timestep")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _rung_ticks(axis, rungs: list[dict]) -> None:
    """One tick per rung, labelled by its budget (1x, 4x, 32x): a log axis spanning under two
    decades otherwise labels every minor tick, and the labels run into each other."""
    from matplotlib import ticker

    axis.xaxis.set_major_locator(ticker.FixedLocator([r["compute_flops"] for r in rungs]))
    axis.xaxis.set_major_formatter(ticker.FixedFormatter([r["budget"] for r in rungs]))
    axis.xaxis.set_minor_locator(ticker.NullLocator())


def plot_probes(report: dict, path: pathlib.Path, shown) -> None:
    plt = _pyplot()
    rungs = report["rungs"]
    panels = [k for k in shown if any((r["probes"].get(k) or {}).get("mean") is not None for r in rungs)]
    voe = list(rungs[0].get("voe") or {})
    count = len(panels) + (1 if voe else 0)
    columns = 4
    figure, axes = plt.subplots((count + columns - 1) // columns, columns, figsize=(14, 3 * ((count + 3) // 4)),
                                squeeze=False)
    compute = [r["compute_flops"] for r in rungs]
    for axis, key in zip(axes.flat, panels):
        stats = [r["probes"].get(key) or {} for r in rungs]
        means = np.array([s.get("mean") if s.get("mean") is not None else np.nan for s in stats], np.float64)
        errors = np.array([[m - (s.get("low") or m), (s.get("high") or m) - m] for m, s in zip(means, stats)]).T
        axis.errorbar(compute, means, yerr=errors, fmt="o-", capsize=3)
        for name, style in (("truth", "k--"), ("vae", "g:")):
            ceiling = (report["ceilings"][name].get(key) or {}).get("mean")
            if ceiling is not None:
                axis.axhline(ceiling, color=style[0], linestyle=style[1:], label=name)
        axis.set(xscale="log", title=key)
        _rung_ticks(axis, rungs)
        axis.legend(fontsize=7)
    if voe:
        axis = axes.flat[len(panels)]
        for kind in voe:
            axis.plot(compute, [r["voe"][kind]["mean"] for r in rungs], "o-", label=kind)
        axis.axhline(0.5, color="k", linestyle="--", label="chance")
        axis.set(xscale="log", title="VoE: possible preferred", ylim=(0, 1.05))
        _rung_ticks(axis, rungs)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[count:]:
        axis.axis("off")
    figure.supxlabel("training compute (log scale; " + ", ".join(f"{r['budget']} = {r['compute_flops']:.1e}"
                                                                   for r in rungs) + " FLOPs)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_isoflop(runs: list[dict], sweep: dict, path: pathlib.Path, predictions: dict | None = None) -> None:
    """Left: loss vs N per budget with its parabola and minimum. Middle: N* vs C with the fit.
    Right: L* vs C with the power law and the law with an irreducible term; `predictions` (a
    prediction written before the largest budget ran) marks what was predicted there."""
    plt = _pyplot()
    figure, (left, right, losses) = plt.subplots(1, 3, figsize=(16, 4.2))
    for index, budget in enumerate(sweep["budgets"]):
        mine = sorted((r for r in runs if r["compute"] == budget["compute"]), key=lambda r: r["params"])
        n = np.array([r["params"] for r in mine], np.float64)
        loss = np.array([r["loss"] for r in mine])
        color = f"C{index}"
        left.scatter(n, loss, color=color, label=f"{budget['compute']:.1e} FLOPs")
        coefficients = np.polyfit(np.log(n), loss, 2)
        grid = np.geomspace(n.min(), n.max(), 50)
        left.plot(grid, np.polyval(coefficients, np.log(grid)), color=color, alpha=0.6)
        left.scatter([budget["n_opt"]], [budget["loss_opt"]], color=color, marker="*", s=120, edgecolors="k")
    left.set(xscale="log", xlabel="non-embedding parameters N", ylabel="validation loss", title="IsoFLOP curves")
    left.legend(fontsize=7)
    compute = np.array([b["compute"] for b in sweep["budgets"]])
    right.scatter(compute, [b["n_opt"] for b in sweep["budgets"]], color="C0", label="parabola minima")
    grid = np.geomspace(compute.min() / 2, compute.max() * 8, 50)
    law = sweep["n_opt"]
    right.plot(grid, law["k"] * grid ** law["a"], "--", color="C1",
               label=f"N* = {law['k']:.3g} C^{law['a']:.2f} (95% CI {law['a_ci'][0]:.2f}..{law['a_ci'][1]:.2f})")
    if predictions:
        right.scatter([predictions["compute"]], [predictions["n_opt"]], marker="x", color="C3", s=80,
                      label="predicted before the run")
    right.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel="N*", title="Compute-optimal size")
    right.legend(fontsize=7)
    _plot_loss_opt(losses, sweep, grid, predictions)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_loss_opt(axis, sweep: dict, grid: np.ndarray, predictions: dict | None) -> None:
    """L* per budget, the power law `sweep` fitted and, from three budgets, the law with an
    irreducible term through the same points (from four budgets); a prediction's L* (both forms
    where it has them)."""
    from sora_jax.scaling import fit

    compute = np.array([b["compute"] for b in sweep["budgets"]])
    loss_opt = np.array([b["loss_opt"] for b in sweep["budgets"]])
    axis.scatter(compute, loss_opt, color="C0", zorder=3, label="parabola minima")
    law = sweep["loss"]
    low, high = law["alpha_ci"]
    axis.plot(grid, fit.predict(law, grid), "--", color="C1",
              label=f"L* = {law['A']:.3g} C^-{law['alpha']:.3f} (95% CI {low:.3f}..{high:.3f}, R² {law['r2']:.3f})")
    if len(compute) >= 4:
        floor = fit.loss_law_with_floor(sweep)
        axis.plot(grid, fit.predict(floor, grid), ":", color="C2",
                  label=f"L* = {floor['E']:.3f} + {floor['A']:.3g} C^-{floor['alpha']:.3f}")
    if predictions:
        axis.scatter([predictions["compute"]], [predictions["loss_opt"]], marker="x", color="C3", s=80,
                     label="predicted before the run (power law)")
        if "loss_opt_with_floor" in predictions:
            axis.scatter([predictions["compute"]], [predictions["loss_opt_with_floor"]], marker="+", color="C3",
                         s=100, label="predicted before the run (with a floor)")
    axis.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel="L* (validation loss)",
             title="Compute-optimal loss")
    axis.legend(fontsize=7)


def plot_probe_fits(fits: dict[str, dict], path: pathlib.Path) -> None:
    """One panel per probe: the rungs' means with 95 % CIs, the logistic fit topped by the VAE
    ceiling (dashed), and C90 with its interval where the curve reaches 90 % of the ceiling."""
    from sora_jax.scaling import probe_fit

    plt = _pyplot()
    columns = 4
    rows = -(-len(fits) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for axis, (probe, fitted) in zip(axes.ravel(), fits.items()):
        points = fitted["points"]
        compute, mean, se = (np.asarray(points[k]) for k in ("compute", "mean", "se"))
        axis.errorbar(compute, mean, yerr=probe_fit.Z95 * se, fmt="o", color="C0", capsize=2, ms=4)
        finite = np.isfinite(fitted["log10_c90"]) and fitted["log10_c90"] < np.log10(compute.max()) + 3
        top = 10 ** fitted["log10_c90"] * 2 if finite else compute.max() * 10
        grid = np.geomspace(compute.min() / 2, max(compute.max() * 2, top), 100)
        axis.plot(grid, probe_fit.predict(fitted, grid), "-", color="C1")
        axis.axhline(fitted["ceiling"], ls="--", color="gray", lw=1)
        axis.axhline(0.9 * fitted["ceiling"], ls=":", color="gray", lw=1)
        if finite:
            axis.axvline(10 ** fitted["log10_c90"], color="C2", lw=1)
        axis.set(xscale="log", ylim=(0, 1.05),
                 title=f"{probe.replace('caption_', '')}\nC90 {probe_fit.c90_label(fitted['log10_c90'])}",
                 xlabel="training FLOPs")
        axis.title.set_fontsize(9)
    for axis in axes.ravel()[len(fits):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
