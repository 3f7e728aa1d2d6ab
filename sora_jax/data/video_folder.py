"""The user's own data: a folder of videos and images with captions, as a random-access source.

    folder/
      clip1.mp4   clip1.txt         # a sidecar caption, or
      photo.png                     # a line {"file": "photo.png", "caption": "..."} in
      captions.jsonl                # captions.jsonl (sidecars win when both exist)

Every file is decoded once while scanning: corrupt, truncated, empty, unreadable or absurd files
are skipped, counted and logged with their path and reason (`FolderSource.skipped`). Each usable
file gets the bucket nearest its aspect ratio and the longest bucket duration it can fill at the
target frame rate; clips are resized to cover the bucket and center-cropped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib

import numpy as np
from PIL import Image

from sora_jax.data import video_io

MAX_CAPTION_CHARS = 2000  # longer captions are cut, not refused


@dataclasses.dataclass(frozen=True)
class FolderItem:
    path: pathlib.Path
    caption: str
    source_fps: float  # 0 for images
    available_frames: int  # after resampling to the target fps
    shape: tuple[int, int, int]  # (T, H, W) bucket


def _read_text(path: pathlib.Path) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as error:
        logging.warning("caption %s unreadable: %s", path, error)
        return None
    text = raw.decode("utf-8", errors="replace").strip()  # not UTF-8: keep what decodes
    return text[:MAX_CAPTION_CHARS] if text else None


def jsonl_captions(folder: pathlib.Path) -> dict[str, str]:
    path = folder / "captions.jsonl"
    captions: dict[str, str] = {}
    if not path.exists():
        return captions
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry["caption"], str):
                raise TypeError("caption is not a string")
            captions[str(entry["file"])] = entry["caption"].strip()[:MAX_CAPTION_CHARS]
        except (json.JSONDecodeError, KeyError, TypeError):
            logging.warning("%s:%d is not {\"file\": ..., \"caption\": \"text\"}; ignored", path, number)
    return captions


def nearest_size(height: int, width: int, sizes) -> tuple[int, int]:
    """The bucket (h, w) whose aspect ratio is closest (in log space) to height / width."""
    ratio = np.log(height / width)
    return min(sizes, key=lambda s: abs(np.log(s[0] / s[1]) - ratio))


def resize_cover_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [T, h, w, 3] -> [T, height, width, 3]: scale to cover, then center-crop."""
    source_h, source_w = frames.shape[1:3]
    scale = max(height / source_h, width / source_w)
    new_h, new_w = max(height, round(source_h * scale)), max(width, round(source_w * scale))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for index, frame in enumerate(frames):
        resized = Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=2.0)
        out[index] = np.asarray(resized)[top : top + height, left : left + width]
    return out


def media_files(folder: pathlib.Path, skip) -> list[pathlib.Path]:
    """The folder's videos and images, sorted (their order is the records' order); `skip(path,
    reason)` hears of every other file but captions."""
    media = video_io.VIDEO_SUFFIXES + video_io.IMAGE_SUFFIXES
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        if path.suffix.lower() in media:
            files.append(path)
        elif path.suffix.lower() not in (".txt", ".jsonl"):
            skip(path, f"unsupported suffix {path.suffix!r}")
    return files


def resampled_count(frames: int, source_fps: float, fps: float) -> int:
    if source_fps <= 0 or frames == 1:
        return 1
    return max(1, int((frames - 1) * fps / source_fps) + 1)


def probe(path: pathlib.Path, folder: pathlib.Path, captions: dict[str, str], sizes, durations,
          fps: float) -> tuple[FolderItem, np.ndarray] | str:
    """The file's item (caption, bucket) and its decoded frames, or the reason it is skipped."""
    sidecar = path.with_suffix(".txt")
    caption = _read_text(sidecar) if sidecar.exists() else None
    caption = caption or captions.get(str(path.relative_to(folder))) or captions.get(path.name)
    if not caption:
        return "no caption (sidecar .txt or captions.jsonl)"
    try:
        frames, source_fps = video_io.read_frames(path)
    except (video_io.VideoReadError, OSError) as error:
        return str(error)
    available = resampled_count(frames.shape[0], source_fps, fps)
    fitting = [d for d in durations if d <= available]
    if not fitting:
        return f"{available} frames at {fps} fps: shorter than any bucket {tuple(durations)}"
    height, width = nearest_size(frames.shape[1], frames.shape[2], sizes)
    return FolderItem(path, caption, source_fps, available, (fitting[-1], height, width)), frames


def clip(item: FolderItem, frames: np.ndarray, fps: float, rng: np.random.Generator) -> dict:
    """The item's clip from its decoded `frames`: resampled to `fps`, a start drawn from `rng`,
    resized to cover its bucket and center-cropped."""
    frames_needed, height, width = item.shape
    if item.source_fps > 0 and frames.shape[0] > 1:
        picks = np.arange(item.available_frames) * item.source_fps / fps
        frames = frames[np.minimum(np.rint(picks).astype(int), frames.shape[0] - 1)]
    start = int(rng.integers(0, frames.shape[0] - frames_needed + 1))
    video = resize_cover_crop(frames[start : start + frames_needed], height, width)
    return {"video": video, "caption": item.caption, "shape": np.array(item.shape, np.int32)}


class FolderSource:
    """Random access to clips of a user folder, bucketed to `sizes` x `durations`."""

    def __init__(self, folder, sizes, durations, fps: float = 8.0, seed: int = 0):
        self.folder = pathlib.Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"data folder {self.folder} does not exist")
        self.sizes, self.durations, self.fps, self.seed = tuple(sizes), tuple(sorted(durations)), fps, seed
        self.skipped: list[tuple[str, str]] = []
        self.items = self._scan()
        if not self.items:
            raise ValueError(
                f"no usable videos or images in {self.folder} ({len(self.skipped)} skipped): "
                f"need {', '.join(video_io.VIDEO_SUFFIXES + video_io.IMAGE_SUFFIXES)} with captions"
            )
        logging.info("%s: %d usable, %d skipped", self.folder, len(self.items), len(self.skipped))

    def _skip(self, path: pathlib.Path, reason: str) -> None:
        self.skipped.append((str(path), reason))
        logging.warning("skipping %s: %s", path, reason)

    def _scan(self) -> list[FolderItem]:
        captions = jsonl_captions(self.folder)
        items = []
        for path in media_files(self.folder, self._skip):
            probed = probe(path, self.folder, captions, self.sizes, self.durations, self.fps)
            if isinstance(probed, str):
                self._skip(path, probed)
            else:
                items.append(probed[0])
        return items

    def shapes(self) -> np.ndarray:
        """int [N, 3]: the (T, H, W) bucket of every record."""
        return np.array([item.shape for item in self.items], np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.load(index, epoch=0)

    def load(self, index: int, epoch: int) -> dict:
        """One clip: its start is drawn from (seed, index, epoch), so reruns see the same frames."""
        item = self.items[index]
        return clip(item, video_io.read_frames(item.path)[0], self.fps, np.random.default_rng([self.seed, index, epoch]))

    def report(self) -> dict:
        return {"usable": len(self.items), "skipped": len(self.skipped), "skipped_files": self.skipped}

