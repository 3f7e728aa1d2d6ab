"""Metrics: one JSON line per log step (`metrics.jsonl`), TensorBoard events (tensorboardX), and
a progress bar with ETA, tokens/s, TFLOP/s and MFU. Only process 0 writes."""

from __future__ import annotations

import json
import pathlib
import time

import jax
import numpy as np
import tqdm


def _drop_partial_last_line(path: pathlib.Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class MetricWriter:
    def __init__(self, workdir: str | pathlib.Path, total_steps: int, initial_step: int = 0, quiet: bool = False):
        self.enabled = jax.process_index() == 0
        self.workdir = pathlib.Path(workdir)
        self.bar = None
        self.tensorboard = None
        if self.enabled:
            from tensorboardX import SummaryWriter

            self.workdir.mkdir(parents=True, exist_ok=True)
            path = self.workdir / "metrics.jsonl"
            _drop_partial_last_line(path)  # a run killed mid-write leaves half a line
            self.jsonl = path.open("a")
            self.tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))
            self.bar = tqdm.tqdm(total=total_steps, initial=initial_step, disable=quiet, dynamic_ncols=True,
                                 desc=self.workdir.name)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v).tolist())
                 for k, v in metrics.items() if v is not None}  # None: not measurable this time
        self.jsonl.write(json.dumps({"step": int(step), "time": time.time(), **clean}) + "\n")
        self.jsonl.flush()
        for key, value in clean.items():
            if isinstance(value, float):
                self.tensorboard.add_scalar(key, value, step)

    def progress(self, step: int, summary: dict) -> None:
        if self.bar is None:
            return
        self.bar.n = int(step)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in summary.items()}, refresh=False)
        self.bar.refresh()

    def video(self, tag: str, step: int, video: np.ndarray, max_frames: int = 9) -> None:
        """uint8 [T, H, W, 3] into TensorBoard as a strip of up to `max_frames` frames (TensorBoard's
        own video summary needs moviepy)."""
        if not self.enabled or video.ndim != 4:
            return
        picks = np.unique(np.linspace(0, len(video) - 1, min(max_frames, len(video))).round().astype(int))
        self.tensorboard.add_image(tag, np.concatenate(list(video[picks]), axis=1), step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.jsonl.close()
            self.tensorboard.close()
