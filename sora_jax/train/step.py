"""The training step, one jitted function: gradients (summed over microbatches when
`optimizer.grad_accum_steps` > 1), the optimizer update, the EMA, and the guard that makes a
non-finite step change nothing but the counters. `trainer.build` jits and shards it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sora_jax.train import state as state_lib


def _ema_decay(config, step: jax.Array) -> jax.Array:
    """EMA with warmup: averages over the steps taken so far early on, `ema_decay` later."""
    step = step.astype(jnp.float32)
    return jnp.minimum(config.optimizer.ema_decay, (1.0 + step) / (10.0 + step))


def value_and_grad(loss_fn, params, batch, rng, accumulate: int):
    """Loss, aux and gradients, over `accumulate` microbatches summed in a scan (same memory as
    one microbatch). Microbatch j takes rows j, j+k, j+2k, ...: each device keeps its rows."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accumulate == 1:
        return grad_fn(params, batch, rng)
    micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // accumulate, accumulate, *x.shape[1:]).swapaxes(0, 1),
                         batch)

    def body(total, index):
        microbatch = jax.tree.map(lambda x: x[index], micro)
        out = grad_fn(params, microbatch, jax.random.fold_in(rng, index))
        return jax.tree.map(jnp.add, total, out), None

    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(grad_fn, params, first, rng))
    total, _ = jax.lax.scan(body, zeros, jnp.arange(accumulate))
    return jax.tree.map(lambda x: x / accumulate, total)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(task, optimizer, config):
    accumulate = config.optimizer.grad_accum_steps

    def train_step(state: state_lib.TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params, batch, rng):  # gradients for the trained parameters only
            return task.loss(state.with_frozen(params), batch, rng)

        (loss, aux), grads = value_and_grad(loss_fn, state.params, batch, rng, accumulate)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # What the update writes is checked too: finite gradients can still overflow a parameter.
        finite = (jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite(params) & _all_finite(opt_state))
        ema = state_lib.ema_update(state.ema_params, params, _ema_decay(config, state.step))

        def keep_if_finite(new, old):  # a non-finite step changes nothing but the counters
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep_if_finite(params, state.params),
            opt_state=keep_if_finite(opt_state, state.opt_state),
            ema_params=keep_if_finite(ema, state.ema_params),
            skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
        )
        return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite, **aux}

    return train_step
