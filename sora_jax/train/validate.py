"""Config checks that run before anything is built or compiled: one-line errors naming the field
and what would be valid. `trainer.train` calls `check(config, device_count)` first.
"""

from __future__ import annotations

import pathlib


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and the valid choices."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive(config, *fields: str) -> None:
    for field in fields:
        value = config
        for part in field.split("."):
            value = value[part]
        _require(isinstance(value, (int, float)) and value > 0, f"{field}={value!r} must be positive")


def check(config, device_count: int) -> None:
    from sora_jax.data import worlds
    from sora_jax.train import sharding

    _require(config.task in ("vae", "t2v"), f"task={config.task!r}; valid: vae, t2v")
    _positive(config, "total_steps", "data.batch_size", "data.max_batch_size", "optimizer.learning_rate",
              "optimizer.grad_accum_steps", "checkpoint.every_steps", "checkpoint.keep", "log.every_steps",
              "log.eval_every_steps")
    _require(not config.get("init_from") or pathlib.Path(config.init_from).exists(),
             f"init_from={config.get('init_from')!r} does not exist: give a training workdir or a `sora-jax export` "
             f"directory")
    dataset = config.data.dataset
    _require(dataset.startswith(("folder:", "video_folder/")) or dataset in worlds.NAMES,
             f"data.dataset={dataset!r}; valid: {', '.join(worlds.NAMES)}, folder:<path>, "
             f"video_folder/<name> (a folder prepared by `sora-jax data prepare --dataset=folder:<path>`)")
    _require(config.data.get("num_train", 0) >= 0, f"data.num_train={config.data.get('num_train')} must be >= 0 "
                                                    "(0 = the train split as prepared)")
    try:
        sizes = sharding.mesh_shape(config.mesh, device_count)
    except ValueError as error:
        raise ConfigError(f"mesh: {error}") from None
    shards = sizes["data"] * sizes["fsdp"]
    multiple = shards * config.optimizer.grad_accum_steps
    _require(config.data.batch_size % multiple == 0,
             f"data.batch_size={config.data.batch_size} must divide by mesh data x fsdp ({shards}) x "
             f"optimizer.grad_accum_steps ({config.optimizer.grad_accum_steps}) = {multiple}")
    _require(config.optimizer.name == "adamw", f"optimizer.name={config.optimizer.name!r}; valid: adamw")
    _require(config.optimizer.schedule in ("constant", "constant_cooldown", "cosine"),
             f"optimizer.schedule={config.optimizer.schedule!r}; valid: constant, constant_cooldown, cosine")
    _require(config.checkpoint.get("on_damage", "fallback") in ("fallback", "refuse"),
             f"checkpoint.on_damage={config.checkpoint.get('on_damage')!r}; valid: fallback, refuse")
    _require(config.checkpoint.get("on_full_disk", "stop") in ("stop", "continue"),
             f"checkpoint.on_full_disk={config.checkpoint.get('on_full_disk')!r}; valid: stop, continue")
    _require(0.0 <= config.optimizer.ema_decay < 1.0, f"optimizer.ema_decay={config.optimizer.ema_decay} must be in "
                                                      "[0, 1)")
    if "ladder" in config:
        _check_ladder(config)
    if config.task == "t2v":
        _check_t2v(config, sizes)
    else:
        _check_vae(config)


def _check_ladder(config) -> None:
    from sora_jax.scaling import plan

    check_ladder_settings(config.ladder)
    steps, per_step = plan.planned_steps(config)
    _require(abs(config.total_steps - steps) <= 1,
             f"total_steps={config.total_steps} does not spend ladder.compute_flops={config.ladder.compute_flops:.3g} "
             f"at {per_step:.3g} FLOPs per step (model and data.batch_size as given): use total_steps={steps}, "
             f"or run it with `sora-jax ladder`, which replans")


