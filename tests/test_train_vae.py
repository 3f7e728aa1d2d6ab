"""The trainer end to end on the VAE: train, checkpoint, resume, latent stats, eval suite."""

import json
import os
import subprocess
import sys

import numpy as np

from sora_jax.configs import vae
from sora_jax.evaluation import vae_suite
from sora_jax.pipelines import vae as vae_pipeline
from sora_jax.train import trainer, vae_task
from tests.conftest import micro_vae_config


def _micro_config(data_dir, total_steps):
    config = micro_vae_config(data_dir, total_steps)
    config.log.every_steps = 2
    config.checkpoint.every_steps = 2
    config.eval.num_clips = 6
    config.eval.num_samples = 2
    return config


def test_train_resume_and_evaluate(physworld_tiny, tmp_path):
    workdir = tmp_path / "run"
    first = trainer.train(_micro_config(physworld_tiny, 4), workdir, quiet=True)
    assert first["step"] == 4 and "latent_stats" in first
    resumed = trainer.train(_micro_config(physworld_tiny, 6), workdir, quiet=True)
    assert resumed["step"] == 6
    assert resumed["mfu_basis"].startswith("measured f32 matmul ceiling")  # a CPU has no datasheet peak
    again = trainer.train(_micro_config(physworld_tiny, 6), workdir, quiet=True)  # finished: a no-op
    assert again == json.loads((workdir / "final_metrics.json").read_text()) and again["step"] == 6
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [line["step"] for line in lines if "loss" in line]
    assert train_steps == [2, 4, 6], "resumed at step 4, not from scratch"
    assert all(np.isfinite(line["loss"]) and line["mfu"] > 0 for line in lines if "loss" in line)
    assert (workdir / "config.json").exists() and (workdir / "samples" / "step_000006" / "recon_01.mp4").exists()

    model, params, stats, _ = vae_pipeline.load_trained_vae(workdir)
    assert len(stats["mean"]) == len(stats["std"]) == model.latent_channels and min(stats["std"]) > 0
    report = vae_suite.run(workdir, num_clips=4)
    assert report["physworld_validation"]["clips"] == 4
    assert {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"} <= set(report["real_footage"]["clips"])
    assert report["real_footage"]["photos"] and np.isfinite(report["real_footage"]["psnr"])
    assert report["compression_ratio"] > 1 and report["throughput"]["encode_frames_per_s"] > 0
    assert (workdir / "eval_vae.json").exists()


def test_sharded_encode_decode_on_8_devices_equals_one_device():
    script = """
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from sora_jax.models.vae import VideoVAE
assert jax.device_count() == 8
model = VideoVAE.from_variant("micro", spatial=4, temporal=4, latent_channels=4, patch=2)
video = np.random.default_rng(0).uniform(-1, 1, (8, 5, 16, 24, 3)).astype(np.float32)
params = model.init(jax.random.PRNGKey(0), video[:1])["params"]
mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
sharded = jax.device_put(video, NamedSharding(mesh, P("data")))
encode = jax.jit(lambda p, v: model.apply({"params": p}, v, method=model.encode_mean))
decode = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))
latents = encode(params, sharded)
assert len(latents.sharding.device_set) == 8
recon = decode(params, latents)
single = jax.devices()[0]
ref_latents = encode(jax.device_put(params, single), jax.device_put(video, single))
ref = decode(jax.device_put(params, single), ref_latents)
np.testing.assert_allclose(np.asarray(latents), np.asarray(ref_latents), atol=1e-5)
np.testing.assert_allclose(np.asarray(recon), np.asarray(ref), atol=1e-5)
print("ok")
"""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_training_crops_are_drawn_per_clip_and_reproducibly():
    task = vae_task.VaeTask(vae.get_config("tiny"))  # 9-frame 16x16 crops
    video = np.arange(4 * 17 * 32 * 56 * 3, dtype=np.float32).reshape(4, 17, 32, 56, 3)
    batch = {"video": video, "epoch": 0, "record": np.array([7])}
    crops = task.prepare_batch(batch)["video"]
    assert crops.shape == (4, 9, 16, 16, 3)
    corners = set()
    for clip, crop in zip(video, crops):
        t, y, x = np.argwhere(clip == crop[0, 0, 0, 0])[0][:3]
        np.testing.assert_array_equal(crop, clip[t : t + 9, y : y + 16, x : x + 16])
        corners.add((t, y, x))
    assert len(corners) > 1  # clips of one batch get different windows
    np.testing.assert_array_equal(task.prepare_batch(batch)["video"], crops)
    images = np.zeros((6, 1, 32, 56, 3), np.float32)
    assert task.prepare_batch({"video": images, "epoch": 0, "record": np.array([1])})["video"].shape == (6, 1, 16,
                                                                                                         16, 3)
