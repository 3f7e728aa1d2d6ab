r"""Does μP at the transferred LR win on the ladder? The demo preset's rungs (1x, 4x, 32x: one
size per budget, chosen by the rule) trained under the standard parametrization at the preset's
LR rule and under μP at several base LRs — the same data, steps, evaluation clips, timesteps and
noise (common random numbers), so validation losses compare rung by rung.

    .venv/bin/python experiments/mup_ladder.py --workdir=runs/mup_ladder \
        --results=experiments/results/mup_ladder [--engine=ray]

Each run is an ordinary workdir (`<workdir>/<arm>/<budget>`, the arm `standard` or
`mup_lr<base LR>`), trained by the sweep machinery (`ladder.train_configs`): resumable, one latent
cache, `runs.json`. The standard arm is the committed demo ladder's rungs, bitwise.
"""

import json
import pathlib

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "sora_jax/configs/scaling.py:demo", "A scaling.py preset.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/mup_ladder", "One subdirectory per arm and rung.")
_RESULTS = flags.DEFINE_string("results", None, "Write mup_ladder.json/.md/.png here.")
_MUP_LRS = flags.DEFINE_list("mup_lrs", ["7e-3", "1.4e-2", "2.8e-2"],
                             "Base-width LRs of the μP arms (experiments/lr_transfer.py's best: 2.0e-2 after "
                             "400 steps; longer runs tend to want less).")
_ENGINE = flags.DEFINE_enum("engine", "local", ["local", "ray"], "Where the runs execute.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: report the finished runs.")


def arms(config) -> dict:
    """{arm: the ladder config it trains}: the preset as is, and μP at each base LR."""
    from sora_jax.scaling import plan

    out = {"standard": config}
    base_rate = plan.learning_rate(config.model.mup_base_width)
    for lr in (float(x) for x in _MUP_LRS.value):
        arm = config.copy_and_resolve_references()
        with arm.unlocked():
            arm.model.parametrization = "mup"
            arm.ladder.lr_scale = lr / base_rate  # apply_budget: every size gets learning_rate(base) x lr_scale
        out[f"mup_lr{lr:g}"] = arm
    return out


def paired_difference(workdir: pathlib.Path, first: str, second: str, config) -> dict:
    """Validation loss of run `second` minus run `first` on each of the same (clip, timestep,
    noise) triples, with a bootstrap 95 % CI of the mean: is the difference more than noise?"""
    import ml_collections

    from sora_jax.evaluation.probes import bootstrap_mean
    from sora_jax.pipelines import t2v
    from sora_jax.train import trainer

    run_config = ml_collections.ConfigDict(json.loads((workdir / first / "config.json").read_text()))
    clips = trainer.make_task(run_config, workdir / first).validation_clips(run_config.eval.num_clips)
    losses = []
    for name in (first, second):
        pipeline, params, _, _ = t2v.load(workdir / name)
        losses.append(pipeline.validation_losses(params, clips, run_config.eval.timestep_quantiles))
    return {"first": first, "second": second, **bootstrap_mean(losses[1] - losses[0])}


def main(argv):
    del argv
    from sora_jax.scaling import engines, ladder

    config = _CONFIG.value
    config.engine.name = _ENGINE.value
    workdir = pathlib.Path(_WORKDIR.value)
    cache = str(workdir / "latent_cache")
    runs = {f"{name}/{budget}": ladder.rung_config(arm, budget, latent_cache_dir=cache)
            for budget in config.ladder.rungs for name, arm in arms(config).items()}  # cheap rungs first
    if _REPORT_ONLY.value:
        done = {n: ladder.summary(workdir / n) for n in runs if (workdir / n / "final_metrics.json").exists()}
    else:
        done = dict(zip(runs, ladder.train_configs(workdir, runs, engines.make(config))))
    report = {"preset": config.ladder.preset, "rungs": list(config.ladder.rungs), "arms": {}}
    for name in arms(config):
        report["arms"][name] = {budget: {"model": runs[f"{name}/{budget}"].model.variant,
                                         "lr": runs[f"{name}/{budget}"].optimizer.learning_rate,
                                         "compute_flops": runs[f"{name}/{budget}"].ladder.compute_flops,
                                         "val_loss": done[f"{name}/{budget}"]["val_loss"]}
                                for budget in config.ladder.rungs if f"{name}/{budget}" in done}
    top = report["rungs"][-1]
    best = min((name for name in report["arms"] if name != "standard" and top in report["arms"][name]),
               key=lambda name: report["arms"][name][top]["val_loss"], default=None)
    if best and top in report["arms"]["standard"]:
        report["paired_top_rung"] = paired_difference(workdir, f"standard/{top}", f"{best}/{top}", config)
    lines = ["| arm | " + " | ".join(f"{b}: LR / validation loss" for b in report["rungs"]) + " |",
             "|---" * (len(report["rungs"]) + 1) + "|"]
    for name, rows in report["arms"].items():
        cells = [f"{rows[b]['lr']:.2e} / {rows[b]['val_loss']:.4f}" if b in rows else "–" for b in report["rungs"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "paired_top_rung" in report:
        pair = report["paired_top_rung"]
        lines.append(f"\n{pair['second']} - {pair['first']}, per validation triple: {pair['mean']:+.4f} "
                     f"[{pair['low']:+.4f}, {pair['high']:+.4f}] (95 % bootstrap CI, {pair['n']} triples)")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if _RESULTS.value:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = pathlib.Path(_RESULTS.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "mup_ladder.json").write_text(json.dumps(report, indent=1))
        (out / "mup_ladder.md").write_text(markdown)
        figure, axis = plt.subplots(figsize=(6, 4))
        for name, rows in report["arms"].items():
            budgets = [b for b in report["rungs"] if b in rows]
            axis.plot([rows[b]["compute_flops"] for b in budgets], [rows[b]["val_loss"] for b in budgets],
                      marker="o", label=name, ls="-" if name == "standard" else "--")
        axis.set(xscale="log", xlabel="training FLOPs", ylabel="validation loss",
                 title=f"{report['preset']} ladder: standard vs μP")
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / "mup_ladder.png", dpi=110)
        print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
