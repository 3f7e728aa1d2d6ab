r"""LR transfer, measured: an LR sweep at several widths under the standard parametrization and
under μP (`model.parametrization=mup`), every run the same steps on the demo preset's data. Under
μP the best LR should stay put as width grows; under the standard one it should fall.

    .venv/bin/python experiments/lr_transfer.py --workdir=runs/lr_transfer \
        --results=experiments/results/lr_transfer [--engine=ray]

Each run is an ordinary workdir (`<workdir>/<parametrization>_w<width>_lr<k>`), trained by the
sweep machinery (`ladder.train_configs`: one latent cache, resumable, `runs.json`); rerun the
command to resume. The best LR per width is the minimum of a parabola in log LR through the
grid's lowest point and its neighbours.
"""

import json
import pathlib

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "A scaling.py preset.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/lr_transfer", "One subdirectory per run.")
_RESULTS = flags.DEFINE_string("results", None, "Write lr_transfer.json/.png/.md here.")
_WIDTHS = flags.DEFINE_list("widths", ["64", "128", "256"], "DiT widths (head width 32).")
_DEPTH = flags.DEFINE_integer("depth", 3, "DiT depth at every width.")
_SCALES = flags.DEFINE_list("lr_scales", ["0.125", "0.25", "0.5", "1", "2", "4"],
                            "LRs as multiples of the preset's LR for the base width (the centre).")
_MUP_SCALES = flags.DEFINE_list("mup_lr_scales", ["0.125", "0.25", "0.5", "1", "2", "4", "8", "16"],
                                "The same, for the muP runs (their best LR at the base width lies higher: "
                                "fan-in init).")
_STEPS = flags.DEFINE_integer("steps", 400, "Training steps of every run.")
_EVAL_CLIPS = flags.DEFINE_integer("eval_clips", 32, "Validation clips (x 8 timesteps, the same for every run).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: report the widths whose runs have all "
                                  "finished (a sweep still running elsewhere).")
_ENGINE = flags.DEFINE_enum("engine", "local", ["local", "ray"], "Where the runs execute.")
PARAMETRIZATIONS = ("standard", "mup")


def run_configs(config, workdir: pathlib.Path) -> dict:
    """{run name: config}: the 1x rung pinned to each width, trained `--steps` at each LR."""
    from sora_jax.scaling import ladder, plan

    centre = plan.learning_rate(config.model.mup_base_width) * config.ladder.lr_scale
    runs = {}
    for width in (int(w) for w in _WIDTHS.value):  # narrowest first: a partial sweep compares whole widths
        for parametrization in PARAMETRIZATIONS:
            for scale in (float(s) for s in (_MUP_SCALES if parametrization == "mup" else _SCALES).value):
                rung = ladder.rung_config(config, "1x", f"L{_DEPTH.value}d{width}",
                                          latent_cache_dir=str(workdir / "latent_cache"))
                with rung.unlocked():
                    rung.model.parametrization = parametrization
                    rung.optimizer.learning_rate = centre * scale
                    rung.total_steps = _STEPS.value
                    rung.ladder.compute_flops = _STEPS.value * rung.ladder.flops_per_step  # its own budget
                    rung.optimizer.warmup_steps = _STEPS.value // 10
                    rung.checkpoint.every_steps = max(50, _STEPS.value // 2)
                    rung.log.eval_every_steps = _STEPS.value
                    rung.eval.num_clips = _EVAL_CLIPS.value
                    plan.size_data(rung)
                runs[f"{parametrization}_w{width}_lr{scale:g}"] = rung
    return runs


def main(argv):
    del argv
    from sora_jax.scaling import engines, fit, ladder

    config = _CONFIG.value
    workdir = pathlib.Path(_WORKDIR.value)
    rungs = run_configs(config, workdir)
    config.engine.name = _ENGINE.value
    widths = [int(w) for w in _WIDTHS.value]
    if _REPORT_ONLY.value:
        summaries = {name: ladder.summary(workdir / name) for name in rungs
                     if (workdir / name / "final_metrics.json").exists()}
        widths = [w for w in widths if all(n in summaries for n in rungs if f"_w{w}_" in n)]
        if not widths:
            raise SystemExit(f"no width has all its runs finished in {workdir}")
    else:
        summaries = dict(zip(rungs, ladder.train_configs(workdir, rungs, engines.make(config))))
    report = {"widths": widths, "depth": _DEPTH.value, "steps": _STEPS.value,
              "base_width": config.model.mup_base_width, "runs": {}, "best_lr": {}, "transfer": {}}
    for parametrization in PARAMETRIZATIONS:
        report["runs"][parametrization], report["best_lr"][parametrization] = {}, {}
        for width in report["widths"]:
            names = [n for n in rungs if n.startswith(f"{parametrization}_w{width}_")]
            lrs = np.array([rungs[n].optimizer.learning_rate for n in names])
            losses = np.array([summaries[n]["val_loss"] for n in names])
            report["runs"][parametrization][width] = [{"lr": float(lr), "val_loss": float(loss)}
                                                      for lr, loss in zip(lrs, losses)]
            report["best_lr"][parametrization][width] = fit.grid_optimum(lrs, losses)
        best = list(report["best_lr"][parametrization].values())
        report["transfer"][parametrization] = max(best) / min(best)  # how far the best LR moves over the widths
    lines = ["| parametrization | " + " | ".join(f"best LR at width {w}" for w in report["widths"])
             + " | max / min |", "|---" * (len(report["widths"]) + 2) + "|"]
    for parametrization in PARAMETRIZATIONS:
        lines.append(f"| {parametrization} | " + " | ".join(f"{report['best_lr'][parametrization][w]:.2e}"
                                                           for w in report["widths"])
                     + f" | {report['transfer'][parametrization]:.2f} |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if _RESULTS.value:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = pathlib.Path(_RESULTS.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "lr_transfer.json").write_text(json.dumps(report, indent=1))
        (out / "lr_transfer.md").write_text(markdown)
        figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for axis, parametrization in zip(axes, PARAMETRIZATIONS):
            for width in report["widths"]:
                points = report["runs"][parametrization][width]
                line, = axis.plot([p["lr"] for p in points], [p["val_loss"] for p in points], marker="o",
                                  label=f"width {width}")
                axis.axvline(report["best_lr"][parametrization][width], color=line.get_color(), ls=":", lw=1)
            axis.set(xscale="log", xlabel="peak LR", title=f"{parametrization}: best LR moves "
                     f"{report['transfer'][parametrization]:.1f}x over {report['widths'][-1] // report['widths'][0]}x "
                     "width")
        axes[0].set_ylabel(f"validation loss after {_STEPS.value} steps")
        axes[1].legend()
        figure.tight_layout()
        figure.savefig(out / "lr_transfer.png", dpi=110)
        print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
