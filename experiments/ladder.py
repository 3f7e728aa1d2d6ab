r"""The compute ladder (1x, 4x, 32x of a preset's base compute), resumable, then the comparison;
`--results` copies the small outputs for committing.

    .venv/bin/python experiments/ladder.py --config=configs/scaling.py:demo --workdir=out/ladder_demo \
        --results=experiments/results/ladder_demo
    .venv/bin/python experiments/ladder.py --config=configs/scaling.py:cpu --workdir=runs/ladder_cpu \
        --results=experiments/results/ladder_cpu      # ~4 hours here; rerun to resume

The same as `sora-jax ladder` plus `--results`. Evaluation sizes are config fields
(`--config.ladder.probe_samples=128`, `--config.ladder.voe_quads=32`).
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/scaling.py:demo", "A configs/scaling.py preset.")
_WORKDIR = flags.DEFINE_string("workdir", "out/ladder_demo", "One subdirectory per rung.")
_BUDGETS = flags.DEFINE_list("budgets", None, "Rungs to run (default: the config's 1x, 4x, 32x).")
_RESULTS = flags.DEFINE_string("results", None, "Copy ladder.json, ladder.md, figures and the GIF here.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from sora_jax.scaling import ladder

    config = _CONFIG.value
    print(ladder.format_table(ladder.table(config)), flush=True)
    ladder.run(config, _WORKDIR.value, _BUDGETS.value)
    print((ladder.pathlib.Path(_WORKDIR.value) / "ladder.md").read_text())
    if _RESULTS.value:
        for path in ladder.publish(_WORKDIR.value, _RESULTS.value):
            print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