def check_ladder_settings(ladder) -> None:
    """The ladder's and sweep's own settings (scoring, fits, data reuse), which act after training:
    refused before it."""
    _require(ladder.get("probe_samples", 1) >= 1,
             f"ladder.probe_samples={ladder.get('probe_samples')}: each rung's probes score >= 1 sampled video "
             "(128 is usual)")
    _require(ladder.get("voe_quads", 0) >= 0, f"ladder.voe_quads={ladder.get('voe_quads')} must be >= 0 (0: no VoE)")
    _require(ladder.get("bootstrap", 1) >= 1,
             f"ladder.bootstrap={ladder.get('bootstrap')}: the fits' CIs need >= 1 resample (1000 is usual)")
    _require(ladder.get("max_epochs", 0) >= 0,
             f"ladder.max_epochs={ladder.get('max_epochs')} must be >= 0 (0: the split as prepared)")


def _check_t2v(config, mesh_sizes: dict) -> None:
    from sora_jax.checkpoints import run_step
    from sora_jax.data import blockworld
    from sora_jax.diffusion import flow
    from sora_jax.models import dit

    model = config.model
    _require(model.dtype != "" and model.attention_implementation != "",
             "model.dtype and model.attention_implementation are '' (as the base run): give lora.base (a LoRA "
             "run) or distill.pairs (a reflow student), or set them")
    _positive(config, "model.width", "model.depth", "model.heads", "model.text_length", "sample.steps")
    _require(model.width % model.heads == 0, f"model.width={model.width} does not divide by model.heads={model.heads}")
    _require((model.width // model.heads) % 2 == 0,
             f"model.width / model.heads = {model.width // model.heads} must be even (rotary pairs)")
    _require(model.heads % mesh_sizes["tensor"] == 0,
             f"model.heads={model.heads} does not divide by mesh.tensor={mesh_sizes['tensor']}")
    _require(len(model.patch) == 3 and all(int(p) >= 1 for p in model.patch),
             f"model.patch={tuple(model.patch)} must be three positive ints (pt, ph, pw)")
    _require(model.layout in dit.LAYOUTS, f"model.layout={model.layout!r}; valid: {', '.join(dit.LAYOUTS)}")
    _require(model.remat in dit.REMAT_POLICIES, f"model.remat={model.remat!r}; valid: {', '.join(dit.REMAT_POLICIES)}")
    _require(model.dtype in dit.DTYPES, f"model.dtype={model.dtype!r}; valid: {', '.join(dit.DTYPES)}")
    _require(model.text_encoder in ("bytes", "minilm"), f"model.text_encoder={model.text_encoder!r}; valid: bytes, "
                                                        "minilm")
    _require(model.attention_implementation in dit.ATTENTION_IMPLEMENTATIONS,
             f"model.attention_implementation={model.attention_implementation!r}; "
             f"valid: {', '.join(dit.ATTENTION_IMPLEMENTATIONS)}")
    parametrization = model.get("parametrization", "standard")
    _require(parametrization in dit.PARAMETRIZATIONS,
             f"model.parametrization={parametrization!r}; valid: {', '.join(dit.PARAMETRIZATIONS)}")
    if parametrization == "mup":
        head_dim = model.width // model.heads
        _require(model.mup_base_width > 0 and model.mup_base_width % head_dim == 0,
                 f"model.mup_base_width={model.mup_base_width} must be a positive multiple of the head width "
                 f"{head_dim} (model.width / model.heads)")
    output_conv = model.get("output_conv", 0)
    _require(output_conv == 0 or (output_conv > 0 and output_conv % 2 == 1),
             f"model.output_conv={output_conv} must be 0 (none) or an odd kernel size (3: U-ViT's)")
    unknown = sorted(set(config.flow.tasks) - set(flow.TASKS))
    _require(not unknown, f"flow.tasks has unknown tasks {unknown}; valid: {', '.join(flow.TASKS)}")
    weights = [float(w) for w in config.flow.tasks.values()]
    _require(min(weights) >= 0 and sum(weights) > 0, f"flow.tasks weights {dict(config.flow.tasks)} must be >= 0, sum "
                                                     "> 0")
    _require(0.0 <= config.flow.text_dropout <= 1.0, f"flow.text_dropout={config.flow.text_dropout} must be in [0, 1]")
    _require(0.0 <= config.flow.get("action_dropout", 0.0) <= 1.0,
             f"flow.action_dropout={config.flow.get('action_dropout')} must be in [0, 1]")
    actions = config.model.get("num_actions", 0)
    _require(actions in (0, len(blockworld.ACTIONS)) or not config.data.dataset.startswith("blockworld/"),
             f"model.num_actions={actions}: blockworld has {len(blockworld.ACTIONS)} actions (or 0: captions only)")
    _require(actions == 0 or config.data.dataset.startswith("blockworld/"),
             f"model.num_actions={actions} needs a dataset with actions (blockworld/<variant>), not "
             f"{config.data.dataset!r}")
    _require(config.flow.logit_std > 0, f"flow.logit_std={config.flow.logit_std} must be positive")
    _require(config.flow.get("grid_steps", 0) >= 0, f"flow.grid_steps={config.flow.get('grid_steps')} must be 0 "
             "(logit-normal timesteps) or a sampler's step count")
    _require(config.sample.guidance >= 0, f"sample.guidance={config.sample.guidance} must be >= 0")
    _require(config.sample.get("shift", 0.0) >= 0, f"sample.shift={config.sample.get('shift')} must be >= 0 "
             "(0: the training shift)")
    if config.get("lora") is not None and config.lora.rank:
        _require(config.lora.rank > 0 and config.lora.alpha > 0,
                 f"lora.rank={config.lora.rank} and lora.alpha={config.lora.alpha} must be positive (rank 0: no LoRA)")
        _require(len(config.lora.targets) > 0 and all(isinstance(t, str) for t in config.lora.targets),
                 f"lora.targets={tuple(config.lora.targets)} must be layer path patterns such as '*attention/qkv'")
        _require(not config.get("init_from"), "lora.base and init_from both given: a LoRA run starts from its base "
                                               "(lora.base); init_from is for full fine-tuning")
    try:
        step = run_step(config.vae_workdir)
    except (OSError, ValueError):
        step = None
    variant = config.ladder.get("vae_variant", "tiny") if "ladder" in config else "tiny"
    _require(step is not None, f"vae_workdir={config.vae_workdir!r} holds no trained VAE: train the VAE first, e.g. "
             f"`sora-jax train --config=sora_jax/configs/vae.py:{variant} --workdir={config.vae_workdir}`")


def _check_vae(config) -> None:
    from sora_jax.models.vae import nearest_frame_counts, nearest_multiples

    model = config.model
    _require(model.spatial_compression in (4, 8), f"model.spatial_compression={model.spatial_compression}; valid: 4, 8")
    _require(model.temporal_compression in (1, 2, 4),
             f"model.temporal_compression={model.temporal_compression}; valid: 1, 2, 4")
    _require(4 <= model.latent_channels <= 16, f"model.latent_channels={model.latent_channels} must be in 4..16")
    _require(model.patch in (1, 2, 4) and model.patch <= model.spatial_compression,
             f"model.patch={model.patch}; valid: 1, 2 or 4, at most model.spatial_compression")
    frames, side = config.data.crop_frames, config.data.crop_side
    temporal, spatial = model.temporal_compression, model.spatial_compression
    if frames:
        valid = nearest_frame_counts(frames, temporal)
        _require(frames >= 1 and (frames - 1) % temporal == 0,
                 f"data.crop_frames={frames} must be 1 + k·{temporal} (model.temporal_compression); nearest valid: "
                 f"{' or '.join(map(str, valid))}")
    if side:
        valid = nearest_multiples(side, spatial)
        _require(side % spatial == 0, f"data.crop_side={side} must be a multiple of {spatial} "
                 f"(model.spatial_compression); nearest valid: {' or '.join(map(str, valid))}")
    for name, weight in config.loss.items():
        if name != "hooks":
            _require(weight >= 0, f"loss.{name}={weight} must be >= 0")
    from sora_jax.train.vae_task import LOSS_HOOKS

    unknown = sorted(set(config.loss.hooks) - set(LOSS_HOOKS))
    _require(not unknown, f"loss.hooks has unknown terms {unknown}; registered: {sorted(LOSS_HOOKS)}")
