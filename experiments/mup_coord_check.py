r"""The μP coordinate check of the DiT: each layer's activation RMS after a few Adam steps at one LR,
at widths 32 … 256, under the standard parametrization and under μP (`sora_jax/train/coord_check.py`).

    .venv/bin/python experiments/mup_coord_check.py --results=experiments/results/mup_coord_check
"""

import json
import pathlib

from absl import app, flags

_RESULTS = flags.DEFINE_string("results", "experiments/results/mup_coord_check", "Where coord_check.json/.png go.")
_WIDTHS = flags.DEFINE_list("widths", ["32", "64", "128", "256"], "DiT widths (head width 16).")
_STEPS = flags.DEFINE_integer("steps", 4, "Adam steps before measuring.")
_LR = flags.DEFINE_float("learning_rate", 1e-2, "The one LR every width trains at.")


def main(argv):
    del argv
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from sora_jax.train import coord_check

    widths = tuple(int(w) for w in _WIDTHS.value)
    sizes = {p: coord_check.coordinate_check(p, widths, _STEPS.value, _LR.value) for p in ("standard", "mup")}
    out = pathlib.Path(_RESULTS.value)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coord_check.json").write_text(json.dumps({"widths": widths, "steps": _STEPS.value,
                                                      "learning_rate": _LR.value, "rms": sizes}, indent=1))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, (parametrization, by_width) in zip(axes, sizes.items()):
        for layer in by_width[widths[0]]:
            axis.plot(widths, [by_width[w][layer] for w in widths], marker="o", label=layer)
        axis.set(xscale="log", yscale="log", xlabel="width", title=f"{parametrization}: activation RMS after "
                 f"{_STEPS.value} Adam steps (LR {_LR.value:g})")
        axis.set_xticks(widths, [str(w) for w in widths], minor=False)
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes[0].set_ylabel("RMS of the layer's output")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "coord_check.png", dpi=110)
    for parametrization, by_width in sizes.items():
        growth = {layer: round(by_width[widths[-1]][layer] / by_width[widths[0]][layer], 2)
                  for layer in by_width[widths[0]]}
        print(f"{parametrization}: RMS at width {widths[-1]} / width {widths[0]}: {growth}")
    print(f"wrote {out / 'coord_check.json'} and {out / 'coord_check.png'}")


if __name__ == "__main__":
    app.run(main)
