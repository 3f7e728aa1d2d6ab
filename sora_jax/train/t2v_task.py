"""The text-to-video DiT as a task of the shared trainer: rectified flow over cached VAE latents.

The model itself (DiT + VAE + text encoder, encode / decode / sample / flow losses) is
`pipelines.t2v.T2VPipeline`; this task adds what only training needs. Batches come from a latent
cache (`latent_cache.py`: the VAE and a frozen text encoder run once, before training). Each step
draws a prompting task per clip (text->video, image->video, extensions, connect, random frames:
conditioning masks over latent frames), a logit-normal timestep shifted by token count, and drops
captions for classifier-free guidance. Validation: flow loss on fixed (clip, timestep, noise)
triples; sample videos for fixed validation prompts, scored for prompt adherence.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax import checkpoints
from sora_jax.data import pipeline, video_io
from sora_jax.diffusion import flow
from sora_jax.evaluation import prompt_adherence
from sora_jax.models import lora
from sora_jax.pipelines import adapters
from sora_jax.pipelines.t2v import T2VPipeline, text_inputs
from sora_jax.scaling import flops
from sora_jax.train import latent_cache, validate


class T2VTask:
    name = "t2v"

    def __init__(self, config, workdir: str | pathlib.Path, base: adapters.Base | None = None):
        self.config = config
        self.workdir = pathlib.Path(workdir)
        # A LoRA run's base (frozen DiT): the one `adopt_base` read, or read again and checked here.
        if adapters.enabled(config) and base is None:
            base = adapters.read_base(config.lora.base)
            adapters.check_fingerprint(config, base, "lora.base")
        self.base = base if adapters.enabled(config) else None
        self.pipeline = T2VPipeline(config)
        self.model = self.pipeline.model
        self.vae = self.pipeline.vae.model
        self.encoder = self.pipeline.encoder

    # --- data ----------------------------------------------------------------------------------
    def cache(self, split: str) -> latent_cache.LatentSource:
        if split == self.config.data.train_split and self.config.get("distill") and self.config.distill.pairs:
            return latent_cache.LatentSource(self.config.distill.pairs)  # a reflow student's (noise, sample) pairs
        limit = self.config.data.cache_limit or None
        root = pathlib.Path(self.config.data.latent_cache_dir or self.workdir / "latent_cache")
        build_count = self.config.data.get("cache_build_count", 0) if split == self.config.data.train_split else 0
        return latent_cache.ensure(root / split, self.config.vae_workdir, self.config.data,
                                   split, self.encoder, self.config.model.text_length, limit, build_count)

    def make_dataset(self, shard_multiple: int):
        return pipeline.make_dataset(self.config.data, seed=self.config.seed, shard_multiple=shard_multiple,
                                     source=self.cache(self.config.data.train_split))

    def prepare_batch(self, batch: dict) -> dict[str, np.ndarray]:
        prepared = {"latent": np.asarray(batch["latent"], np.float32)}
        if "noise" in batch:  # reflow pairs: the noise each latent was sampled from
            prepared["noise"] = np.asarray(batch["noise"], np.float32)
        if "actions" in batch and self.model.num_actions:  # a game's actions, one per latent frame
            prepared["actions"] = np.asarray(batch["actions"], np.int32)
        if self.encoder == "bytes":
            prepared.update(self.pipeline.encode_prompts(batch["caption"]))
        else:
            prepared.update({k: np.asarray(batch[k]) for k in ("text_tokens", "text_mask", "text_pooled")})
        self.model.check_latent_shape(prepared["latent"].shape)
        return prepared

    def tokens(self, batch: dict) -> int:
        return batch["latent"].shape[0] * self.model.tokens(batch["latent"].shape)

    def step_flops(self, batch: dict) -> float:
        """Analytic model FLOPs of one training step on this (global) batch (scaling/flops.py)."""
        shape = flops.DiTShape.from_config(self.config.model, self.vae.latent_channels)
        return flops.train_step_flops(shape, batch["latent"].shape[1:4], batch["latent"].shape[0])

    # --- parameters and loss -------------------------------------------------------------------
    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        p = self.model.patch
        latent = np.zeros((batch_size, 2 * p[0], 2 * p[1], 2 * p[2], self.vae.latent_channels), np.float32)
        return {"latent": latent, **self.pipeline.encode_prompts([""] * batch_size)}

    def init(self, rng: jax.Array, batch: dict, model=None) -> dict:
        """The DiT's parameters (or `model`'s: the same DiT at another width, for μP's shapes)."""
        latent = batch["latent"]
        t = jnp.zeros(latent.shape[:2])
        return (model or self.model).init(rng, latent, t, text_inputs(batch, self.encoder))["params"]

    def partition(self, params) -> tuple[dict, dict]:
        """(trained, frozen): for a LoRA run the adapters, and the base's weights placed like the
        freshly initialized base part; otherwise everything is trained."""
        if self.base is None:
            return params, {}
        fresh, adapter_params = lora.split(params)
        spec = self.model.lora
        unmatched = [pattern for pattern in spec.targets if not lora.layers(adapter_params, pattern)]
        if unmatched:
            names = sorted({"/".join(name.split("/")[1:]) or name for name in lora.layers(fresh, "*")})
            raise validate.ConfigError(f"lora.targets {unmatched} match no layer of this DiT; its layers (under each "
                                       f"block_i/): {', '.join(names)}")
        loaded, report = checkpoints.partial_load(jax.device_get(fresh), self.base.params)
        if report["fresh"] or report["ignored"]:
            raise ValueError(f"lora.base={self.base.path!r} does not fit this DiT: missing or reshaped "
                             f"{report['fresh'][:5]}, extra {report['ignored'][:5]}")
        frozen = jax.tree.map(lambda value, like: jax.device_put(value, like.sharding), loaded, fresh)
        return adapter_params, frozen

    def loss(self, params, batch, rng):
        x0 = batch["latent"]
        b, frames = x0.shape[:2]
        task_rng, time_rng, noise_rng, drop_rng = jax.random.split(rng, 4)
        task, cond_mask = flow.task_masks(task_rng, b, frames, dict(self.config.flow.tasks))
        shift = self.pipeline.shift(x0.shape)
        if self.config.flow.get("grid_steps", 0):  # a few-step student: only the sampler's own t
            t = flow.grid_timesteps(time_rng, b, self.config.flow.grid_steps, shift)
        else:
            t = flow.sample_timesteps(time_rng, b, self.config.flow.logit_mean, self.config.flow.logit_std, shift)
        context_noise = self.config.flow.get("context_noise", 0.0)
        cond_t = flow.context_timesteps(jax.random.fold_in(rng, 1), b, context_noise) if context_noise else 0.0
        t_frames = flow.frame_timesteps(t, cond_mask, cond_t)
        noise = batch["noise"] if "noise" in batch else jax.random.normal(noise_rng, x0.shape, x0.dtype)
        keep = ~flow.drop_text(drop_rng, b, self.config.flow.text_dropout)
        if "actions" in batch:  # dropped alone too: with no actions given the model picks a policy itself
            kept = ~flow.drop_text(jax.random.fold_in(drop_rng, 1), b, self.config.flow.get("action_dropout", 0.0))
            batch = {**batch, "actions": jnp.where(kept[:, None], batch["actions"], 0)}
        v = self.model.apply({"params": params}, flow.noise_latents(x0, noise, t_frames), t_frames,
                             text_inputs(batch, self.encoder, keep))
        loss, _ = flow.flow_loss(v, x0, noise, cond_mask)
        return loss, {"conditioned_frames": jnp.mean(cond_mask.astype(jnp.float32))}

    # --- evaluation ----------------------------------------------------------------------------
    def validation_clips(self, count: int) -> list[dict]:
        source = self.cache(self.config.data.eval_split)
        return [source[i] for i in range(min(count, len(source)))]

    def evaluate(self, params, clips: list[dict]) -> dict[str, float]:
        return self.pipeline.validation_loss(params, clips, self.config.eval.get("timestep_quantiles", 0))

    def write_samples(self, params, clips: list[dict], out_dir: pathlib.Path, writer=None, step: int = 0) -> dict:
        """For each validation prompt: the VAE's reconstruction of the real clip | a sample, as
        MP4 and GIF, the prompt in a .txt; returns prompt-adherence scores of the samples."""
        out_dir.mkdir(parents=True, exist_ok=True)
        scores = []
        for number, clip in enumerate(clips):
            latents = self.pipeline.sample_latents(params, [clip["caption"]], clip["latent"].shape, seed=number)
            sample = self.pipeline.decode(latents)[0]
            reference = self.pipeline.decode(clip["latent"][None])[0]
            pair = np.concatenate([reference, np.full_like(reference[:, :, :2], 255), sample], axis=2)
            scale = max(1, 128 // sample.shape[1])
            for suffix in (".mp4", ".gif"):
                video_io.write_video(out_dir / f"sample_{number:02d}{suffix}", pair, scale=scale)
            (out_dir / f"sample_{number:02d}.txt").write_text(clip["caption"] + "\n")
            scores.append(prompt_adherence.adherence(sample, clip["caption"]))
            if writer is not None:
                writer.video(f"sample/{number}", step, pair)
        return prompt_adherence.summarize(scores)

    def training_shape(self) -> dict:
        """The largest frame size and the longest clip (in latent frames) of the training data:
        what sampling defaults to. PhysWorld's from its builder config, a folder's from its cache."""
        dataset = self.config.data.dataset
        from sora_jax.data import worlds

        if worlds.is_world(dataset):
            size, frames = worlds.variant(dataset).largest_clip()
            return {"size": list(size), "latent_frames": 1 + (frames - 1) // self.vae.temporal}
        shapes = self.cache(self.config.data.train_split).shapes()
        height, width = max(((int(h), int(w)) for _, h, w in shapes), key=lambda hw: hw[0] * hw[1])
        return {"size": [height * self.vae.spatial, width * self.vae.spatial],
                "latent_frames": int(max(shape[0] for shape in shapes))}

    def finalize(self, params) -> dict:
        """Stored with the final checkpoint: the latent statistics, the VAE, and the training shape."""
        del params
        meta = {"latent_stats": self.pipeline.latent_stats, "vae_workdir": str(self.config.vae_workdir),
                "training_shape": self.training_shape()}
        if self.base is not None:
            meta["lora_base"] = {"path": self.base.path, "step": self.base.step, "fingerprint": self.base.fingerprint}
        return meta
