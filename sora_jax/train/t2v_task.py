"""The text-to-video DiT as a task of the shared trainer: rectified flow over cached VAE latents.

Batches come from a latent cache (`latent_cache.py`: the VAE and a frozen text encoder run once,
before training). Each step draws a prompting task per clip (text->video, image->video,
extensions, connect, random frames: conditioning masks over latent frames), a logit-normal
timestep shifted by token count, and drops captions for classifier-free guidance.
Validation: flow loss on fixed (clip, timestep, noise) triples; sample videos for fixed
validation prompts, scored for prompt adherence (prompted colors present and moving).
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.data import pipeline, video_io
from sora_jax.diffusion import flow, samplers
from sora_jax.evaluation import prompt_adherence
from sora_jax.models import text as text_lib
from sora_jax.models.dit import DiT
from sora_jax.train import latent_cache


def text_inputs(batch: dict, encoder: str, keep=None) -> dict:
    """The DiT's `text` argument from a prepared batch."""
    if encoder == "bytes":
        inputs = {"ids": batch["text_ids"], "mask": batch["text_mask"]}
    else:
        inputs = {"tokens": batch["text_tokens"], "mask": batch["text_mask"], "pooled": batch["text_pooled"]}
    if keep is not None:
        inputs["keep"] = keep
    return inputs


def _noise_key(*seed: int) -> jax.Array:
    """PRNGKey(seed[0]) folded with the rest: the fixed noise of one validation triple."""
    key = jax.random.PRNGKey(seed[0])
    for extra in seed[1:]:
        key = jax.random.fold_in(key, extra)
    return key


