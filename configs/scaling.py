r"""The compute ladder: one base compute per hardware preset, times a multiplier.

    sora-jax ladder --config=configs/scaling.py:cpu,budget=1x --workdir=runs/ladder
    sora-jax train --config=configs/scaling.py:cpu,budget=4x --workdir=runs/ladder/4x

`budget` is a multiple of the preset's base compute (`1x`, `4x`, `32x`, or any `Nx`). The model
otherwise follows `configs/t2v.py:tiny`; the compute-optimal sizing lives with the ladder code.
"""

from configs import common, t2v

# Training FLOPs of a 1x run per preset (cpu: about ten minutes of this 2-core machine).
BASE_COMPUTE = {"cpu": 2.5e13, "gpu": 1e17, "tpu": 1e18}


def parse_budget(budget: str) -> float:
    text = budget.strip().lower()
    try:
        multiplier = float(text[:-1] if text.endswith("x") else text)
    except ValueError:
        raise ValueError(f"budget {budget!r} is not a multiplier like 1x, 4x or 32x") from None
    if multiplier <= 0:
        raise ValueError(f"budget {budget!r} must be positive")
    return multiplier


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="cpu", budget="1x")
    base = common.check_variant(arg.variant, BASE_COMPUTE)
    config = t2v.get_config("tiny")
    config.unlock()
    config.ladder = common.ml_collections.ConfigDict()
    config.ladder.hardware = arg.variant
    config.ladder.budget = arg.budget
    config.ladder.base_compute_flops = base
    config.ladder.compute_flops = base * parse_budget(arg.budget)
    config.lock()
    return config
