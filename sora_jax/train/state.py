"""Train state (params, optimizer, EMA, step, RNG) and the optimizer built from the config."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import optax

from sora_jax.models import lora, mup


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState
    ema_params: dict
    rng: jax.Array  # raw uint32 key data: stored as-is in checkpoints
    skipped_steps: jax.Array  # updates skipped by the non-finite guard, in total
    # Parameters the model reads but training never updates (a LoRA run's base DiT): no gradient,
    # optimizer state or EMA, and not in checkpoints (checkpoints.NOT_SAVED). {} for most runs.
    frozen: dict = flax.struct.field(default_factory=dict)

    @classmethod
    def create(cls, params, optimizer: optax.GradientTransformation, rng: jax.Array, frozen=None) -> TrainState:
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                   ema_params=jax.tree.map(jnp.copy, params), rng=rng, skipped_steps=jnp.zeros((), jnp.int32),
                   frozen=frozen or {})

    def model_params(self, ema: bool = True) -> dict:
        """What the model is applied with: (EMA) trained parameters plus the frozen ones."""
        return self.with_frozen(self.ema_params if ema else self.params)

    def with_frozen(self, trained: dict) -> dict:
        """`trained` (parameters, or values in their place as in a loss's argument) plus the frozen ones."""
        return lora.combine(self.frozen, trained) if self.frozen else trained


def learning_rate_schedule(optimizer_config, total_steps: int) -> optax.Schedule:
    """Linear warmup, then constant, then a linear cooldown over the last `cooldown_fraction`."""
    peak = optimizer_config.learning_rate
    warmup = min(optimizer_config.warmup_steps, max(total_steps - 1, 0))
    if optimizer_config.schedule == "constant":
        cooldown = 0
    elif optimizer_config.schedule == "constant_cooldown":
        cooldown = int(total_steps * optimizer_config.cooldown_fraction)
    elif optimizer_config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup, 1), max(total_steps, warmup + 1), peak * 0.01)
    else:
        raise ValueError(f"optimizer.schedule={optimizer_config.schedule!r}; valid: constant, constant_cooldown, "
                         "cosine")
    constant = max(total_steps - warmup - cooldown, 0)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak),
         optax.linear_schedule(peak, 0.0, max(cooldown, 1))],
        boundaries=[warmup, warmup + constant],
    )


def make_optimizer(optimizer_config, total_steps: int, lr_multipliers=None) -> optax.GradientTransformation:
    """AdamW on the schedule, after global-norm clipping; `lr_multipliers` (a float per parameter,
    μP's: `models/mup.py`) scale each parameter's update last."""
    if optimizer_config.name != "adamw":
        raise ValueError(f"optimizer.name={optimizer_config.name!r}; valid: adamw")
    schedule = learning_rate_schedule(optimizer_config, total_steps)
    chain = []
    if optimizer_config.grad_clip_norm:
        chain.append(optax.clip_by_global_norm(optimizer_config.grad_clip_norm))
    chain.append(optax.adamw(schedule, b1=optimizer_config.b1, b2=optimizer_config.b2,
                             weight_decay=optimizer_config.weight_decay))
    if lr_multipliers is not None:
        chain.append(mup.scale_updates(lr_multipliers))
    return optax.chain(*chain)


def ema_update(ema, params, decay: float):
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
