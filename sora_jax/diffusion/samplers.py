"""Samplers for the rectified-flow ODE `dx/dt = v(x, t)`, from t = 1 (noise) to t = 0 (data).

Conditioning frames (`cond_mask` True) hold their given latents at t = 0 throughout, exactly as in
training, so one sampler serves text->video, image->video, extension, connecting and random
frames; a model trained on noised context (`flow.context_noise`) is shown its context noised to
`cond_t` by the starting noise, and the output keeps the clean given latents. Classifier-free
guidance mixes the velocity with and without the caption.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sora_jax.diffusion import flow

# velocity_fn(x [B, t, h, w, c], t_frames [B, t], keep_text bool [B]) -> v [B, t, h, w, c]
VelocityFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


timestep_grid = flow.timestep_grid  # the sampler's times (flow.py: training draws from them too)


def guided_velocity(velocity_fn: VelocityFn, x, t_frames, guidance: float):
    """Classifier-free guidance: v_uncond + g·(v_cond - v_uncond), both in one batched call."""
    batch = x.shape[0]
    if guidance == 1.0:
        return velocity_fn(x, t_frames, jnp.ones((batch,), bool))
    keep = jnp.concatenate([jnp.ones((batch,), bool), jnp.zeros((batch,), bool)])
    v = velocity_fn(jnp.concatenate([x, x]), jnp.concatenate([t_frames, t_frames]), keep)
    v_cond, v_uncond = v[:batch], v[batch:]
    return v_uncond + guidance * (v_cond - v_uncond)


SAMPLERS = ("euler", "heun", "ab2")


def sample(velocity_fn: VelocityFn, noise: jax.Array, *, method: str = "euler", steps: int = 30,
           guidance: float = 1.0, shift: float = 1.0, cond_latents: jax.Array | None = None,
           cond_mask: jax.Array | None = None, start: float = 1.0, cond_t: float = 0.0) -> jax.Array:
    """Integrates the flow ODE from `start` to 0.

    - `euler`: first order, one velocity per step.
    - `heun`: second order (trapezoid predictor-corrector), two velocities per step.
    - `ab2`: second-order Adams-Bashforth with variable steps: one velocity per step, reusing the
      previous one (a linear multistep solver, as DPM-Solver++(2M) for flow models).

    `start < 1` begins part-way (SDEdit): `noise` must then already be `x_start`.
    """
    if method not in SAMPLERS:
        raise ValueError(f"sampler {method!r} is unknown; valid: {', '.join(SAMPLERS)}")
    batch, frames = noise.shape[:2]
    cond_mask = jnp.zeros((batch, frames), bool) if cond_mask is None else cond_mask
    cond_latents = jnp.zeros_like(noise) if cond_latents is None else cond_latents
    given = cond_mask[:, :, None, None, None]
    held = (1.0 - cond_t) * cond_latents + cond_t * noise if cond_t else cond_latents  # what the model sees
    times = timestep_grid(steps, shift, start)

    def velocity(x, t):
        x = jnp.where(given, held, x)
        t_frames = flow.frame_timesteps(jnp.full((batch,), t), cond_mask, cond_t)
        return guided_velocity(velocity_fn, x, t_frames, guidance)

    def step(carry, pair):
        x, v_previous, h_previous = carry
        t, t_next = pair
        h = t_next - t
        v = velocity(x, t)
        if method == "euler":
            x_next = x + h * v
        elif method == "heun":
            x_euler = x + h * v
            x_next = x + 0.5 * h * (v + velocity(x_euler, t_next))
        else:  # ab2; the first step (no previous velocity) is Euler
            ratio = jnp.where(h_previous == 0, 0.0, h / jnp.where(h_previous == 0, 1.0, h_previous))
            x_next = x + h * ((1.0 + 0.5 * ratio) * v - 0.5 * ratio * v_previous)
        return (x_next, v, h), None

    initial = (noise, jnp.zeros_like(noise), jnp.zeros((), noise.dtype))
    (x, _, _), _ = jax.lax.scan(step, initial, (times[:-1], times[1:]))
    return jnp.where(given, cond_latents, x)

