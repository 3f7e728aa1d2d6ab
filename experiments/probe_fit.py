r"""Each world probe against training compute, pooled over ladders scored on the same probe scenes
with the same VAE (`sora_jax/scaling/probe_fit.py`): the logistic fit, its slope per decade of
compute with a bootstrap 95 % CI, and C90 — the compute at which it is predicted to reach 90 % of
the VAE ceiling — with its CI.

    .venv/bin/python experiments/probe_fit.py --ladders=experiments/results/ladder_demo/ladder.json \
        --ladders=experiments/results/ladder_cpu/ladder.json --out=experiments/results/probe_fit

Writes probe_fit.json, probe_fit.md and probes_vs_compute_fit.png under --out.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags

from sora_jax.scaling import plots, probe_fit

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("ladders", None, "ladder.json files to pool (same probe scenes and VAE).")
flags.DEFINE_string("out", "experiments/results/probe_fit", "Where the results go.")
flags.DEFINE_integer("bootstrap", 2000, "Bootstrap draws per probe.")


def markdown(fits: dict, sources: list[str]) -> str:
    lines = [f"Pooled rungs: {', '.join(sources)}. score(C) = ceiling · σ(a + b · log10 C); 95 % bootstrap CIs.", "",
             "| probe | VAE ceiling | slope b per decade [95 % CI] | C90, FLOPs [95 % CI] | draws reaching 90 % | "
             "χ² per rung |", "|---|---|---|---|---|---|"]
    label = probe_fit.c90_label
    for probe, f in fits.items():
        if min(f["points"]["mean"]) >= 0.9 * f["ceiling"]:  # saturated: the curve's slope is unconstrained
            lines.append(f"| {probe} | {f['ceiling']:.3f} | — (every rung ≥ 90 % of the ceiling) | "
                         f"≤ {min(f['points']['compute']):.1e} | — | {f['chi2_per_rung']:.1f} |")
            continue
        lines.append(f"| {probe} | {f['ceiling']:.3f} | {f['b']:.2f} [{f['b_low']:.2f}, {f['b_high']:.2f}] | "
                     f"{label(f['log10_c90'])} [{label(f['log10_c90_low'])}, {label(f['log10_c90_high'])}] | "
                     f"{f['reach_fraction']:.0%} | {f['chi2_per_rung']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if not FLAGS.ladders:
        raise app.UsageError("--ladders is required (one or more ladder.json)")
    reports = [json.loads(pathlib.Path(path).read_text()) for path in FLAGS.ladders]
    fits = probe_fit.fit_ladders(reports, bootstrap=FLAGS.bootstrap)
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe_fit.json").write_text(json.dumps({"ladders": FLAGS.ladders, "fits": fits}, indent=1))
    text = markdown(fits, FLAGS.ladders)
    (out / "probe_fit.md").write_text(text)
    plots.plot_probe_fits(fits, out / "probes_vs_compute_fit.png")
    print(text)


if __name__ == "__main__":
    app.run(main)
