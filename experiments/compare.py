r"""Re-scores the finished rungs of a ladder workdir (no training): same prompts and noise for
every rung, world probes with CIs, VoE likelihood tests, the side-by-side video and figures.

    .venv/bin/python experiments/compare.py --workdir=out/ladder_demo --probe_samples=128 --voe_quads=32
"""

import pathlib

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "out/ladder_demo", "A ladder workdir (subdirectories 1x, 4x, ...).")
_RUNS = flags.DEFINE_list("runs", None, "Rung directories to compare, in order (default: every finished one).")
_PROBE_SAMPLES = flags.DEFINE_integer("probe_samples", 128, "Generated videos per rung for the world probes.")
_VOE_QUADS = flags.DEFINE_integer("voe_quads", 32, "Violation-of-expectation quadruplets per kind.")


def main(argv):
    del argv
    from sora_jax.scaling import compare, ladder

    workdir = pathlib.Path(_WORKDIR.value)
    names = _RUNS.value or sorted((p.name for p in workdir.iterdir() if (p / "final_metrics.json").exists()),
                                  key=lambda name: float(name.split("x")[0]))
    summaries = [ladder.summary(workdir / name) for name in names]
    compare.compare(workdir, summaries, None, _PROBE_SAMPLES.value, _VOE_QUADS.value)
    print((workdir / "ladder.md").read_text())


if __name__ == "__main__":
    app.run(main)
