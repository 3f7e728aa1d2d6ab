r"""The compute ladder: one base compute per hardware preset, times a multiplier.

    sora-jax ladder --config=sora_jax/configs/scaling.py:cpu --workdir=runs/ladder_cpu   # 1x, 4x, 32x
    sora-jax ladder --config=sora_jax/configs/scaling.py:cpu --print                      # the table only
    sora-jax train --config=sora_jax/configs/scaling.py:cpu,budget=4x --workdir=runs/ladder_cpu/4x

`budget` is a multiple of the preset's base compute (`1x`, `4x`, `32x`, or any `Nx`); `rule`
sizes the model for the budget (`chinchilla`: 20 tokens per parameter; `fit`: the project's own
IsoFLOP fit, `experiments/results/isoflop_fit.json`); `size=L4d128` pins depth and width instead
(IsoFLOP sweeps). Steps = budget / analytic FLOPs per step (`sora_jax/scaling/plan.py`); a
constant LR with a linear cooldown over the last 20 %. Everything else follows
`sora_jax/configs/t2v.py:tiny` (MiniLM captions, the committed tiny VAE, whose compression factors and
latent channels are read from its export).
"""

import ml_collections

from sora_jax.configs import common, t2v, vae
from sora_jax.data import blockworld
from sora_jax.pipelines import vae as vae_pipeline
from sora_jax.scaling import plan

# Per preset: training FLOPs of a 1x run, the data, the nominal (largest) clip and its batch, and
# the sustained model FLOP/s assumed for the "expected time" column (measured: docs/scaling.md).
# `batch` and `lr_scale` (x plan.learning_rate's 1/width rule) of the CPU presets are the recipe
# sweep's winners at the demo budget (experiments/recipe_sweep.py, docs/scaling.md "A recipe
# measured per FLOP": batch 8 at 4x the rule's LR, validation loss 0.894 vs 0.983 for batch 16 at
# 1x); the gpu/tpu presets keep the rule's LR until a sweep at their widths confirms the transfer.
# `vae`: the VAE run the preset's DiTs work in, and the `sora_jax/configs/vae.py` variant that
# trains it (the demo and cpu presets use the committed 2x-temporal tiny VAE, whose reconstructions
# keep every object probe >= 0.92 of the truth, docs/scaling.md; the gpu/tpu ones need theirs
# trained first: training refuses, naming the command, before anything is prepared or compiled).
PRESETS = {
    # demo: 1x + 4x + 32x and the comparison in about 26 minutes on 2 CPU cores (`make demo`, 2026-12-07).
    # No EMA: at 520-3,691 steps an EMA of the weights scores below the raw (cooled-down) weights on
    # validation loss at every rung and on permanence / trails at 1x and 4x
    # (experiments/results/ladder_demo/ema_vs_raw.json, docs/scaling.md).
    "demo": dict(base=1.5e12, dataset="physworld/tiny", clip=(17, 32, 56), batch=8, lr_scale=4.0, flops_per_s=6.9e10,
                 vae=("assets/vae_tiny_t2", "tiny_t2"), probe_samples=256, ema_decay=0.0,
                 per_run=dict(cpus_per_run=1.0, gpus_per_run=0.0, tpus_per_run=0)),
    # cpu: the 1x run is about ten minutes of this 2-core machine; 32x about three to four hours.
    "cpu": dict(base=2.5e13, dataset="physworld/tiny", clip=(17, 32, 56), batch=8, lr_scale=4.0, flops_per_s=6.9e10,
                vae=("assets/vae_tiny_t2", "tiny_t2"), probe_samples=256,
                per_run=dict(cpus_per_run=1.0, gpus_per_run=0.0, tpus_per_run=0)),
    # blockworld: the demo's budgets on BlockWorld (33-frame clips, an action per latent frame).
    "blockworld": dict(base=1.5e12, dataset="blockworld/tiny", clip=(33, 32, 56), batch=8, lr_scale=4.0,
                       flops_per_s=6.9e10, vae=("assets/vae_blockworld", "blockworld"), probe_samples=64, voe_quads=16,
                       per_run=dict(cpus_per_run=1.0, gpus_per_run=0.0, tpus_per_run=0)),
    # physworld3d: the demo's budgets on PhysWorld 3D (a moving perspective camera, cuts), in the
    # tiny VAE fine-tuned on it.
    "physworld3d": dict(base=1.5e12, dataset="physworld3d/tiny", clip=(17, 32, 56), batch=8, lr_scale=4.0,
                        flops_per_s=6.9e10, vae=("assets/vae_physworld3d", "physworld3d"), probe_samples=64,
                        voe_quads=16, per_run=dict(cpus_per_run=1.0, gpus_per_run=0.0, tpus_per_run=0)),
    # gpu: one H100 at an assumed 40 % MFU of its dense bf16 peak.
    "gpu": dict(base=1e17, dataset="physworld/small", clip=(33, 64, 112), batch=64, lr_scale=1.0, flops_per_s=4e14,
                vae=("runs/vae_small", "small"), per_run=dict(cpus_per_run=8.0, gpus_per_run=1.0, tpus_per_run=0)),
    # tpu: a v5e-64 slice at an assumed 40 % MFU.
    "tpu": dict(base=1e18, dataset="physworld/base", clip=(33, 128, 224), batch=256, lr_scale=1.0, flops_per_s=5e15,
                vae=("runs/vae_base", "base"), per_run=dict(cpus_per_run=8.0, gpus_per_run=0.0, tpus_per_run=4)),
}
LADDER = ("1x", "4x", "32x")


