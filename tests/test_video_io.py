"""MP4/GIF/PNG round trips through imageio's bundled ffmpeg; odd inputs become RGB frames."""

import numpy as np
import pytest

from sora_jax.data import physworld, video_io


@pytest.mark.parametrize("suffix,tolerance", [(".mp4", 4.0), (".gif", 0.0), (".png", 0.0)])
def test_write_then_read_round_trip(tmp_path, suffix, tolerance):
    clip = physworld.render_clip(0, 9, 32, 56).video
    frames = clip[:1] if suffix == ".png" else clip
    path = video_io.write_video(tmp_path / f"c{suffix}", frames, fps=8)
    back, fps = video_io.read_frames(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(float) - frames).mean() <= tolerance
    assert fps == (0.0 if suffix == ".png" else pytest.approx(8.0, rel=0.05))


def test_float_frames_are_read_as_model_range(tmp_path):
    frames = np.linspace(-1, 1, 9 * 16 * 16 * 3, dtype=np.float32).reshape(9, 16, 16, 3)
    assert video_io.as_uint8(frames).min() == 0 and video_io.as_uint8(frames).max() == 255


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 4), (3, 8, 8), (3, 8, 8, 2)])
def test_to_rgb_accepts_gray_alpha_and_stacks(shape):
    rgb = video_io.to_rgb(np.zeros(shape, np.uint8))
    assert rgb.ndim == 4 and rgb.shape[-1] == 3 and rgb.shape[1:3] == (8, 8)


def test_odd_sized_mp4_is_padded_not_refused(tmp_path):
    path = video_io.write_video(tmp_path / "odd.mp4", np.zeros((3, 15, 17, 3), np.uint8))
    assert video_io.read_frames(path)[0].shape == (3, 16, 18, 3)


def test_bad_files_raise_video_read_error_with_the_path(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(video_io.VideoReadError, match="bad.mp4"):
        video_io.read_frames(bad)
