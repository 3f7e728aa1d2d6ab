"""Reconstruction metrics on uint8 or [-1, 1] videos `[..., H, W, 3]`: PSNR, SSIM, palette fidelity.

Numpy, on the host: evaluation sets are small and this keeps the numbers independent of the
device and precision the model ran with.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sora_jax.data import palette


def to_unit(video: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1]; floats are taken as the model's [-1, 1]."""
    video = np.asarray(video)
    if video.dtype == np.uint8:
        return video.astype(np.float64) / 255.0
    return (np.clip(video.astype(np.float64), -1, 1) + 1.0) / 2.0


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB over the whole array (peak 1.0 in [0, 1] units); 100 for identical inputs."""
    mse = np.mean((to_unit(reference) - to_unit(test)) ** 2)
    return 100.0 if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim(reference: np.ndarray, test: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window sigma 1.5, truncated at 11 px) over frames
    and channels of `[..., H, W, C]`."""
    x, y = to_unit(reference), to_unit(test)
    x = x.reshape(-1, *x.shape[-3:])
    y = y.reshape(-1, *y.shape[-3:])
    c1, c2 = 0.01**2, 0.03**2
    truncate = 5.0 / sigma  # an 11-pixel window, as the reference implementation

    def blur(a):
        return ndimage.gaussian_filter(a, sigma=(0, sigma, sigma, 0), truncate=truncate, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(value.mean())


def palette_fidelity(reference: np.ndarray, test: np.ndarray, core_distance: float = 0.05) -> float:
    """Of the reference's object pixels (nearest palette entry an object color, within
    `core_distance` of it: anti-aliased edges excluded), the fraction whose reconstruction is
    nearest to the same color. NaN when there are no object pixels."""
    ref, out = to_unit(reference).astype(np.float32), to_unit(test).astype(np.float32)
    labels = palette.nearest_palette_index(ref)
    distance = np.sqrt(((ref - palette.OBJECT_COLORS[np.minimum(labels, 5)]) ** 2).sum(-1))
    core = (labels < len(palette.COLOR_NAMES)) & (distance < core_distance * np.sqrt(3))
    if not core.any():
        return float("nan")
    return float((palette.nearest_palette_index(out[core]) == labels[core]).mean())


def reconstruction_report(originals: list[np.ndarray], reconstructions: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR / SSIM / palette fidelity of uint8 reconstructions; PSNR of images and videos
    apart when both are present."""
    psnrs = [psnr(o, r) for o, r in zip(originals, reconstructions)]
    ssims = [ssim(o, r) for o, r in zip(originals, reconstructions)]
    fidelity = [f for f in (palette_fidelity(o, r) for o, r in zip(originals, reconstructions)) if f == f]
    is_image = np.array([o.shape[0] == 1 for o in originals])
    result = {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)),
              "val_palette_fidelity": float(np.mean(fidelity)) if fidelity else None}
    if is_image.any() and (~is_image).any():
        result["val_psnr_images"] = float(np.mean(np.array(psnrs)[is_image]))
        result["val_psnr_videos"] = float(np.mean(np.array(psnrs)[~is_image]))
    return result
