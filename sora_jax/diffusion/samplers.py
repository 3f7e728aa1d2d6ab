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


SAMPLERS = ("euler", "heun", "ab2", "ddim")


def ddim_noise_scale(t: jax.Array, t_next: jax.Array, eta: float) -> jax.Array:
    """The fresh-noise scale c of a DDIM step t -> s on x_t = (1 - t)·x0 + t·noise: eta times the
    standard deviation of q(x_s | x_t, x0), s·sqrt(1 - ((1 - t)·s / ((1 - s)·t))²) (Song et al.'s
    sigma for a path with a_t = 1 - t, b_t = t). 0 at s = 0; eta·s at t = 1."""
    ratio = (1.0 - t) * t_next / jnp.maximum((1.0 - t_next) * t, 1e-12)
    return eta * t_next * jnp.sqrt(jnp.clip(1.0 - ratio * ratio, 0.0, 1.0))


def sample(velocity_fn: VelocityFn, noise: jax.Array, *, method: str = "euler", steps: int = 30,
           guidance: float = 1.0, shift: float = 1.0, cond_latents: jax.Array | None = None,
           cond_mask: jax.Array | None = None, start: float = 1.0, cond_t: float = 0.0, eta: float = 0.0,
           eta_t_max: float = 1.0, rng: jax.Array | None = None) -> jax.Array:
    """Integrates the flow ODE from `start` to 0.

    - `euler`: first order, one velocity per step.
    - `heun`: second order (trapezoid predictor-corrector), two velocities per step.
    - `ab2`: second-order Adams-Bashforth with variable steps: one velocity per step, reusing the
      previous one (a linear multistep solver, as DPM-Solver++(2M) for flow models).
    - `ddim`: one velocity per step gives the clean latent and the noise it implies,
      x0 = x - t·v and n = x + (1 - t)·v; the step to s keeps x0 and mixes n with fresh noise from
      `rng`, x_s = (1 - s)·x0 + sqrt(s² - c²)·n + c·z with c = `ddim_noise_scale(t, s, eta)`.
      `eta` 0 is `euler` exactly; 1 is ancestral (DDPM) sampling, which re-draws the detail the
      deterministic path averages away. `eta_t_max` < 1 adds fresh noise only on the steps that
      start at t <= it (EDM's S_tmax): the layout and colors, decided at high noise, stay Euler's.

    `start < 1` begins part-way (SDEdit): `noise` must then already be `x_start`.
    """
    if method not in SAMPLERS:
        raise ValueError(f"sampler {method!r} is unknown; valid: {', '.join(SAMPLERS)}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta={eta} must be in [0, 1] (0: deterministic, 1: ancestral)")
    if method == "ddim" and eta > 0 and rng is None:
        raise ValueError("the ddim sampler with eta > 0 needs an rng for its fresh noise")
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

    def step(carry, inputs):
        x, v_previous, h_previous = carry
        t, t_next, key = inputs
        h = t_next - t
        v = velocity(x, t)
        if method == "ddim":
            clean, implied = x - t * v, x + (1.0 - t) * v
            c = jnp.where(t <= eta_t_max, ddim_noise_scale(t, t_next, eta), 0.0)
            fresh = jax.random.normal(key, x.shape, x.dtype) if eta > 0 else jnp.zeros_like(x)
            x_next = (1.0 - t_next) * clean + jnp.sqrt(jnp.maximum(t_next * t_next - c * c, 0.0)) * implied + c * fresh
        elif method == "euler":
            x_next = x + h * v
        elif method == "heun":
            x_euler = x + h * v
            x_next = x + 0.5 * h * (v + velocity(x_euler, t_next))
        else:  # ab2; the first step (no previous velocity) is Euler
            ratio = jnp.where(h_previous == 0, 0.0, h / jnp.where(h_previous == 0, 1.0, h_previous))
            x_next = x + h * ((1.0 + 0.5 * ratio) * v - 0.5 * ratio * v_previous)
        return (x_next, v, h), None

    initial = (noise, jnp.zeros_like(noise), jnp.zeros((), noise.dtype))
    keys = jax.random.split(jax.random.PRNGKey(0) if rng is None else rng, steps)
    (x, _, _), _ = jax.lax.scan(step, initial, (times[:-1], times[1:], keys))
    return jnp.where(given, cond_latents, x)

