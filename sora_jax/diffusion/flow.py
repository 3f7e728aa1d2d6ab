"""Rectified flow with a timestep per latent frame.

Conventions (DESIGN.md): `x_t = (1 - t)·x0 + t·noise`, the model predicts `v = noise - x0`,
`t = 1` is pure noise. Timesteps are `[B, t]`, one per latent frame. A frame given as a condition
has `t = 0`: it is never noised and is excluded from the loss. Every prompting mode (text→video,
image→video, extension, connecting, ...) is one conditioning mask over latent frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

TASKS = ("t2v", "t2i", "i2v", "extend_forward", "extend_backward", "connect", "random_frames")


def timestep_shift(num_tokens: int, reference_tokens: int = 256, max_shift: float = 4.0) -> float:
    """SD3's resolution shift: more tokens keep more signal at a given t, so push t up by
    `sqrt(tokens / reference)`, clipped to [1, max_shift]."""
    return float(min(max(((num_tokens / reference_tokens) ** 0.5), 1.0), max_shift))


def configured_shift(flow_config, num_tokens: int) -> float:
    """The timestep shift a run trains and samples with: `flow.shift` if set (> 0), else SD3's
    token-count rule if `flow.timestep_shift`, else none (1)."""
    if flow_config.get("shift", 0.0) > 0:
        return float(flow_config.shift)
    return timestep_shift(num_tokens) if flow_config.timestep_shift else 1.0


def shift_timesteps(t: jax.Array, shift: float) -> jax.Array:
    """Maps t in [0, 1] to shift·t / (1 + (shift - 1)·t): monotone, fixes 0 and 1."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_timesteps(rng: jax.Array, batch: int, mean: float = 0.0, std: float = 1.0, shift: float = 1.0) -> jax.Array:
    """Logit-normal training timesteps `[B]` (SD3), shifted by token count."""
    t = jax.nn.sigmoid(mean + std * jax.random.normal(rng, (batch,)))
    return shift_timesteps(t, shift)


def timestep_grid(steps: int, shift: float = 1.0, start: float = 1.0) -> jax.Array:
    """`steps + 1` times from `start` down to 0, uniform then shifted (as in training): the times
    a `steps`-step sampler walks (`samplers.py`)."""
    return shift_timesteps(jnp.linspace(start, 0.0, steps + 1), shift)


def grid_timesteps(rng: jax.Array, batch: int, steps: int, shift: float = 1.0) -> jax.Array:
    """Training timesteps `[B]` drawn uniformly from the t at which a `steps`-step Euler sampler
    calls the model (`timestep_grid` without its final 0): a few-step student trained only where
    it will be asked (`flow.grid_steps`)."""
    return timestep_grid(steps, shift)[:-1][jax.random.randint(rng, (batch,), 0, steps)]


def task_masks(rng: jax.Array, batch: int, latent_frames: int, probabilities: dict[str, float]) -> tuple[jax.Array,
                                                                                                         jax.Array]:
    """Draws a task per sample and its conditioning mask.

    Returns (task index [B] into TASKS, cond_mask bool [B, t]: True = frame given as condition).
    A single latent frame (an image) is always text→image whatever the draw.
    """
    unknown = set(probabilities) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; valid: {TASKS}")
    weights = [float(probabilities.get(name, 0.0)) for name in TASKS]
    if sum(weights) <= 0 or min(weights) < 0:
        raise ValueError(f"task probabilities must be non-negative with a positive sum, got {probabilities}")
    weights = jnp.array(weights, jnp.float32)
    task_rng, length_rng, random_rng = jax.random.split(rng, 3)
    task = jax.random.choice(task_rng, len(TASKS), (batch,), p=weights / weights.sum())
    frames = jnp.arange(latent_frames)[None, :]
    # Extensions give 1 .. t-1 frames; random_frames gives each frame with probability 1/2.
    given = jax.random.randint(length_rng, (batch, 1), 1, max(latent_frames, 2))
    masks = jnp.stack([
        jnp.zeros((batch, latent_frames), bool),  # t2v
        jnp.zeros((batch, latent_frames), bool),  # t2i
        jnp.broadcast_to(frames == 0, (batch, latent_frames)),  # i2v
        frames < given,  # extend_forward: the first frames are given
        frames >= latent_frames - given,  # extend_backward: the last frames are given
        jnp.broadcast_to((frames == 0) | (frames == latent_frames - 1), (batch, latent_frames)),  # connect
        jax.random.bernoulli(random_rng, 0.5, (batch, latent_frames)),  # random_frames
    ])
    mask = masks[task, jnp.arange(batch)]
    # At least one frame must be generated, and an image is generated from text alone.
    mask = mask & ~jnp.all(mask, axis=1, keepdims=True)
    if latent_frames == 1:
        mask = jnp.zeros_like(mask)
        task = jnp.full_like(task, TASKS.index("t2i"))
    return task, mask


def frame_timesteps(t: jax.Array, cond_mask: jax.Array, cond_t: jax.Array | float = 0.0) -> jax.Array:
    """Per-sample t `[B]` -> per-frame `[B, t]`; conditioning frames get `cond_t` (scalar or `[B]`):
    0 for clean context, a little above it for noised context (`context_timesteps`)."""
    cond_t = jnp.asarray(cond_t, t.dtype)
    return jnp.where(cond_mask, cond_t[:, None] if cond_t.ndim else cond_t, t[:, None])


def context_timesteps(rng: jax.Array, batch: int, context_noise: float) -> jax.Array:
    """Noised context: each sample's conditioning frames at t ~ U(0, `context_noise`) `[B]`, so the
    model learns to take its context as slightly wrong — as a chunk's context is when an earlier
    chunk generated it — rather than copying every error forward (noise augmentation of the
    condition, as cascaded and autoregressive video models do). Sampling holds context at half
    the training maximum (`T2VPipeline.context_t`)."""
    return jax.random.uniform(rng, (batch,)) * context_noise


def noise_latents(x0: jax.Array, noise: jax.Array, t_frames: jax.Array) -> jax.Array:
    """x_t for latents `[B, t, h, w, c]` and per-frame timesteps `[B, t]`."""
    t = t_frames[:, :, None, None, None].astype(x0.dtype)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: jax.Array, noise: jax.Array) -> jax.Array:
    return noise - x0


def flow_loss(v_pred: jax.Array, x0: jax.Array, noise: jax.Array, cond_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean squared velocity error over generated frames only.

    Returns (scalar loss, per-sample loss [B]); conditioning frames contribute nothing.
    """
    per_frame = jnp.mean((v_pred.astype(jnp.float32) - velocity_target(x0, noise).astype(jnp.float32)) ** 2,
                         axis=(2, 3, 4))
    weight = (~cond_mask).astype(jnp.float32)
    per_sample = jnp.sum(per_frame * weight, axis=1) / jnp.maximum(jnp.sum(weight, axis=1), 1.0)
    return jnp.mean(per_sample), per_sample


def drop_text(rng: jax.Array, batch: int, probability: float) -> jax.Array:
    """bool [B]: True where the caption is replaced by the null caption (classifier-free guidance)."""
    return jax.random.bernoulli(rng, probability, (batch,))
