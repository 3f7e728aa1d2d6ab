"""Latents and text embeddings computed once, so a DiT training step runs neither the VAE nor a
frozen text encoder.

    source = latent_cache.ensure(directory, vae_workdir, data_config, "train", text_encoder="minilm")
    source[i]  # {"latent": float32 [t, h, w, c] (normalized), "caption": str, "text_*": ...}

One directory per split: `latents.npy` (every clip's posterior mean, flattened and concatenated,
normalized with the VAE's stored per-channel statistics), `index.json` (shapes, offsets,
captions, and a fingerprint of what produced it), and for a frozen text encoder
`text_tokens.npy` (float16 [N, L, D]), `text_mask.npy`, `text_pooled.npy`. A cache whose
fingerprint (VAE run and step, dataset, split, encoder) differs is rebuilt; writes go to a
temporary directory renamed into place, so a killed build leaves nothing half-written.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import jax
import numpy as np

from sora_jax.data import pipeline
from sora_jax.models import text as text_lib
from sora_jax.models.vae import VideoVAE

VERSION = 1


class LatentSource:
    """Random access over a built cache; `shapes()` gives latent (t, h, w) for batching."""

    def __init__(self, directory: str | pathlib.Path):
        self.directory = pathlib.Path(directory)
        self.index = json.loads((self.directory / "index.json").read_text())
        self.latents = np.load(self.directory / "latents.npy", mmap_mode="r")
        self.captions = self.index["captions"]
        self._shapes = np.array(self.index["shapes"], np.int64)
        self._offsets = np.array(self.index["offsets"], np.int64)
        self.text = {}
        for key in ("text_tokens", "text_mask", "text_pooled"):
            path = self.directory / f"{key}.npy"
            if path.exists():
                self.text[key] = np.load(path, mmap_mode="r")
        self.batch_keys = ("latent", *self.text)

    @property
    def fingerprint(self) -> dict:
        return self.index["fingerprint"]

    @property
    def latent_stats(self) -> dict:
        return self.index["latent_stats"]

    def __len__(self) -> int:
        return len(self.captions)

    def shapes(self) -> np.ndarray:
        return self._shapes[:, :3]

    def report(self) -> dict | None:
        """The user folder's scan report (usable, skipped files and why) the cache was built from."""
        return self.index.get("source_report")

    def __getitem__(self, i: int) -> dict:
        shape = tuple(self._shapes[i])
        start = self._offsets[i]
        latent = np.asarray(self.latents[start : start + int(np.prod(shape))], np.float32).reshape(shape)
        item = {"latent": latent, "caption": self.captions[i], "index": i}
        for key, array in self.text.items():
            item[key] = np.asarray(array[i], np.float32 if key != "text_mask" else bool)
        return item


def latest_vae_step(vae_workdir) -> int:
    from sora_jax.checkpoints import run_step

    if not pathlib.Path(vae_workdir).exists():
        raise FileNotFoundError(f"vae_workdir {vae_workdir} does not exist: train the VAE first, e.g. "
                                f"`sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir={vae_workdir}`")
    step = run_step(vae_workdir)
    if step is None:
        raise FileNotFoundError(f"vae_workdir {vae_workdir} holds no checkpoint: train the VAE first")
    return step


def fingerprint(vae_workdir, data_config, split: str, text_encoder: str, limit: int | None) -> dict:
    return {"version": VERSION, "vae_workdir": str(pathlib.Path(vae_workdir).resolve()),
            "vae_step": latest_vae_step(vae_workdir), "dataset": data_config.dataset, "split": split,
            "text_encoder": text_encoder, "limit": limit}


def _encode_clips(model: VideoVAE, params, stats: dict, source, limit: int | None):
    """Yields (index, normalized latent) for the clips of `source`, batched by shape."""
    from sora_jax.pipelines.vae import normalize_latents

    count = len(source) if limit is None else min(limit, len(source))
    shapes = pipeline.record_shapes(source) if hasattr(source, "shapes") else None
    by_shape: dict[tuple, list[int]] = {}
    for i in range(count):
        shape = tuple(shapes[i]) if shapes is not None else tuple(source[i]["video"].shape[:3])
        by_shape.setdefault(shape, []).append(i)
    encode = jax.jit(lambda p, v: model.apply({"params": p}, v, method=VideoVAE.encode_mean))
    for indices in by_shape.values():
        for start in range(0, len(indices), 16):
            chunk = indices[start : start + 16]
            videos = np.stack([source[i]["video"] for i in chunk]).astype(np.float32) / 127.5 - 1.0
            latents = normalize_latents(np.asarray(encode(params, videos)), stats)
            yield from zip(chunk, latents)


def build(directory: str | pathlib.Path, vae_workdir, data_config, split: str, text_encoder: str,
          text_length: int = 128, limit: int | None = None, vae=None, stamp: dict | None = None) -> LatentSource:
    """Encodes the split into `directory`. `vae` (model, params, stats, config) and `stamp` (the
    fingerprint) come from `ensure`, which reads them on every process: Orbax's readers
    synchronize all processes, so process 0 alone must not call them."""
    from sora_jax.pipelines.vae import load_trained_vae

    directory = pathlib.Path(directory)
    model, params, stats, _ = vae or load_trained_vae(vae_workdir)
    if not stats:
        raise ValueError(f"{vae_workdir} has no latent statistics: its run did not finish; train it to the end first")
    source = pipeline.open_source(data_config.dataset, data_config.data_dir, split)
    latents: dict[int, np.ndarray] = dict(_encode_clips(model, params, stats, source, limit))
    order = sorted(latents)
    captions = [pipeline._text(source[i]["caption"]) for i in order]
    shapes = [list(latents[i].shape) for i in order]
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64).tolist()

    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.save(staging / "latents.npy", np.concatenate([latents[i].reshape(-1) for i in order]).astype(np.float32))
    frozen = text_lib.make_frozen_encoder(text_encoder, max_length=text_length)
    if frozen is not None:
        embedded = frozen.encode(captions)
        np.save(staging / "text_tokens.npy", embedded.tokens.astype(np.float16))
        np.save(staging / "text_mask.npy", embedded.mask)
        np.save(staging / "text_pooled.npy", embedded.pooled.astype(np.float32))
    (staging / "index.json").write_text(json.dumps({
        "fingerprint": stamp or fingerprint(vae_workdir, data_config, split, text_encoder, limit),
        "latent_stats": stats, "captions": captions, "shapes": shapes, "offsets": offsets,
        "records": order, "source_report": source.report() if hasattr(source, "report") else None}))
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return LatentSource(directory)


def ensure(directory: str | pathlib.Path, vae_workdir, data_config, split: str, text_encoder: str,
           text_length: int = 128, limit: int | None = None) -> LatentSource:
    """The cache in `directory`, built (by process 0, the others waiting) when missing or stale.
    Every process reads the fingerprint and, when stale, the VAE: Orbax's readers are collective."""
    from jax.experimental import multihost_utils

    from sora_jax.pipelines.vae import load_trained_vae

    directory = pathlib.Path(directory)
    wanted = fingerprint(vae_workdir, data_config, split, text_encoder, limit)
    current = None
    if (directory / "index.json").exists():
        current = json.loads((directory / "index.json").read_text()).get("fingerprint")
    if current != wanted:
        vae = load_trained_vae(vae_workdir)
        if jax.process_index() == 0:
            build(directory, vae_workdir, data_config, split, text_encoder, text_length, limit, vae=vae, stamp=wanted)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"latent_cache:{split}")
    return LatentSource(directory)
