"""The trained text-to-video model as one object: DiT + VAE + latent statistics + text encoder.

    pipeline, params, meta, step = load("runs/t2v_tiny")       # a workdir or a `sora-jax export`
    latents = pipeline.sample_latents(params, ["a red ball"], (5, 8, 14, 16))
    videos = pipeline.decode(latents)                          # uint8 [B, T, H, W, 3]

DiT parameters stay an argument of every method, so the trainer (whose task wraps this object)
and a finished run share one code path. Sampling follows rectified flow with per-frame timesteps
(`diffusion/`): given latent frames (`cond_mask`) are held at t = 0.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sora_jax import checkpoints
from sora_jax.diffusion import flow, samplers
from sora_jax.models import text as text_lib
from sora_jax.models.dit import DiT
from sora_jax.pipelines import adapters
from sora_jax.pipelines import vae as vae_pipeline


def text_inputs(batch: dict, encoder: str, keep=None) -> dict:
    """The DiT's `text` argument from a prepared batch."""
    if encoder == "bytes":
        inputs = {"ids": batch["text_ids"], "mask": batch["text_mask"]}
    else:
        inputs = {"tokens": batch["text_tokens"], "mask": batch["text_mask"], "pooled": batch["text_pooled"]}
    if "actions" in batch:  # a game's per-latent-frame actions (models/dit.py)
        inputs["actions"] = batch["actions"]
    if keep is not None:
        inputs["keep"] = keep
    return inputs


def noise_key(*seed: int) -> jax.Array:
    """PRNGKey(seed[0]) folded with the rest: the fixed noise of one validation triple."""
    key = jax.random.PRNGKey(seed[0])
    for extra in seed[1:]:
        key = jax.random.fold_in(key, extra)
    return key


