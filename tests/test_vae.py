"""The causal VAE: shapes, causality, one latent for images and videos, chunked == one-shot."""

import jax
import numpy as np
import pytest

from sora_jax.models import vae_streaming
from sora_jax.models.vae import VideoVAE

MODEL = VideoVAE(channels=(8, 16, 16), blocks=1, spatial=4, temporal=4, latent_channels=4)


@pytest.fixture(scope="module")
def params():
    return MODEL.init(jax.random.PRNGKey(0), np.zeros((1, 5, 16, 16, 3), np.float32))["params"]


def _video(frames, height=16, width=24, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (2, frames, height, width, 3)).astype(np.float32)


def _encode(params, video):
    return np.asarray(MODEL.apply({"params": params}, video, method=VideoVAE.encode_mean))


@pytest.mark.parametrize("frames", [1, 5, 9, 17])
def test_shapes_follow_the_causal_frame_rule(params, frames):
    latents = _encode(params, _video(frames))
    assert latents.shape == (2, 1 + (frames - 1) // 4, 4, 6, 4)
    recon = np.asarray(MODEL.apply({"params": params}, latents, method=VideoVAE.decode))
    assert recon.shape == (2, frames, 16, 24, 3)


@pytest.mark.parametrize("shape,message", [((1, 6, 16, 16, 3), r"nearest valid: \[5, 9\]"),
                                           ((1, 5, 18, 16, 3), r"height=18 .* nearest valid: \[16, 20\]"),
                                           ((1, 5, 16, 15, 3), r"width=15")])
def test_bad_sizes_are_rejected_with_the_nearest_valid_ones(params, shape, message):
    with pytest.raises(ValueError, match=message):
        _encode(params, np.zeros(shape, np.float32))


def test_changing_frame_k_leaves_earlier_latents_unchanged(params):
    video = _video(17)
    base = _encode(params, video)
    for frame in (1, 5, 9, 16):
        changed = video.copy()
        changed[:, frame] = 0.7
        latents = _encode(params, changed)
        first_affected = 1 + (frame - 1) // 4
        np.testing.assert_array_equal(latents[:, :first_affected], base[:, :first_affected])
        assert np.abs(latents[:, first_affected] - base[:, first_affected]).max() > 1e-4


def test_image_latent_equals_the_videos_first_latent_frame(params):
    video = _video(9)
    np.testing.assert_allclose(_encode(params, video[:, :1])[:, 0], _encode(params, video)[:, 0], atol=1e-5)


@pytest.mark.parametrize("chunk", [4, 8])
def test_chunked_encode_equals_one_shot(params, chunk):
    video = _video(17)
    np.testing.assert_allclose(vae_streaming.encode_chunked(MODEL, params, video, chunk), _encode(params, video),
                               atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3])
def test_chunked_decode_equals_one_shot(params, chunk):
    latents = _encode(params, _video(17))
    one_shot = np.asarray(MODEL.apply({"params": params}, latents, method=VideoVAE.decode))
    np.testing.assert_allclose(vae_streaming.decode_chunked(MODEL, params, latents, chunk), one_shot, atol=1e-5)


def test_chunk_not_a_multiple_of_the_temporal_factor_is_refused(params):
    with pytest.raises(ValueError, match="multiple of temporal"):
        vae_streaming.encode_chunked(MODEL, params, _video(17), 3)


def test_tiling_is_exact_for_one_tile_and_seams_shrink_with_overlap(params):
    video = _video(5, height=32, width=96)
    one_shot = _encode(params, video)
    np.testing.assert_allclose(vae_streaming.encode(MODEL, params, video, tile=96), one_shot, atol=1e-6)
    errors = [np.abs(vae_streaming.encode(MODEL, params, video, tile=48, overlap=o) - one_shot).mean() for o in (8, 32)]
    assert errors[1] < errors[0]
    tiled = vae_streaming.encode(MODEL, params, video, tile=48, overlap=16, chunk_frames=4)
    assert tiled.shape == one_shot.shape


def test_bad_configurations_fail_clearly():
    with pytest.raises(ValueError, match="spatial must be 4 or 8"):
        VideoVAE(spatial=2)
    with pytest.raises(ValueError, match="latent_channels"):
        VideoVAE(latent_channels=32)
    with pytest.raises(ValueError, match="down stages"):
        VideoVAE(channels=(8, 16), spatial=8)


def test_factorized_blocks_stay_causal_and_stream_exactly():
    model = VideoVAE(channels=(8, 16, 16), blocks=1, spatial=4, temporal=4, latent_channels=4, factorized=True)
    params = model.init(jax.random.PRNGKey(0), np.zeros((1, 5, 16, 16, 3), np.float32))["params"]
    kernels = {leaf.shape[:3] for leaf in jax.tree.leaves(params) if leaf.ndim == 5}
    assert {(1, 3, 3), (3, 1, 1)} <= kernels  # the residual blocks' (2+1)D pair
    video, changed = _video(17), _video(17)
    changed[:, :9] = video[:, :9]
    encode = lambda v: np.asarray(model.apply({"params": params}, v, method=VideoVAE.encode_mean))
    base = encode(video)
    np.testing.assert_array_equal(encode(changed)[:, :3], base[:, :3])  # frames 0..8 -> latents 0..2
    np.testing.assert_allclose(vae_streaming.encode_chunked(model, params, video, 8), base, atol=1e-5)