class T2VTask:
    name = "t2v"

    def __init__(self, config, workdir: str | pathlib.Path):
        from sora_jax.train.vae_task import load_trained_vae

        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.vae, self.vae_params, self.latent_stats, _ = load_trained_vae(config.vae_workdir)
        self.model = DiT.from_config(config.model, latent_channels=self.vae.latent_channels)
        self.encoder = config.model.text_encoder
        self._frozen = None  # the frozen text encoder, loaded when prompts need encoding
        unknown = set(config.flow.tasks) - set(flow.TASKS)
        if unknown:
            raise ValueError(f"flow.tasks has unknown tasks {sorted(unknown)}; valid: {', '.join(flow.TASKS)}")

    # --- data ----------------------------------------------------------------------------------
    def cache(self, split: str) -> latent_cache.LatentSource:
        limit = self.config.data.cache_limit or None
        root = pathlib.Path(self.config.data.latent_cache_dir or self.workdir / "latent_cache")
        return latent_cache.ensure(root / split, self.config.vae_workdir, self.config.data,
                                   split, self.encoder, self.config.model.text_length, limit)

    def make_dataset(self, shard_multiple: int):
        return pipeline.make_dataset(self.config.data, seed=self.config.seed, shard_multiple=shard_multiple,
                                     source=self.cache(self.config.data.train_split))

    def encode_prompts(self, captions) -> dict[str, np.ndarray]:
        """Captions -> the text fields of a batch (`text_ids` / `text_tokens`, `text_mask`, ...)."""
        if self.encoder == "bytes":
            ids, mask = text_lib.byte_tokenize(captions, self.config.model.text_length)
            return {"text_ids": ids, "text_mask": mask}
        if self._frozen is None:
            self._frozen = text_lib.make_frozen_encoder(self.encoder, self.config.model.text_length)
        embedded = self._frozen.encode(list(captions))
        return {"text_tokens": embedded.tokens, "text_mask": embedded.mask, "text_pooled": embedded.pooled}

    def prepare_batch(self, batch: dict) -> dict[str, np.ndarray]:
        prepared = {"latent": np.asarray(batch["latent"], np.float32)}
        if self.encoder == "bytes":
            prepared.update(self.encode_prompts(batch["caption"]))
        else:
            prepared.update({k: np.asarray(batch[k]) for k in ("text_tokens", "text_mask", "text_pooled")})
        self.model.check_latent_shape(prepared["latent"].shape)
        return prepared

    def tokens(self, batch: dict) -> int:
        return batch["latent"].shape[0] * self.model.tokens(batch["latent"].shape)

    def step_flops(self, batch: dict) -> float:
        """Analytic model FLOPs of one training step on this (global) batch (scaling/flops.py)."""
        from sora_jax.scaling import flops

        shape = flops.DiTShape.from_config(self.config.model, self.vae.latent_channels)
        return flops.train_step_flops(shape, batch["latent"].shape[1:4], batch["latent"].shape[0])

    # --- parameters and loss -------------------------------------------------------------------
    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        p = self.model.patch
        latent = np.zeros((batch_size, 2 * p[0], 2 * p[1], 2 * p[2], self.vae.latent_channels), np.float32)
        return {"latent": latent, **self.encode_prompts([""] * batch_size)}

    def init(self, rng: jax.Array, batch: dict) -> dict:
        latent = batch["latent"]
        t = jnp.zeros(latent.shape[:2])
        return self.model.init(rng, latent, t, text_inputs(batch, self.encoder))["params"]

    def shift(self, latent_shape) -> float:
        return flow.timestep_shift(self.model.tokens(latent_shape)) if self.config.flow.timestep_shift else 1.0

    def loss(self, params, batch, rng):
        x0 = batch["latent"]
        b, frames = x0.shape[:2]
        task_rng, time_rng, noise_rng, drop_rng = jax.random.split(rng, 4)
        task, cond_mask = flow.task_masks(task_rng, b, frames, dict(self.config.flow.tasks))
        t = flow.sample_timesteps(time_rng, b, self.config.flow.logit_mean, self.config.flow.logit_std,
                                  self.shift(x0.shape))
        t_frames = flow.frame_timesteps(t, cond_mask)
        noise = jax.random.normal(noise_rng, x0.shape, x0.dtype)
        keep = ~flow.drop_text(drop_rng, b, self.config.flow.text_dropout)
        v = self.model.apply({"params": params}, flow.noise_latents(x0, noise, t_frames), t_frames,
                             text_inputs(batch, self.encoder, keep))
        loss, _ = flow.flow_loss(v, x0, noise, cond_mask)
        return loss, {"conditioned_frames": jnp.mean(cond_mask.astype(jnp.float32))}

    # --- evaluation ----------------------------------------------------------------------------
    def validation_clips(self, count: int) -> list[dict]:
        source = self.cache(self.config.data.eval_split)
        return [source[i] for i in range(min(count, len(source)))]

    @functools.cached_property
    def _validation_loss(self):
        def per_sample(params, latent, t, noise, text):
            t_frames = jnp.broadcast_to(t[:, None], latent.shape[:2])
            v = self.model.apply({"params": params}, flow.noise_latents(latent, noise, t_frames), t_frames, text)
            return flow.flow_loss(v, latent, noise, jnp.zeros(latent.shape[:2], bool))[1]

        return jax.jit(per_sample)

    def flow_losses(self, params, latents, t, noise, text: dict) -> np.ndarray:
        """Per-sample text->video flow loss of latents [B, ...] at timesteps t [B] with given noise."""
        return np.asarray(self._validation_loss(params, jnp.asarray(latents), jnp.asarray(t), jnp.asarray(noise), text))

    def evaluate(self, params, clips: list[dict]) -> dict[str, float]:
        """Text->video flow loss on fixed (clip, timestep, noise) triples, the same for every model
        (common random numbers). `eval.timestep_quantiles` = 0: clip i at t_i on a uniform grid,
        noise from seed i. Q > 0: every clip at t = (q + 0.5) / Q, noise from seed (i, q), plus the
        per-timestep curve `val_loss_t{q}`."""
        quantiles = self.config.eval.get("timestep_quantiles", 0)
        if quantiles:
            triples = [(i, (q + 0.5) / quantiles, (i, q)) for i in range(len(clips)) for q in range(quantiles)]
        else:
            grid = np.linspace(0.05, 0.95, len(clips))
            triples = [(i, grid[i], (i,)) for i in range(len(clips))]
        by_shape: dict[tuple, list[int]] = {}
        for number, (i, _, _) in enumerate(triples):
            by_shape.setdefault(clips[i]["latent"].shape, []).append(number)
        losses = np.zeros(len(triples))
        for shape, members in by_shape.items():
            for start in range(0, len(members), 64):
                chunk = members[start:start + 64]
                latent = np.stack([clips[triples[n][0]]["latent"] for n in chunk])
                t = np.array([triples[n][1] for n in chunk], np.float32)
                noise = np.stack([np.asarray(jax.random.normal(_noise_key(*triples[n][2]), shape)) for n in chunk])
                text = text_inputs(self.encode_prompts([clips[triples[n][0]]["caption"] for n in chunk]), self.encoder)
                losses[chunk] = self.flow_losses(params, latent, t, noise, text)
        results = {"val_loss": float(np.mean(losses))}
        if quantiles:
            per_t = losses.reshape(len(clips), quantiles).mean(0)
            results.update({f"val_loss_t{q}": float(value) for q, value in enumerate(per_t)})
        return results

    def sample_latents(self, params, captions, latent_shape, seed: int = 0, steps: int | None = None,
                       guidance: float | None = None, cond_latents=None, cond_mask=None, start: float = 1.0,
                       noise=None, method: str = "euler") -> np.ndarray:
        """Samples [B, t, h, w, c] (normalized latents) for captions and one latent shape; `noise`
        is the starting point (x at t = start), drawn from `seed` when None."""
        steps = steps or self.config.sample.steps
        guidance = self.config.sample.guidance if guidance is None else guidance
        text = self.encode_prompts(list(captions))
        shape = (len(captions), *latent_shape)
        if noise is None:
            noise = jax.random.normal(jax.random.PRNGKey(seed), shape)
        return np.asarray(self._sampler(method, steps, float(guidance), self.shift(shape), float(start))(
            params, noise, text, cond_latents, cond_mask))

    @functools.lru_cache(maxsize=16)
    def _sampler(self, method: str, steps: int, guidance: float, shift: float, start: float):
        def sample(params, noise, text, cond_latents, cond_mask):
            def velocity(x, t_frames, keep):
                repeat = x.shape[0] // noise.shape[0]
                inputs = {k: jnp.concatenate([v] * repeat) for k, v in text.items()}
                return self.model.apply({"params": params}, x, t_frames, text_inputs(inputs, self.encoder, keep))

            return samplers.sample(velocity, noise, method=method, steps=steps, guidance=guidance, shift=shift,
                                   cond_latents=cond_latents, cond_mask=cond_mask, start=start)

        return jax.jit(sample)

    def encode(self, videos: np.ndarray) -> np.ndarray:
        """uint8 videos [B, T, H, W, 3] -> normalized latents [B, t, h, w, c] (the VAE's mean)."""
        from sora_jax.train.vae_task import normalize_latents

        inputs = np.asarray(videos, np.float32) / 127.5 - 1.0
        return normalize_latents(np.asarray(self._encode(self.vae_params, jnp.asarray(inputs))), self.latent_stats)

    @functools.cached_property
    def _encode(self):
        from sora_jax.models.vae import VideoVAE

        return jax.jit(lambda p, v: self.vae.apply({"params": p}, v, method=VideoVAE.encode_mean))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Normalized latents -> uint8 videos [B, T, H, W, 3]."""
        from sora_jax.train.vae_task import denormalize_latents

        raw = denormalize_latents(np.asarray(latents), self.latent_stats)
        videos = self._decode(self.vae_params, jnp.asarray(raw))
        return video_io.as_uint8(np.asarray(videos))

    @functools.cached_property
    def _decode(self):
        from sora_jax.models.vae import VideoVAE

        return jax.jit(lambda p, z: self.vae.apply({"params": p}, z, method=VideoVAE.decode))

    def write_samples(self, params, clips: list[dict], out_dir: pathlib.Path, writer=None, step: int = 0) -> dict:
        """For each validation prompt: the VAE's reconstruction of the real clip | a sample, as
        MP4 and GIF, the prompt in a .txt; returns prompt-adherence scores of the samples."""
        out_dir.mkdir(parents=True, exist_ok=True)
        scores = []
        for number, clip in enumerate(clips):
            sample = self.decode(self.sample_latents(params, [clip["caption"]], clip["latent"].shape, seed=number))[0]
            reference = self.decode(clip["latent"][None])[0]
            pair = np.concatenate([reference, np.full_like(reference[:, :, :2], 255), sample], axis=2)
            scale = max(1, 128 // sample.shape[1])
            for suffix in (".mp4", ".gif"):
                video_io.write_video(out_dir / f"sample_{number:02d}{suffix}", pair, scale=scale)
            (out_dir / f"sample_{number:02d}.txt").write_text(clip["caption"] + "\n")
            scores.append(prompt_adherence.adherence(sample, clip["caption"]))
            if writer is not None:
                writer.video(f"sample/{number}", step, pair)
        return prompt_adherence.summarize(scores)

    def finalize(self, params) -> dict:
        del params
        return {"latent_stats": self.latent_stats, "vae_workdir": str(self.config.vae_workdir)}
