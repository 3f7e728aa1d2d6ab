"""Budgets into runs: a compute-optimal model size for a FLOP budget, then the steps that spend it.

    plan = plan_run(2.5e13)          # the `cpu` ladder's 1x
    plan.width, plan.depth, plan.steps, plan.tokens_per_param

Model size follows `N = k · C^a` (N: non-embedding per-token parameters, C: training FLOPs).
The default rule is Chinchilla's 20 tokens per parameter (C = 6·N·D, D = 20·N, so a = 0.5 and
k = 120^-0.5); published DiT laws disagree by ~15x at small budgets (`../shared/SCALING-NOTES.md`),
so `experiments/fit.py` writes the project's own (k, a) from an IsoFLOP sweep, and
`configs/scaling.py` takes it with `rule=fit`. The size is then the nearest shape of `MODEL_GRID`
(head dim 32, depth growing with width) in log N, and steps = C / FLOPs per step of that shape.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

from sora_jax.scaling import flops

# (depth, width): ~14·d² non-embedding parameters per block, from 16k to 200M.
MODEL_GRID = (
    (2, 32), (2, 48), (2, 64), (3, 64), (2, 96), (3, 96), (4, 96), (3, 128), (4, 128), (4, 160), (5, 160),
    (5, 192), (6, 192), (6, 224), (6, 256), (8, 256), (8, 320), (10, 384), (12, 448), (12, 512), (16, 640),
    (16, 768), (20, 896), (24, 1024), (28, 1280),
)
HEAD_DIM = 32
CHINCHILLA_RULE = {"k": 120**-0.5, "a": 0.5, "source": "Chinchilla: 20 tokens per parameter"}
FITTED_RULE_FILE = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "results" / "isoflop_fit.json"


def rule(name: str) -> dict:
    """`chinchilla`, or `fit`: the (k, a) that experiments/fit.py measured from the IsoFLOP sweep."""
    if name == "chinchilla":
        return dict(CHINCHILLA_RULE)
    if name == "fit":
        if not FITTED_RULE_FILE.exists():
            raise FileNotFoundError(f"rule=fit needs {FITTED_RULE_FILE} (run experiments/isoflop.py, then fit.py)")
        fitted = json.loads(FITTED_RULE_FILE.read_text())["n_opt"]
        return {"k": fitted["k"], "a": fitted["a"], "source": f"IsoFLOP fit ({FITTED_RULE_FILE.name})"}
    raise ValueError(f"rule={name!r}; valid: chinchilla, fit")


def learning_rate(width: int) -> float:
    """Peak LR shrinking with width (Adam's 1/width rule from muP), anchored at the tiny DiT's 5e-4
    at width 192, capped at 2e-3."""
    return min(2e-3, 5e-4 * 192 / width)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    compute: float  # training FLOPs asked for
    depth: int
    width: int
    heads: int
    params: int  # non-embedding per-token parameters (N)
    total_params: int
    steps: int
    flops_per_step: float
    tokens_per_step: int
    learning_rate: float

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def shape_for(depth: int, width: int, model_config, latent_channels: int) -> flops.DiTShape:
    """`model_config`'s DiT at another depth and width (head dim HEAD_DIM)."""
    return dataclasses.replace(flops.DiTShape.from_config(model_config, latent_channels), depth=depth, width=width,
                               heads=max(1, width // HEAD_DIM))


def nearest_grid_shape(params: float, model_config, latent_channels: int) -> tuple[int, int]:
    """The MODEL_GRID (depth, width) whose non-embedding parameter count is nearest in log."""
    def distance(entry):
        count = flops.param_counts(shape_for(*entry, model_config, latent_channels))["non_embedding"]
        return abs(math.log(count / params))

    return min(MODEL_GRID, key=distance)


def plan_run(compute: float, model_config, latent_channels: int, latent_thw, batch_size: int,
             size_rule: dict | None = None, depth_width: tuple[int, int] | None = None) -> RunPlan:
    """A run spending `compute` training FLOPs on batches of `batch_size` clips of latent (t, h, w):
    the rule's compute-optimal size (or `depth_width`, for IsoFLOP sweeps), and the steps."""
    size_rule = size_rule or CHINCHILLA_RULE
    if depth_width is None:
        depth_width = nearest_grid_shape(size_rule["k"] * compute ** size_rule["a"], model_config, latent_channels)
    depth, width = depth_width
    shape = shape_for(depth, width, model_config, latent_channels)
    per_step = flops.train_step_flops(shape, latent_thw, batch_size)
    steps = max(1, round(compute / per_step))
    counts = flops.param_counts(shape)
    tokens = batch_size * math.prod(shape.grid(latent_thw))
    return RunPlan(compute=compute, depth=depth, width=width, heads=shape.heads, params=counts["non_embedding"],
                   total_params=counts["total"], steps=steps, flops_per_step=per_step, tokens_per_step=tokens,
                   learning_rate=learning_rate(width))
