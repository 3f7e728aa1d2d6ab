r"""Refits a finished IsoFLOP sweep (its isoflop.json) and redraws the figure: parabolas per budget,
N*(C) and L*(C) power laws with bootstrap CIs, Chinchilla approach 3.

    .venv/bin/python experiments/fit.py --sweep=experiments/results/isoflop_demo/isoflop.json --bootstrap=2000
"""

import json
import pathlib

from absl import app, flags

_SWEEP = flags.DEFINE_string("sweep", "experiments/results/isoflop_demo/isoflop.json", "isoflop.py's report.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 2000, "Bootstrap resamples for the CIs.")
_OUT = flags.DEFINE_string("out", None, "Where to write the refit JSON and PNG (default: beside --sweep).")


def main(argv):
    del argv
    from sora_jax.scaling import fit, plots

    path = pathlib.Path(_SWEEP.value)
    runs = json.loads(path.read_text())["runs"]
    sweep = fit.fit_isoflop(runs, bootstrap=_BOOTSTRAP.value)
    chinchilla = fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs], [r["loss"] for r in runs])
    out = pathlib.Path(_OUT.value) if _OUT.value else path.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "refit.json").write_text(json.dumps({"fit": sweep, "chinchilla": chinchilla}, indent=1))
    plots.plot_isoflop(runs, sweep, out / "refit.png")
    for budget in sweep["budgets"]:
        print(f"C = {budget['compute']:.2e}: N* = {budget['n_opt']:.3g}, L* = {budget['loss_opt']:.4f}")
    print(f"N* = {sweep['n_opt']['k']:.3g} C^{sweep['n_opt']['a']:.3f}, 95% CI {sweep['n_opt']['a_ci']}")
    print(f"L* = {sweep['loss']['A']:.3f} C^-{sweep['loss']['alpha']:.4f}, 95% CI {sweep['loss']['alpha_ci']}")
    print(f"Chinchilla approach 3: {chinchilla}")


if __name__ == "__main__":
    app.run(main)
