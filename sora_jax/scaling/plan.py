"""Budgets into runs: a compute-optimal model size for a FLOP budget, then the steps that spend it.

    plan = plan_run(2.5e13)          # the `cpu` ladder's 1x
    plan.width, plan.depth, plan.steps, plan.tokens_per_param

Model size follows `N = k · C^a` (N: non-embedding per-token parameters, C: training FLOPs).
The default rule is Chinchilla's 20 tokens per parameter (C = 6·N·D, D = 20·N, so a = 0.5 and
k = 120^-0.5); published DiT laws disagree by ~15x at small budgets (`../shared/SCALING-NOTES.md`),
so `experiments/fit.py` writes the project's own (k, a) from an IsoFLOP sweep, and
`sora_jax/configs/scaling.py` takes it with `rule=fit`. The size is then the nearest shape of `MODEL_GRID`
(head dim 32, depth growing with width) in log N, and steps = C / FLOPs per step of that shape.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re

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
BATCH_RULE_FILE = FITTED_RULE_FILE.parent / "batch_size" / "batch_fit.json"


def rule(name: str) -> dict:
    """`chinchilla`, or `fit`: the (k, a) that experiments/fit.py measured from the IsoFLOP sweep."""
    if name == "chinchilla":
        return dict(CHINCHILLA_RULE)
    if name == "fit":
        if not FITTED_RULE_FILE.exists():
            raise FileNotFoundError(f"rule=fit needs {FITTED_RULE_FILE} (run `sora-jax sweep ... --publish=DIR`, "
                                    "then copy DIR/isoflop_fit.json there)")
        fitted = json.loads(FITTED_RULE_FILE.read_text())["n_opt"]
        return {"k": fitted["k"], "a": fitted["a"], "source": f"IsoFLOP fit ({FITTED_RULE_FILE.name})"}
    raise ValueError(f"rule={name!r}; valid: chinchilla, fit")


def batch_size(rule_name: str, compute: float, preset_batch: int) -> int:
    """Clips per step (of the largest latent) for a run of `compute` FLOPs: `preset`, the preset's
    batch; `fit`, the best batch measured at two budgets by experiments/batch_size.py,
    B* = b0 · (C / C0)^beta, rounded to the nearest power of two in log (batches of 2^k keep
    buckets and data-parallel splits even)."""
    if rule_name == "preset":
        return preset_batch
    if rule_name != "fit":
        raise ValueError(f"batch_rule={rule_name!r}; valid: preset, fit")
    if not BATCH_RULE_FILE.exists():
        raise FileNotFoundError(f"batch_rule=fit needs {BATCH_RULE_FILE} (run experiments/batch_size.py "
                                "--results=experiments/results/batch_size)")
    fitted = json.loads(BATCH_RULE_FILE.read_text())
    best = fitted["b0"] * (compute / fitted["c0"]) ** fitted["beta"]
    return max(1, 2 ** round(math.log2(best)))


def learning_rate(width: int) -> float:
    """Peak LR shrinking with width (Adam's 1/width rule from muP), anchored at the tiny DiT's 5e-4
    at width 192, capped at 2e-3. A ladder multiplies it by `ladder.lr_scale` (the CPU presets'
    4x, measured by the recipe sweep), so a rung's LR may pass the cap."""
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


# --- Budgets on a config: what `sora_jax/configs/scaling.py` and the ladder's rungs share ------------------


def parse_budget(budget: str) -> float:
    """`4x` -> 4.0: a multiple of the preset's base compute."""
    text = budget.strip().lower()
    try:
        multiplier = float(text[:-1] if text.endswith("x") else text)
    except ValueError:
        raise ValueError(f"budget {budget!r} is not a multiplier like 1x, 4x or 32x") from None
    if multiplier <= 0:
        raise ValueError(f"budget {budget!r} must be positive")
    return multiplier


def parse_size(size: str) -> tuple[int, int] | None:
    """`L4d128` -> (4, 128); empty -> None (the rule decides)."""
    if not size:
        return None
    match = re.fullmatch(r"L(\d+)d(\d+)", size.strip())
    if not match:
        raise ValueError(f"size {size!r} is not like L4d128 (depth 4, width 128)")
    return int(match.group(1)), int(match.group(2))


def latent_thw(clip, vae: dict) -> tuple[int, int, int]:
    """Latent (t, h, w) of a (frames, height, width) clip under a VAE's {temporal, spatial}."""
    frames, height, width = clip
    return 1 + (frames - 1) // vae["temporal"], height // vae["spatial"], width // vae["spatial"]


def planned_steps(config) -> tuple[int, float]:
    """(steps, FLOPs per step) that spend `config.ladder.compute_flops` with the config's current
    model and batch size (after any overrides)."""
    vae = config.ladder.vae
    shape = flops.DiTShape.from_config(config.model, vae["channels"])
    per_step = flops.train_step_flops(shape, latent_thw(config.ladder.clip, vae), config.data.batch_size)
    return max(1, round(config.ladder.compute_flops / per_step)), per_step


def clips_per_step(config, sample: int = 4096) -> float | None:
    """Mean clips in a training step over a PhysWorld variant's buckets, as `BatchPlan` cuts them:
    `data.batch_size` for the largest latent, more for shorter clips and images (capped at
    `data.max_batch_size`). None for a user folder (its buckets are known once scanned)."""
    from sora_jax.data import worlds

    dataset = config.data.dataset
    if not worlds.is_world(dataset):
        return None
    import numpy as np

    from sora_jax.data import pipeline

    variant = worlds.variant(dataset)
    shapes = [latent_thw(variant.example_shape(variant.example_seed("train", i)), config.ladder.vae)
              for i in range(sample)]
    buckets, counts = np.unique(np.array(shapes, np.int64), axis=0, return_counts=True)
    sizes = pipeline.bucket_batch_sizes(buckets, config.data.batch_size, config.data.max_batch_size, 1)
    return float(1.0 / np.sum(counts / counts.sum() / sizes))


def train_clips(config) -> int | None:
    """Clips the run reads: `data.num_train`, else the prepared train split (None for a folder)."""
    if config.data.get("num_train", 0):
        return int(config.data.num_train)
    from sora_jax.data import worlds

    if not worlds.is_world(config.data.dataset):
        return None
    return worlds.variant(config.data.dataset).num_examples["train"]


def epochs(config) -> float | None:
    """Passes over the training clips that `total_steps` make (None for a user folder)."""
    per_step, clips = clips_per_step(config), train_clips(config)
    return None if per_step is None else config.total_steps * per_step / clips


def size_data(config) -> None:
    """`data.num_train` so no clip is seen more than `ladder.max_epochs` times (PhysWorld renders
    what the prepared split lacks), in whole thousands (1,024), never below the prepared split."""
    max_epochs = config.ladder.get("max_epochs", 0)
    per_step = clips_per_step(config)
    if not max_epochs or per_step is None:
        return
    config.data.num_train = 0
    prepared = train_clips(config)
    needed = math.ceil(config.total_steps * per_step / max_epochs / 1024) * 1024
    config.data.num_train = max(prepared, needed)


def schedule(config) -> None:
    """Steps that spend the budget with the config's current model and batch, and what follows
    from them: warmup, checkpoint cadence (resumable in pieces), one evaluation at the end, and
    the training clips (`size_data`)."""
    config.total_steps, config.ladder.flops_per_step = planned_steps(config)
    warmup = min(100, config.total_steps // 10) * config.ladder.get("warmup_scale", 1.0)
    config.optimizer.warmup_steps = min(max(1, round(warmup)), max(1, config.total_steps // 2))
    config.checkpoint.every_steps = max(50, config.total_steps // 10)
    config.log.eval_every_steps = config.total_steps  # after the cooldown
    size_data(config)


def apply_budget(config, budget: str, size: str = "") -> None:
    """Sizes a ladder config (`config.ladder`: base compute, clip, rule, VAE geometry) for
    `budget`: the batch by `ladder.batch_rule`, the model by the rule (or `size`, e.g. L4d128), its
    LR, and the steps that spend it."""
    ladder = config.ladder
    compute = ladder.base_compute_flops * parse_budget(budget)
    if ladder.get("batch_rule", "preset") != "preset":
        ratio = max(1, config.data.max_batch_size // config.data.batch_size)  # shorter clips batch up to this x
        config.data.batch_size = batch_size(ladder.batch_rule, compute, ladder.preset_batch)
        config.data.max_batch_size = ratio * config.data.batch_size
    size_rule = rule(ladder.rule)
    size_rule["k"] *= ladder.get("size_scale", 1.0)
    run = plan_run(compute, config.model, ladder.vae["channels"], latent_thw(ladder.clip, ladder.vae),
                   config.data.batch_size, size_rule, parse_size(size))
    config.model.variant = f"L{run.depth}d{run.width}"
    config.model.depth, config.model.width, config.model.heads = run.depth, run.width, run.heads
    # Under μP the per-layer multipliers (models/mup.py) carry the 1/width; every size then gets the
    # LR the rule gives the base width.
    mup = config.model.get("parametrization", "standard") == "mup"
    base_rate = learning_rate(config.model.mup_base_width) if mup else run.learning_rate
    config.optimizer.learning_rate = base_rate * ladder.get("lr_scale", 1.0)
    ladder.budget, ladder.size = budget, size
    ladder.rule_k, ladder.rule_a = size_rule["k"], size_rule["a"]  # k as used: the rule's k x size_scale
    ladder.compute_flops = compute
    ladder.params = run.params
    ladder.flops_per_step = run.flops_per_step
    schedule(config)
