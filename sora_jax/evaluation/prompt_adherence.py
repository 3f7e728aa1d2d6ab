"""Does a generated PhysWorld video show what its prompt asked for? Colors present, and moving.

PhysWorld draws objects in six saturated palette colors on a near-black background, so a pixel
whose nearest palette entry is an object color is an object pixel of that color. A color counts
as present when it covers at least `min_fraction` of the pixels.
"""

from __future__ import annotations

import re

import numpy as np

from sora_jax.data import palette
from sora_jax.evaluation.metrics import to_unit


def prompted_colors(caption: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", caption.lower()))
    return {name for name in palette.COLOR_NAMES if name in words}


def color_masks(video: np.ndarray) -> np.ndarray:
    """bool [6, T, H, W]: pixels whose nearest palette entry is each object color."""
    labels = palette.nearest_palette_index(to_unit(video).astype(np.float32))
    return np.stack([labels == index for index in range(len(palette.COLOR_NAMES))])


def adherence(video: np.ndarray, caption: str, min_fraction: float = 0.003) -> dict:
    """{recall, precision, moving}: prompted colors found; found colors that were prompted;
    among found prompted colors in a video, the fraction whose centroid moves ≥ 0.5 px."""
    masks = color_masks(video)
    present = {name for name, mask in zip(palette.COLOR_NAMES, masks) if mask.mean() >= min_fraction}
    wanted = prompted_colors(caption)
    result = {"recall": len(present & wanted) / len(wanted) if wanted else float("nan"),
              "precision": len(present & wanted) / len(present) if present else float("nan"),
              "moving": float("nan")}
    found = sorted(present & wanted)
    if video.shape[0] > 1 and found:
        moving = []
        for name in found:
            mask = masks[palette.COLOR_NAMES.index(name)]
            frames = [np.argwhere(m).mean(0) for m in (mask[0], mask[-1]) if m.any()]
            moving.append(len(frames) == 2 and float(np.linalg.norm(frames[1] - frames[0])) >= 0.5)
        result["moving"] = float(np.mean(moving))
    return result


def summarize(results: list[dict]) -> dict:
    """Means over samples, ignoring NaN (no prompted color, or an image)."""
    out = {}
    for key in ("recall", "precision", "moving"):
        values = [r[key] for r in results if r[key] == r[key]]
        out[f"prompt_color_{key}" if key != "moving" else "prompt_motion"] = float(np.mean(values)) if values else None
    return out
