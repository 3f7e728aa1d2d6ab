"""Defaults shared by every run: seed, data, mesh, sharding rules, optimizer, checkpoints, logs.

Configs are Python: `get_config(arg)` in each file builds on `common_config()`; `parse_arg` reads
`arg` strings such as `tiny` or `cpu,budget=4x` (the first bare word is the variant). Configs come
back locked, so `--config.a.b=v` can change a value but a mistyped key fails.
"""

from __future__ import annotations

import difflib

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """`"cpu,budget=4x"` -> {variant: "cpu", budget: "4x"}; keys must be among `defaults`.

    Values take the type of their default (int, float, bool or str).
    """
    parsed = dict(defaults)
    for token in filter(None, (t.strip() for t in (arg or "").split(","))):
        key, sep, value = token.partition("=")
        if not sep:
            key, value = "variant", token
        if key not in defaults:
            raise ValueError(f"config arg {key!r} is unknown{suggest(key, defaults)}; valid: {sorted(defaults)}")
        kind = type(defaults[key])
        if kind is bool:
            parsed[key] = value.lower() in ("1", "true", "yes")
        elif defaults[key] is None:
            parsed[key] = value
        else:
            parsed[key] = kind(value)
    return ml_collections.ConfigDict(parsed)


def suggest(key: str, choices) -> str:
    """` (did you mean 'x'?)` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_variant(variant: str, table: dict) -> dict:
    if variant not in table:
        raise ValueError(f"variant {variant!r} is unknown{suggest(variant, table)}; valid: {sorted(table)}")
    return table[variant]


# Logical axis names -> mesh axes. Parameters: embed, mlp, heads, kv, vocab, conv_in, conv_out.
# Activations: act_batch, act_tokens, act_embed, act_heads, act_mlp.
SHARDING_RULES = (
    ("act_batch", ("data", "fsdp")),
    ("act_tokens", "context"),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", None),
    ("conv_in", None),
    ("conv_out", "tensor"),
)


def common_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.total_steps = 1000
    # Fine-tuning: start from another run's (or export's) EMA parameters where path and shape
    # match; the rest start fresh. Ignored when the workdir already has a checkpoint (resume).
    config.init_from = ""

    config.data = ml_collections.ConfigDict()
    config.data.dataset = "physworld/tiny"  # a tfds name, or folder:/path/to/videos
    config.data.data_dir = "data/tfds"
    config.data.train_split = "train"
    config.data.eval_split = "validation"
    config.data.batch_size = 8  # clips per global batch in the largest (T, H, W) bucket
    config.data.max_batch_size = 64  # cap for small buckets (images), which get more clips
    config.data.num_workers = 0  # grain worker processes; 0 reads in the main process
    config.data.prefetch = 2
    config.data.fps = 8.0  # user folders: clips are resampled to this frame rate
    # Training clips read: 0 = the train split as prepared. PhysWorld renders clips past the
    # prepared ones from their seeds (a ladder sizes this so no rung repeats a clip > ~4 times).
    config.data.num_train = 0

    # Mesh axis sizes; -1 takes the devices left over. The product must equal the device count.
    # Devices per axis inside a slice (ICI); dcn_*: slices (TPU) or processes (GPU nodes) the axis
    # spans across the data-center network. Usual multi-slice data parallelism: dcn_data = slices.
    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, context=1,
                                                 dcn_data=1, dcn_fsdp=1, dcn_tensor=1, dcn_context=1))
    config.sharding = ml_collections.ConfigDict()
    config.sharding.rules = SHARDING_RULES

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 3e-4
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.99
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 1.0
    config.optimizer.warmup_steps = 100
    config.optimizer.schedule = "constant_cooldown"  # constant LR, linear cooldown at the end
    config.optimizer.cooldown_fraction = 0.2
    config.optimizer.ema_decay = 0.999
    config.optimizer.grad_accum_steps = 1  # microbatches per step (scanned: memory of one microbatch)
    config.optimizer.max_consecutive_skips = 10  # non-finite loss or gradient steps before stopping

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every_steps = 200
    config.checkpoint.keep = 3
    config.checkpoint.async_save = True
    # The latest checkpoint is verified before a resume: "fallback" moves a damaged one aside and
    # resumes from the newest intact one; "refuse" stops instead.
    config.checkpoint.on_damage = "fallback"
    # Not enough disk for the next checkpoint: "stop" (one line, clean exit) or "continue" unsaved.
    config.checkpoint.on_full_disk = "stop"

    config.log = ml_collections.ConfigDict()
    config.log.every_steps = 10
    config.log.eval_every_steps = 200
    return config