def vae_geometry(workdir: str, variant: str) -> dict[str, int]:
    """The trained VAE's {temporal, spatial, channels}; before it is trained, what its config
    (`vae.py:<variant>`) will train, so the ladder can be planned (`--print`) first."""
    try:
        return vae_pipeline.geometry(workdir)
    except FileNotFoundError:
        model = vae.get_config(variant).model
        return {"temporal": int(model.temporal_compression), "spatial": int(model.spatial_compression),
                "channels": int(model.latent_channels)}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="cpu", budget="1x", rule="chinchilla", size="", vae="")
    preset = common.check_variant(arg.variant, PRESETS)
    config = t2v.get_config("tiny")
    config.unlock()
    config.data.dataset = preset["dataset"]
    if preset["dataset"].startswith("blockworld/"):
        config.model.num_actions = len(blockworld.ACTIONS)
    config.data.batch_size = preset["batch"]
    config.data.max_batch_size = 4 * preset["batch"]
    # Mixed precision (bf16 matmul operands, f32 params and the rest): 1.53x the steps/s of f32 at
    # equal validation loss on the tiny DiT (experiments/results/precision_tiny.json); a training
    # step of the demo rungs' shapes 1.34x (width 64) and 1.60x (width 128) faster
    # (benchmarks/results/cpu/bench_dit_step_ladder_shapes.json, command in docs/performance.md).
    config.model.dtype = "mixed"
    config.optimizer.ema_decay = preset.get("ema_decay", config.optimizer.ema_decay)
    config.optimizer.schedule = "constant_cooldown"
    config.optimizer.cooldown_fraction = 0.2
    config.eval.num_samples = 4
    # Common random numbers: every rung sees the same held-out clips, timesteps and noise.
    config.eval.num_clips = 64
    config.eval.timestep_quantiles = 8

    config.ladder = ml_collections.ConfigDict()
    config.ladder.preset = arg.variant
    config.ladder.rule = arg.rule
    # Clips per step: `preset` (the preset's `batch` at every budget) or `fit` (B*(C) measured by
    # experiments/batch_size.py, `plan.batch_size`).
    config.ladder.batch_rule = "preset"
    config.ladder.preset_batch = preset["batch"]
    config.ladder.base_compute_flops = preset["base"]
    config.ladder.clip = preset["clip"]
    # `vae=<variant>` runs the preset in another latent: assets/vae_<variant>, trained by
    # `vae.py:<variant>` (e.g. `scaling.py:demo,vae=tiny_t2`, the 2x-temporal tiny VAE).
    latent = preset["vae"]
    if arg.vae:
        common.check_variant(arg.vae, vae.VARIANTS)
        latent = (f"assets/vae_{arg.vae}", arg.vae)
    config.vae_workdir, config.ladder.vae_variant = latent
    config.ladder.vae = vae_geometry(*latent)  # {temporal, spatial, channels}
    # Filled by plan.apply_budget for this budget:
    config.ladder.budget, config.ladder.size = arg.budget, arg.size
    config.ladder.rule_k = config.ladder.rule_a = 0.0
    config.ladder.compute_flops = config.ladder.flops_per_step = 0.0
    config.ladder.params = 0
    config.ladder.assumed_flops_per_s = preset["flops_per_s"]
    config.ladder.rungs = LADDER
    # Recipe knobs (experiments/recipe_sweep.py): the rule's parameter count, the planned LR
    # (plan.learning_rate) and the planned warmup (min(100, steps / 10)) are multiplied by these.
    config.ladder.size_scale = 1.0
    config.ladder.lr_scale = preset["lr_scale"]
    config.ladder.warmup_scale = 1.0
    config.ladder.probe_samples = preset.get("probe_samples", 128)  # generated videos per rung scored by the probes
    config.ladder.voe_quads = preset.get("voe_quads", 32)  # violation-of-expectation quadruplets per kind
    config.ladder.bootstrap = 1000  # a sweep's fits: resamples behind each exponent's 95 % CI
    # Fresh data at every budget: data.num_train grows so no rung sees a clip more than this many
    # times (Muennighoff et al. 2023: past ~4 epochs repeated data is worth much less than new).
    config.ladder.max_epochs = 4.0
    # Where the ladder's or a sweep's runs execute (`sora_jax/scaling/engines.py`): `local`, one after
    # another; `ray`, side by side as Ray tasks, each asking for one run's resources.
    config.engine = ml_collections.ConfigDict(dict(name="local", ray_address="", max_retries=3, **preset["per_run"]))
    plan.apply_budget(config, arg.budget, arg.size)
    config.lock()
    return config
