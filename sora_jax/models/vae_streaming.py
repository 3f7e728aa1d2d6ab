"""Long and large inputs at bounded memory: temporal chunks with a causal-padding cache, and
spatial tiles with blended overlaps.

Chunked encode/decode equals one-shot exactly (up to float rounding): each causal conv keeps
the last `kernel_t - stride_t` input frames in the `cache` collection between chunks. Tiling is
an approximation (each tile sees only its own context); linear ramps over the overlap hide seams.

    latents = encode(model, params, video, chunk_frames=16, tile=256, overlap=32)
    video = decode(model, params, latents, chunk_latents=4, tile=64, overlap=8)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.models.vae import VideoVAE

AUTO_TILE_FROM = 512  # frames with a side this large are tiled unless told otherwise
AUTO_TILE = 256  # tile side in pixels (overlap 32) for such frames


@functools.lru_cache(maxsize=32)
def _streamed(model: VideoVAE, method_name: str, first: bool):
    method = getattr(VideoVAE, method_name)

    def run(params, cache, x):
        variables = {"params": params} if first else {"params": params, "cache": cache}
        out, updated = model.apply(variables, x, method=method, mutable=["cache"])
        return out, updated["cache"]

    return jax.jit(run)


def _chunked(model, params, x, first_len: int, chunk: int, method_name: str) -> np.ndarray:
    outputs, cache = [], None
    starts = [0] + list(range(first_len, x.shape[1], chunk))
    for index, start in enumerate(starts):
        end = first_len if index == 0 else min(start + chunk, x.shape[1])
        out, cache = _streamed(model, method_name, index == 0)(params, cache, jnp.asarray(x[:, start:end]))
        outputs.append(np.asarray(out))
    return np.concatenate(outputs, axis=1)


def encode_chunked(model: VideoVAE, params, video: np.ndarray, chunk_frames: int) -> np.ndarray:
    """Posterior means of `video` [B, T, H, W, 3]: frame 0 alone, then `chunk_frames` at a time."""
    model.check_video_shape(video.shape)
    if chunk_frames <= 0 or chunk_frames % model.temporal:
        raise ValueError(f"chunk_frames={chunk_frames} must be a positive multiple of temporal={model.temporal}")
    return _chunked(model, params, video, 1, chunk_frames, "encode_mean")


def decode_chunked(model: VideoVAE, params, latents: np.ndarray, chunk_latents: int) -> np.ndarray:
    """Video from latents [B, t, h, w, c]: latent frame 0 alone, then `chunk_latents` at a time."""
    if chunk_latents <= 0:
        raise ValueError(f"chunk_latents={chunk_latents} must be positive")
    return _chunked(model, params, latents, 1, chunk_latents, "decode")


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    weight = np.ones(length, np.float32)
    if overlap > 0:
        ramp = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        if ramp_start:
            weight[:overlap] = ramp
        if ramp_end:
            weight[-overlap:] = ramp[::-1]
    return weight


def _tiled(fn, x: np.ndarray, tile: int, overlap: int, scale: int, out_channels: int, out_frames: int) -> np.ndarray:
    """Applies `fn` over overlapping spatial tiles of x [B, T, H, W, C]; output side = side * scale."""
    batch, _, height, width, _ = x.shape
    out = np.zeros((batch, out_frames, int(height * scale), int(width * scale), out_channels), np.float32)
    total = np.zeros((1, 1, out.shape[2], out.shape[3], 1), np.float32)
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    for top in rows:
        for left in cols:
            piece = fn(x[:, :, top : top + tile, left : left + tile])
            out_top, out_left = int(top * scale), int(left * scale)
            ph, pw = piece.shape[2:4]
            weight = np.outer(
                _ramp(ph, int(overlap * scale), top > 0, top != rows[-1]),
                _ramp(pw, int(overlap * scale), left > 0, left != cols[-1]),
            )[None, None, :, :, None]
            out[:, :, out_top : out_top + ph, out_left : out_left + pw] += piece * weight
            total[:, :, out_top : out_top + ph, out_left : out_left + pw] += weight
    return out / total


def encode(model: VideoVAE, params, video: np.ndarray, chunk_frames: int | None = None,
           tile: int | None = None, overlap: int = 32) -> np.ndarray:
    """Posterior means, chunked in time and/or tiled in space (automatically from 512 px)."""
    model.check_video_shape(video.shape)
    if tile is None and max(video.shape[2:4]) >= AUTO_TILE_FROM:
        tile = AUTO_TILE
    if tile is not None and (tile % model.spatial or overlap % model.spatial or overlap >= tile):
        raise ValueError(f"tile={tile} and overlap={overlap} must be multiples of {model.spatial}, overlap < tile")

    def encode_piece(piece):
        if chunk_frames:
            return encode_chunked(model, params, piece, chunk_frames)
        return np.asarray(_streamless(model, "encode_mean")(params, jnp.asarray(piece)))

    if tile is None or max(video.shape[2:4]) <= tile:
        return encode_piece(video)
    latent_frames = model.latent_shape(video.shape)[1]
    return _tiled(encode_piece, video, tile, overlap, 1 / model.spatial, model.latent_channels, latent_frames)


def decode(model: VideoVAE, params, latents: np.ndarray, chunk_latents: int | None = None,
           tile: int | None = None, overlap: int = 8) -> np.ndarray:
    """Videos from latents, chunked in time and/or tiled in latent space (automatically when the
    frames would have a side of 512 px or more)."""
    if tile is None and max(latents.shape[2:4]) * model.spatial >= AUTO_TILE_FROM:
        tile, overlap = AUTO_TILE // model.spatial, 32 // model.spatial
    def decode_piece(piece):
        if chunk_latents:
            return decode_chunked(model, params, piece, chunk_latents)
        return np.asarray(_streamless(model, "decode")(params, jnp.asarray(piece)))

    if tile is None or max(latents.shape[2:4]) <= tile:
        return decode_piece(latents)
    frames = 1 + (latents.shape[1] - 1) * model.temporal
    return _tiled(decode_piece, latents, tile, overlap, model.spatial, 3, frames)


@functools.lru_cache(maxsize=32)
def _streamless(model: VideoVAE, method_name: str):
    method = getattr(VideoVAE, method_name)
    return jax.jit(lambda params, x: model.apply({"params": params}, x, method=method))
