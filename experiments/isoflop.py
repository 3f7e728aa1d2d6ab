r"""An IsoFLOP sweep: >= 4 budgets x 5 model sizes, each run trained to exactly its budget; then
the fits (`sora_jax/scaling/fit.py`), a prediction for the largest budget written before it runs,
and the figures. Resumable: rerun the same command.

    .venv/bin/python experiments/isoflop.py --config=sora_jax/configs/scaling.py:demo --workdir=out/isoflop_demo \
        --budgets=0.25x,0.5x,1x,2x --results=experiments/results/isoflop_demo

`--results` also writes experiments/results/isoflop_fit.json, the (k, a) of N* = k·C^a that
`sora_jax/configs/scaling.py:<preset>,rule=fit` sizes models with.
"""

import json
import pathlib

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "A sora_jax/configs/scaling.py "
                                                                                        "preset.")
_WORKDIR = flags.DEFINE_string("workdir", "out/isoflop_demo", "One subdirectory per (budget, size).")
_BUDGETS = flags.DEFINE_list("budgets", ["0.25x", "0.5x", "1x", "2x"], "Budgets, smallest first (>= 4).")
_SIZES = flags.DEFINE_integer("sizes", 5, "Model sizes per budget, centred on the rule's choice.")
_RESULTS = flags.DEFINE_string("results", None, "Copy isoflop.json and isoflop.png here; write isoflop_fit.json.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from sora_jax.scaling import isoflop, ladder, plots

    workdir = pathlib.Path(_WORKDIR.value)
    report = isoflop.sweep(_CONFIG.value, workdir, _BUDGETS.value, _SIZES.value)
    (workdir / "isoflop.json").write_text(json.dumps(report, indent=1))
    plots.plot_isoflop(report["runs"], report["fit"], workdir / "isoflop.png", report.get("prediction"))
    fit = report["fit"]
    print(f"N* = {fit['n_opt']['k']:.3g} C^{fit['n_opt']['a']:.3f} (95% CI {fit['n_opt']['a_ci']}); "
          f"L* = {fit['loss']['A']:.3f} C^-{fit['loss']['alpha']:.4f} (95% CI {fit['loss']['alpha_ci']}); "
          f"Chinchilla approach 3: alpha={report['chinchilla']['alpha']:.3f}, beta={report['chinchilla']['beta']:.3f}, "
          f"a={report['chinchilla']['a']:.3f}")
    if "prediction" in report:
        p = report["prediction"]
        print(f"prediction for {p['budget']}: L* {p['loss_opt']:.4f} vs measured {p['measured_loss_opt']:.4f} "
              f"({100 * p['loss_error']:+.1f} %), N* {p['n_opt']:.3g} vs {p['measured_n_opt']:.3g}")
    if _RESULTS.value:
        ladder.publish(workdir, _RESULTS.value, ("isoflop.json", "isoflop.png", "predictions.json"))
        rule = pathlib.Path("experiments/results/isoflop_fit.json")
        rule.write_text(json.dumps({"preset": report["preset"], "budgets": report["budgets"],
                                    "n_opt": fit["n_opt"], "loss": fit["loss"]}, indent=1))
        print(f"wrote {_RESULTS.value} and {rule}")


if __name__ == "__main__":
    app.run(main)
