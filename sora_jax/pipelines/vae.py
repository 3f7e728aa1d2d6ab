"""The video autoencoder as a finished model: build it from a config, load a trained run or
export, encode videos to normalized latents and back, reconstruct and score reconstructions.

    vae = load("assets/vae_tiny")                 # a training workdir or a `sora-jax export`
    latents = vae.encode(videos_uint8)            # [B, t, h, w, c], per-channel standardized
    videos = vae.decode(latents)                  # uint8 [B, T, H, W, 3]
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sora_jax import checkpoints
from sora_jax.data import video_io
from sora_jax.models.vae import VideoVAE


def build_model(model_config) -> VideoVAE:
    return VideoVAE.from_variant(model_config.variant, spatial=model_config.spatial_compression,
                                 temporal=model_config.temporal_compression,
                                 latent_channels=model_config.latent_channels, patch=model_config.patch,
                                 factorized=model_config.get("factorized", False))  # absent in older exports


def normalize_latents(latents, stats: dict):
    """Per-channel standardization with the VAE's stored statistics (what the DiT models)."""
    return (latents - np.asarray(stats["mean"], np.float32)) / np.asarray(stats["std"], np.float32)


def denormalize_latents(latents, stats: dict):
    return latents * np.asarray(stats["std"], np.float32) + np.asarray(stats["mean"], np.float32)


def _missing_vae(workdir, error: Exception) -> FileNotFoundError:
    return FileNotFoundError(f"{error}: train the VAE first, e.g. `sora-jax train "
                             f"--config=sora_jax/configs/vae.py:tiny --workdir={workdir}`")


def geometry(workdir) -> dict[str, int]:
    """{temporal, spatial, channels} of a trained VAE, read from its meta alone (no arrays)."""
    try:
        meta = checkpoints.read_run_meta(workdir)
    except FileNotFoundError as error:
        raise _missing_vae(workdir, error) from None
    if meta.get("task") != "vae":
        raise ValueError(f"{workdir} holds a {meta.get('task')!r} run, not a VAE")
    model = meta["config"]["model"]
    return {"temporal": int(model["temporal_compression"]), "spatial": int(model["spatial_compression"]),
            "channels": int(model["latent_channels"])}


def load_trained_vae(workdir) -> tuple[VideoVAE, dict, dict, dict]:
    """(model, EMA params, latent stats {mean, std} or {}, run config dict) of a finished VAE run
    (a training workdir, or a directory written by `sora-jax export`)."""
    try:
        params, meta, _ = checkpoints.load_params(workdir)
    except FileNotFoundError as error:
        raise _missing_vae(workdir, error) from None
    if meta.get("task") != "vae":
        raise ValueError(f"{workdir} holds a {meta.get('task')!r} run, not a VAE")
    config = ml_collections.ConfigDict(meta["config"])
    return build_model(config.model), params, meta.get("latent_stats", {}), meta["config"]


class Reconstructor:
    """Reconstructions of a VAE under any parameters (the trainer's, or a finished run's)."""

    def __init__(self, model: VideoVAE):
        self.model = model

    @functools.cached_property
    def _reconstruct(self):
        return jax.jit(lambda params, video: self.model.apply({"params": params}, video)[0])

    def reconstruct(self, params, video: np.ndarray) -> np.ndarray:
        """float videos in [-1, 1] [B, T, H, W, 3] -> their reconstructions, same range."""
        return np.asarray(self._reconstruct(params, jnp.asarray(video)))

    def reconstruct_clips(self, params, clips: list[dict]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(originals, reconstructions), uint8, of clips {"video": uint8 [T, H, W, 3]}, batched by shape."""
        by_shape: dict[tuple, list[np.ndarray]] = {}
        for clip in clips:
            by_shape.setdefault(clip["video"].shape, []).append(clip["video"])
        originals, recons = [], []
        for videos in by_shape.values():
            batch = np.stack(videos).astype(np.float32) / 127.5 - 1.0
            recons += list(video_io.as_uint8(self.reconstruct(params, batch)))
            originals += videos
        return originals, recons


@dataclasses.dataclass
class TrainedVae:
    """A finished VAE: model, parameters and latent statistics; encodes and decodes uint8 video."""

    model: VideoVAE
    params: dict
    latent_stats: dict
    config: dict

    @classmethod
    def load(cls, workdir) -> TrainedVae:
        return cls(*load_trained_vae(workdir))

    @functools.cached_property
    def _encode(self):
        return jax.jit(lambda p, v: self.model.apply({"params": p}, v, method=VideoVAE.encode_mean))

    @functools.cached_property
    def _decode(self):
        return jax.jit(lambda p, z: self.model.apply({"params": p}, z, method=VideoVAE.decode))

    def encode(self, videos: np.ndarray) -> np.ndarray:
        """uint8 videos [B, T, H, W, 3] -> normalized latents [B, t, h, w, c] (the VAE's mean)."""
        inputs = np.asarray(videos, np.float32) / 127.5 - 1.0
        return normalize_latents(np.asarray(self._encode(self.params, jnp.asarray(inputs))), self.latent_stats)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Normalized latents -> uint8 videos [B, T, H, W, 3]."""
        raw = denormalize_latents(np.asarray(latents), self.latent_stats)
        return video_io.as_uint8(np.asarray(self._decode(self.params, jnp.asarray(raw))))


def load(workdir: str | pathlib.Path) -> TrainedVae:
    return TrainedVae.load(workdir)


def reconstruct(coder, videos: np.ndarray, batch: int = 16) -> np.ndarray:
    """uint8 videos through `coder`'s encode then decode (a `TrainedVae`, or a T2V pipeline's
    latent), `batch` clips at a time: what a DiT in that latent can at best give back."""
    return np.concatenate([coder.decode(coder.encode(videos[i:i + batch])) for i in range(0, len(videos), batch)])
