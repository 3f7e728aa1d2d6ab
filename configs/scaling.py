r"""The compute ladder: one base compute per hardware preset, times a multiplier.

    sora-jax ladder --config=configs/scaling.py:cpu --workdir=runs/ladder_cpu    # 1x, 4x, 32x
    sora-jax ladder --config=configs/scaling.py:cpu --print                       # the table only
    sora-jax train --config=configs/scaling.py:cpu,budget=4x --workdir=runs/ladder_cpu/4x

`budget` is a multiple of the preset's base compute (`1x`, `4x`, `32x`, or any `Nx`); `rule`
sizes the model for the budget (`chinchilla`: 20 tokens per parameter; `fit`: the project's own
IsoFLOP fit, `experiments/results/isoflop_fit.json`); `size=L4d128` pins depth and width instead
(IsoFLOP sweeps). Steps = budget / analytic FLOPs per step (`sora_jax/scaling/flops.py`); a
constant LR with a linear cooldown over the last 20 %. Everything else follows
`configs/t2v.py:tiny` (MiniLM captions, the committed tiny VAE).
"""

import re

from configs import common, t2v

# Per preset: training FLOPs of a 1x run, the data, the nominal (largest) clip and its batch, and
# the sustained model FLOP/s assumed for the "expected time" column. CPU: the demo ladder's 32x
# rung spent 4.9e13 model FLOPs in 708 s of wall time, evaluation included (6.9e10 FLOP/s);
# smaller models run slower (the 1x rung: 1.5e12 in 209 s with the latent cache built).
PRESETS = {
    # demo: 1x + 4x + 32x and the comparison in about 30 minutes on 2 CPU cores (`make demo`).
    "demo": dict(base=1.5e12, dataset="physworld/tiny", clip=(17, 32, 56), batch=16, flops_per_s=6.9e10),
    # cpu: the 1x run is about ten minutes of this 2-core machine; 32x about three to four hours.
    "cpu": dict(base=2.5e13, dataset="physworld/tiny", clip=(17, 32, 56), batch=16, flops_per_s=6.9e10),
    # gpu: one H100 at an assumed 40 % MFU of its dense bf16 peak.
    "gpu": dict(base=1e17, dataset="physworld/small", clip=(33, 64, 112), batch=64, flops_per_s=4e14),
    # tpu: a v5e-64 slice at an assumed 40 % MFU.
    "tpu": dict(base=1e18, dataset="physworld/base", clip=(33, 128, 224), batch=256, flops_per_s=5e15),
}
# The committed tiny VAE (assets/vae_tiny): frames 1 + 4k -> 1 + k latent frames, 4x space, 16 channels.
VAE_TEMPORAL, VAE_SPATIAL, VAE_CHANNELS = 4, 4, 16
LADDER = ("1x", "4x", "32x")


def parse_budget(budget: str) -> float:
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


def latent_thw(clip) -> tuple[int, int, int]:
    frames, height, width = clip
    return 1 + (frames - 1) // VAE_TEMPORAL, height // VAE_SPATIAL, width // VAE_SPATIAL


def planned_steps(config) -> tuple[int, float]:
    """(steps, FLOPs per step) that spend `config.ladder.compute_flops` with the config's current
    model and batch size (after any overrides)."""
    from sora_jax.scaling import flops

    shape = flops.DiTShape.from_config(config.model, VAE_CHANNELS)
    per_step = flops.train_step_flops(shape, latent_thw(config.ladder.clip), config.data.batch_size)
    return max(1, round(config.ladder.compute_flops / per_step)), per_step


def schedule(config) -> None:
    """Steps that spend the budget with the config's current model and batch, and what follows
    from them: warmup, checkpoint cadence (resumable in pieces), one evaluation at the end."""
    config.total_steps, config.ladder.flops_per_step = planned_steps(config)
    config.optimizer.warmup_steps = min(100, max(1, config.total_steps // 10))
    config.checkpoint.every_steps = max(50, config.total_steps // 10)
    config.log.eval_every_steps = config.total_steps  # after the cooldown


def get_config(arg: str | None = None):
    from sora_jax.scaling import plan as plan_lib

    arg = common.parse_arg(arg, variant="cpu", budget="1x", rule="chinchilla", size="")
    preset = common.check_variant(arg.variant, PRESETS)
    config = t2v.get_config("tiny")
    config.unlock()
    config.data.dataset = preset["dataset"]
    config.data.batch_size = preset["batch"]
    config.data.max_batch_size = 4 * preset["batch"]
    compute = preset["base"] * parse_budget(arg.budget)
    size_rule = plan_lib.rule(arg.rule)
    run = plan_lib.plan_run(compute, config.model, VAE_CHANNELS, latent_thw(preset["clip"]), preset["batch"],
                            size_rule, parse_size(arg.size))
    config.model.variant = f"L{run.depth}d{run.width}"
    config.model.depth, config.model.width, config.model.heads = run.depth, run.width, run.heads
    config.optimizer.learning_rate = run.learning_rate
    config.optimizer.schedule = "constant_cooldown"
    config.optimizer.cooldown_fraction = 0.2
    config.eval.num_samples = 4
    # Common random numbers: every rung sees the same held-out clips, timesteps and noise.
    config.eval.num_clips = 64
    config.eval.timestep_quantiles = 8

    config.ladder = common.ml_collections.ConfigDict()
    config.ladder.preset = arg.variant
    config.ladder.budget = arg.budget
    config.ladder.size = arg.size
    config.ladder.rule = arg.rule
    config.ladder.rule_k = size_rule["k"]
    config.ladder.rule_a = size_rule["a"]
    config.ladder.base_compute_flops = preset["base"]
    config.ladder.compute_flops = compute
    config.ladder.params = run.params
    config.ladder.flops_per_step = run.flops_per_step
    config.ladder.clip = preset["clip"]
    schedule(config)
    config.ladder.assumed_flops_per_s = preset["flops_per_s"]
    config.ladder.rungs = LADDER
    config.ladder.probe_samples = 128  # generated videos per rung scored by the world probes
    config.ladder.voe_quads = 32  # violation-of-expectation quadruplets per kind
    config.lock()
    return config