class T2VPipeline:
    """The model of a text-to-video run (`config`: its model, flow, sample and vae_workdir fields)."""

    def __init__(self, config):
        self.config = config
        self.vae = vae_pipeline.TrainedVae.load(config.vae_workdir)
        self.model = DiT.from_config(config.model, latent_channels=self.vae.model.latent_channels,
                                     lora_config=config.get("lora"))
        self.encoder = config.model.text_encoder
        self._frozen = None  # the frozen text encoder, loaded when prompts need encoding

    @property
    def latent_stats(self) -> dict:
        return self.vae.latent_stats

    # --- text ----------------------------------------------------------------------------------
    def encode_prompts(self, captions) -> dict[str, np.ndarray]:
        """Captions -> the text fields of a batch (`text_ids` / `text_tokens`, `text_mask`, ...)."""
        if self.encoder == "bytes":
            ids, mask = text_lib.byte_tokenize(captions, self.config.model.text_length)
            return {"text_ids": ids, "text_mask": mask}
        if self._frozen is None:
            self._frozen = text_lib.make_frozen_encoder(self.encoder, self.config.model.text_length)
        embedded = self._frozen.encode(list(captions))
        return {"text_tokens": embedded.tokens, "text_mask": embedded.mask, "text_pooled": embedded.pooled}

    # --- latents -------------------------------------------------------------------------------
    def encode(self, videos: np.ndarray) -> np.ndarray:
        """uint8 videos [B, T, H, W, 3] -> normalized latents [B, t, h, w, c] (the VAE's mean)."""
        return self.vae.encode(videos)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Normalized latents -> uint8 videos [B, T, H, W, 3]."""
        return self.vae.decode(latents)

    def shift(self, latent_shape) -> float:
        return flow.configured_shift(self.config.flow, self.model.tokens(latent_shape))

    def sampling_shift(self, latent_shape) -> float:
        """The sampler's grid shift: `sample.shift` when > 0 (a few-step student asked more often at
        high t, where the layout is decided), else the training shift."""
        return float(self.config.sample.get("shift", 0.0) or self.shift(latent_shape))

    # --- flow loss -----------------------------------------------------------------------------
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

    def validation_loss(self, params, clips: list[dict], quantiles: int = 0) -> dict[str, float]:
        """Text->video flow loss on fixed (clip, timestep, noise) triples, the same for every model
        (common random numbers). `quantiles` = 0: clip i at t_i on a uniform grid, noise from seed
        i. Q > 0: every clip at t = (q + 0.5) / Q, noise from seed (i, q), plus the per-timestep
        curve `val_loss_t{q}`. Clips: {"latent": [t, h, w, c], "caption": str}."""
        losses = self.validation_losses(params, clips, quantiles)
        results = {"val_loss": float(np.mean(losses))}
        if quantiles:
            per_t = losses.reshape(len(clips), quantiles).mean(0)
            results.update({f"val_loss_t{q}": float(value) for q, value in enumerate(per_t)})
        return results

    def validation_losses(self, params, clips: list[dict], quantiles: int = 0) -> np.ndarray:
        """The loss of every triple of `validation_loss`, clip-major ([clips x quantiles] when Q > 0):
        per-triple values for paired comparisons of two models."""
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
                noise = np.stack([np.asarray(jax.random.normal(noise_key(*triples[n][2]), shape)) for n in chunk])
                prompts = self.encode_prompts([clips[triples[n][0]]["caption"] for n in chunk])
                if self.model.num_actions and "actions" in clips[0]:  # the clips' actions beside their captions
                    prompts["actions"] = np.stack([clips[triples[n][0]]["actions"] for n in chunk])
                text = text_inputs(prompts, self.encoder)
                losses[chunk] = self.flow_losses(params, latent, t, noise, text)
        return losses

    # --- sampling ------------------------------------------------------------------------------
    def sample_latents(self, params, captions, latent_shape, seed: int = 0, steps: int | None = None,
                       guidance: float | None = None, cond_latents=None, cond_mask=None, start: float = 1.0,
                       noise=None, method: str = "euler", shift: float | None = None, actions=None,
                       context_t: float | None = None, eta: float = 1.0, eta_t_max: float = 1.0) -> np.ndarray:
        """Samples [B, t, h, w, c] (normalized latents) for captions and one latent shape; `noise`
        is the starting point (x at t = start), drawn from `seed` when None; `shift` overrides the
        timestep grid's shift (default: `self.sampling_shift`). `actions` (int [B, t], a model
        with `num_actions`): each latent frame's action + 1, 0 for none (guidance drops them with
        the caption). `context_t`: the t given frames are shown at (default `self.context_t`).
        `eta`: the `ddim` sampler's share of fresh noise (its noise drawn from `seed` as well), on
        the steps that start at t <= `eta_t_max`."""
        steps = steps or self.config.sample.steps
        guidance = self.config.sample.guidance if guidance is None else guidance
        text = self.encode_prompts(list(captions))
        if actions is not None:
            if not self.model.num_actions:
                raise ValueError("this model takes no actions (model.num_actions = 0)")
            text["actions"] = np.asarray(actions, np.int32)
        shape = (len(captions), *latent_shape)
        if noise is None:
            noise = jax.random.normal(jax.random.PRNGKey(seed), shape)
        shift = float(shift or self.sampling_shift(shape))
        context_t = self.context_t if context_t is None else context_t
        eta, eta_t_max = (float(eta), float(eta_t_max)) if method == "ddim" else (0.0, 1.0)
        rng = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # the ddim sampler's fresh noise
        return np.asarray(self._sampler(method, steps, float(guidance), shift, float(start), float(context_t), eta,
                                        eta_t_max)(params, noise, text, cond_latents, cond_mask, rng))

    @property
    def context_t(self) -> float:
        """The t given frames are shown at when sampling: half the training maximum of a run
        trained on noised context (`flow.context_noise`), 0 (clean) otherwise."""
        return 0.5 * float(self.config.flow.get("context_noise", 0.0))

    @functools.lru_cache(maxsize=16)  # noqa: B019 (compiled samplers live as long as the pipeline)
    def _sampler(self, method: str, steps: int, guidance: float, shift: float, start: float, context_t: float,
                 eta: float, eta_t_max: float):
        def sample(params, noise, text, cond_latents, cond_mask, rng):
            def velocity(x, t_frames, keep):
                repeat = x.shape[0] // noise.shape[0]
                inputs = {k: jnp.concatenate([v] * repeat) for k, v in text.items()}
                return self.model.apply({"params": params}, x, t_frames, text_inputs(inputs, self.encoder, keep))

            return samplers.sample(velocity, noise, method=method, steps=steps, guidance=guidance, shift=shift,
                                   cond_latents=cond_latents, cond_mask=cond_mask, start=start, cond_t=context_t,
                                   eta=eta, eta_t_max=eta_t_max, rng=rng)

        return jax.jit(sample)


def load(workdir: str | pathlib.Path, adapter: str | pathlib.Path | None = None
         ) -> tuple[T2VPipeline, dict, dict, int]:
    """(pipeline, EMA params, meta, step) of a text-to-video run (workdir or export); with
    `adapter` (a LoRA run), that run's adapters on `workdir`'s DiT, and the LoRA run's meta and step."""
    if adapter:
        config, params, meta, step = adapters.load_adapted(str(workdir), str(adapter))
        return T2VPipeline(config), params, meta, step
    params, meta, step = checkpoints.load_params(workdir)
    if meta.get("task") != "t2v":
        raise ValueError(f"{workdir} holds a {meta.get('task')!r} run, not a text-to-video DiT")
    return T2VPipeline(ml_collections.ConfigDict(meta["config"])), params, meta, step
