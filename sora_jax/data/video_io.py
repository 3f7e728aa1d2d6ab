"""Reading and writing videos and images with imageio v3 + imageio-ffmpeg (bundled ffmpeg).

Arrays are uint8 `[T, H, W, 3]`. Readers raise `VideoReadError` with the path and the reason, so
callers can skip and count a bad file instead of crashing.
"""

from __future__ import annotations

import os
import pathlib
import warnings

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageSequence

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_SIDE = 8192  # larger frames are refused rather than decoded into tens of GB
# imageio-ffmpeg starts ffmpeg with subprocess; the child execs at once, so JAX's threads are safe.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)


class VideoReadError(ValueError):
    """A file that could not be read as a video or an image."""


def to_rgb(frames: np.ndarray) -> np.ndarray:
    """Any of [H,W], [H,W,C], [T,H,W], [T,H,W,C] (C in 1..4) in uint8 -> [T, H, W, 3] uint8."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating):
            frames = np.rint(np.clip(frames, 0, 1) * 255)
        elif np.issubdtype(frames.dtype, np.integer) and frames.max(initial=0) > 255:
            frames = frames // 257  # 16-bit
        frames = frames.astype(np.uint8)
    if frames.ndim == 2:
        frames = frames[None, ..., None]
    elif frames.ndim == 3:
        frames = frames[None] if frames.shape[-1] in (1, 3, 4) else frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"cannot interpret array of shape {frames.shape} as frames")
    if frames.shape[-1] in (1, 2):  # gray (+ alpha)
        frames = np.repeat(frames[..., :1], 3, axis=-1)
    return np.ascontiguousarray(frames[..., :3])


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Reads a video or an image -> (uint8 [T, H, W, 3], fps; 0.0 for a still image)."""
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise VideoReadError(f"{path}: empty file")
        if suffix in IMAGE_SUFFIXES:
            frames, fps = iio.imread(path), 0.0
        elif suffix in VIDEO_SUFFIXES:
            frames, fps = _read_video(path, suffix, max_frames)
        else:
            raise VideoReadError(f"{path}: unsupported suffix {suffix!r}")
        frames = to_rgb(frames)
    except VideoReadError:
        raise
    except Exception as error:  # imageio raises many types for bad files; name the file
        raise VideoReadError(f"{path}: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}") from error
    if frames.shape[0] == 0:
        raise VideoReadError(f"{path}: no frames")
    if max(frames.shape[1:3]) > MAX_SIDE or min(frames.shape[1:3]) < 2:
        raise VideoReadError(f"{path}: frame size {frames.shape[1]}x{frames.shape[2]} is out of range")
    return frames, fps


def _read_gif(path: pathlib.Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    """GIF frames at a uniform rate: writers merge identical frames into one longer frame, so
    each frame is repeated by its duration over the frame period (our GIFs record their fps in
    the comment; for others the shortest frame sets the period)."""
    frames, durations = [], []
    with Image.open(path) as image:
        comment = image.info.get("comment", b"")
        recorded = comment.decode("ascii", "replace") if isinstance(comment, bytes) else str(comment)
        for frame in ImageSequence.Iterator(image):
            frames.append(to_rgb(np.asarray(frame.convert("RGB")))[0])
            durations.append(max(10, int(frame.info.get("duration") or 100)))
            if max_frames is not None and len(frames) >= max_frames:
                break
    base = 1000.0 / float(recorded[4:]) if recorded.startswith("fps=") else min(durations)
    repeats = np.maximum(1, np.rint(np.array(durations) / base)).astype(int)
    stacked = np.repeat(np.stack(frames), repeats, axis=0)
    return stacked[:max_frames] if max_frames else stacked, 1000.0 / base


def _read_video(path: pathlib.Path, suffix: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    if suffix == ".gif":
        return _read_gif(path, max_frames)
    meta = iio.immeta(path, plugin="FFMPEG")
    size = meta.get("size") or meta.get("source_size")
    if size and (max(size) > MAX_SIDE or min(size) < 2):
        raise VideoReadError(f"{path}: frame size {size[1]}x{size[0]} is out of range")
    frames = []
    for index, frame in enumerate(iio.imiter(path, plugin="FFMPEG")):
        if max_frames is not None and index >= max_frames:
            break
        frames.append(to_rgb(frame)[0])
    if not frames:
        raise VideoReadError(f"{path}: no frames")
    return np.stack(frames), float(meta.get("fps") or 0.0)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0, scale: int = 1) -> pathlib.Path:
    """Writes uint8 or [-1, 1] float frames as MP4 (H.264), WebM (VP9), GIF or an image, by suffix."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = as_uint8(frames)
    if scale > 1:  # nearest-neighbour upscaling keeps small renders legible
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        iio.imwrite(path, frames, plugin="pillow", duration=1000.0 / fps, loop=0, comment=f"fps={fps:g}")
    elif suffix == ".mp4":
        # H.264 with yuv420p needs even sides: pad by edge replication.
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        iio.imwrite(
            path, frames, plugin="FFMPEG", fps=fps, codec="libx264",
            pixelformat="yuv420p", output_params=["-crf", "12"], macro_block_size=1,
        )
    elif suffix == ".webm":
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2  # yuv420p: even sides, as for MP4
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, codec="libvpx-vp9", pixelformat="yuv420p",
                    output_params=["-crf", "12", "-b:v", "0"], macro_block_size=1)
    elif suffix in IMAGE_SUFFIXES:
        iio.imwrite(path, frames[0])
    else:
        raise ValueError(f"cannot write {suffix!r}: use .mp4, .webm, .gif or an image suffix")
    return path


def as_uint8(frames: np.ndarray) -> np.ndarray:
    """uint8 passes through; floats are read as [-1, 1] (the model's range)."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return np.rint((np.clip(frames, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
