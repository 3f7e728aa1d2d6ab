"""Samplers for the rectified-flow ODE `dx/dt = v(x, t)`, from t = 1 (noise) to t = 0 (data).

Conditioning frames (`cond_mask` True) hold their given latents at t = 0 throughout, exactly as in
training, so one sampler serves text->video, image->video, extension, connecting and random
frames. Classifier-free guidance mixes the velocity with and without the caption.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from sora_jax.diffusion import flow

# velocity_fn(x [B, t, h, w, c], t_frames [B, t], keep_text bool [B]) -> v [B, t, h, w, c]
VelocityFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def timestep_grid(steps: int, shift: float = 1.0, start: float = 1.0) -> jax.Array:
    """`steps + 1` times from `start` down to 0, uniform then shifted (as in training)."""
    return flow.shift_timesteps(jnp.linspace(start, 0.0, steps + 1), shift)


def guided_velocity(velocity_fn: VelocityFn, x, t_frames, guidance: float):
    """Classifier-free guidance: v_uncond + g·(v_cond - v_uncond), both in one batched call."""
    batch = x.shape[0]
    if guidance == 1.0:
        return velocity_fn(x, t_frames, jnp.ones((batch,), bool))
    keep = jnp.concatenate([jnp.ones((batch,), bool), jnp.zeros((batch,), bool)])
    v = velocity_fn(jnp.concatenate([x, x]), jnp.concatenate([t_frames, t_frames]), keep)
    v_cond, v_uncond = v[:batch], v[batch:]
    return v_uncond + guidance * (v_cond - v_uncond)


def euler_sample(velocity_fn: VelocityFn, noise: jax.Array, *, steps: int = 30, guidance: float = 1.0,
                 shift: float = 1.0, cond_latents: jax.Array | None = None, cond_mask: jax.Array | None = None,
                 start: float = 1.0) -> jax.Array:
    """Euler integration of the flow ODE. `start < 1` begins part-way (SDEdit): `noise` must then
    already be `x_start` (see `flow.noise_latents`)."""
    batch, frames = noise.shape[:2]
    cond_mask = jnp.zeros((batch, frames), bool) if cond_mask is None else cond_mask
    cond_latents = jnp.zeros_like(noise) if cond_latents is None else cond_latents
    given = cond_mask[:, :, None, None, None]
    times = timestep_grid(steps, shift, start)

    def step(x, pair):
        t, t_next = pair
        x = jnp.where(given, cond_latents, x)
        t_frames = flow.frame_timesteps(jnp.full((batch,), t), cond_mask)
        v = guided_velocity(velocity_fn, x, t_frames, guidance)
        return x + (t_next - t) * v, None

    x, _ = jax.lax.scan(step, noise, (times[:-1], times[1:]))
    return jnp.where(given, cond_latents, x)
