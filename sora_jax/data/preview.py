"""A gallery of a dataset's clips: MP4 + GIF + caption per clip, a PNG contact sheet, index.html."""

from __future__ import annotations

import html
import json
import pathlib

import imageio.v3 as iio
import numpy as np

from sora_jax.data import video_io


def contact_sheet(videos: list[np.ndarray], columns: int = 4, cell: int = 112, border: int = 4) -> np.ndarray:
    """One row per clip: `columns` frames spread over its duration, the longer side ~`cell` px."""
    rows = []
    for video in videos:
        picks = np.unique(np.linspace(0, len(video) - 1, columns).round().astype(int))
        scale = max(1, cell // max(video.shape[1:3]))
        frames = [video[i].repeat(scale, 0).repeat(scale, 1) for i in picks]
        frames += [np.zeros_like(frames[0])] * (columns - len(frames))  # images: one frame, then blanks
        rows.append(np.concatenate([np.pad(f, ((border, border), (border, border), (0, 0)), constant_values=40) for f in frames], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=40) for r in rows]
    return np.concatenate(rows, 0)


def write_gallery(examples, out_dir: str | pathlib.Path, fps: float = 8.0) -> pathlib.Path:
    """examples: iterable of dicts with uint8 `video` [T, H, W, 3] and `caption`. Returns index.html."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos, cards, manifest = [], [], []
    for number, example in enumerate(examples):
        video = np.asarray(example["video"])
        caption = example["caption"].decode() if isinstance(example["caption"], bytes) else str(example["caption"])
        stem = f"clip_{number:03d}"
        scale = max(1, 128 // video.shape[1])
        video_io.write_video(out / f"{stem}.mp4", video, fps=fps, scale=scale)
        video_io.write_video(out / f"{stem}.gif", video, fps=fps, scale=scale)
        (out / f"{stem}.txt").write_text(caption + "\n")
        videos.append(video)
        shape = "x".join(map(str, video.shape[:3]))
        manifest.append({"clip": stem, "shape": list(video.shape[:3]), "caption": caption})
        cards.append(
            f'<figure><img src="{stem}.gif" alt="{stem}"><figcaption><b>{stem}</b> '
            f"({shape}, <a href=\"{stem}.mp4\">mp4</a>)<br>{html.escape(caption)}</figcaption></figure>"
        )
    if not videos:
        raise ValueError("no examples to preview")
    iio.imwrite(out / "contact_sheet.png", contact_sheet(videos))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    page = out / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>sora_jax preview</title>"
        "<style>body{background:#111;color:#ddd;font:14px sans-serif}figure{display:inline-block;"
        "width:300px;vertical-align:top;margin:8px}img{image-rendering:pixelated;max-width:100%}</style>"
        '<h1>Preview</h1><p><img src="contact_sheet.png" alt="contact sheet"></p>' + "".join(cards)
    )
    return page
