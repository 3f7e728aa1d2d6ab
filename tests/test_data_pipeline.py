"""tfds round trip in fresh processes, bucketing, per-process sharding, determinism, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sora_jax.configs import vae
from sora_jax.data import pipeline


def _data_config(data_dir, **overrides):
    config = vae.get_config("tiny").data
    config.unlock()
    config.data_dir = str(data_dir)
    for key, value in overrides.items():
        config[key] = value
    return config


def test_prepare_then_read_in_a_fresh_process(physworld_tiny):
    script = f"""
import json, sys
import tensorflow_datasets as tfds
import sora_jax.data.physworld_tfds
source = tfds.data_source("physworld/tiny", data_dir={str(physworld_tiny)!r}, split="validation")
example = source[0]
print(json.dumps({{"n": len(source), "video": list(example["video"].shape), "shape": example["shape"].tolist(),
                   "caption": example["caption"].decode(), "tf": "tensorflow" in sys.modules}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["n"] == 128 and not info["tf"]
    assert info["video"][:3] == info["shape"] and info["video"][3] == 3
    assert info["caption"]


def test_buckets_have_one_shape_and_roughly_constant_pixels(physworld_tiny):
    dataset, plan, _ = pipeline.make_dataset(_data_config(physworld_tiny), seed=0, process_index=0, process_count=1)
    assert {tuple(b) for b in plan.buckets} >= {(1, 32, 56), (9, 56, 32), (17, 32, 32)}
    pixels = plan.buckets.prod(1) * plan.batch_sizes
    uncapped = plan.batch_sizes < 64
    assert pixels[uncapped].max() / pixels[uncapped].min() < 2.0
    iterator = iter(dataset)
    shapes = set()
    for _ in range(30):
        batch = next(iterator)
        video = batch["video"]
        assert video.dtype == np.float32 and -1.0 <= video.min() and video.max() <= 1.0
        assert video.shape[0] == plan.batch_sizes[batch["bucket"]] == len(batch["caption"])
        shapes.add(video.shape[1:4])
    assert any(s[0] == 1 for s in shapes) and any(s[0] > 1 for s in shapes), "images and videos mixed"


def test_processes_read_disjoint_slices_of_the_same_global_batch(physworld_tiny):
    config = _data_config(physworld_tiny)
    whole = iter(pipeline.make_dataset(config, seed=3, process_index=0, process_count=1, shard_multiple=2)[0])
    halves = [iter(pipeline.make_dataset(config, seed=3, process_index=p, process_count=2)[0]) for p in (0, 1)]
    for _ in range(5):
        full, first, second = next(whole), next(halves[0]), next(halves[1])
        np.testing.assert_array_equal(np.concatenate([first["record"], second["record"]]), full["record"])
        np.testing.assert_array_equal(np.concatenate([first["video"], second["video"]]), full["video"])
        assert not set(first["record"]) & set(second["record"])


def test_same_seed_same_order_and_state_resumes(physworld_tiny):
    config = _data_config(physworld_tiny)
    a = iter(pipeline.make_dataset(config, seed=5, process_index=0, process_count=1)[0])
    b = iter(pipeline.make_dataset(config, seed=5, process_index=0, process_count=1)[0])
    c = iter(pipeline.make_dataset(config, seed=6, process_index=0, process_count=1)[0])
    first = [next(a)["record"] for _ in range(4)]
    assert all(np.array_equal(x, next(b)["record"]) for x in first)
    assert not all(np.array_equal(x, next(c)["record"]) for x in first)
    state = json.loads(json.dumps(a.get_state()))  # the state survives JSON (it goes in checkpoints)
    expected = [next(a)["record"] for _ in range(3)]
    resumed = iter(pipeline.make_dataset(config, seed=5, process_index=0, process_count=1)[0])
    resumed.set_state(state)
    for record in expected:
        np.testing.assert_array_equal(next(resumed)["record"], record)


def test_epochs_reshuffle_and_cover_every_record_once():
    shapes = np.array([(1, 8, 8)] * 40 + [(5, 8, 8)] * 24)
    plan = pipeline.BatchPlan(shapes, batch_size=4, max_batch_size=8, multiple=2, seed=0, epochs=3)
    per_epoch = plan.batches_per_epoch
    epoch0 = np.concatenate([plan[i][2] for i in range(per_epoch)])
    epoch1 = np.concatenate([plan[i][2] for i in range(per_epoch, 2 * per_epoch)])
    assert len(set(epoch0.tolist())) == len(epoch0) == 64
    assert not np.array_equal(epoch0, epoch1) and set(epoch0.tolist()) == set(epoch1.tolist())


def test_batches_sized_by_the_cropped_shape():
    shapes = np.array([(1, 32, 32)] * 8 + [(9, 32, 32)] * 8 + [(17, 32, 56)] * 8)
    by_clip = pipeline.BatchPlan(shapes, batch_size=2, max_batch_size=16, multiple=1, seed=0)
    by_crop = pipeline.BatchPlan(shapes, batch_size=2, max_batch_size=16, multiple=1, seed=0, crop=(9, 16))
    assert by_clip.batch_sizes.tolist() == [16, 6, 2]  # 17x32x56 clips set the base, smaller clips get more
    assert by_crop.batch_sizes.tolist() == [16, 2, 2]  # every video crop is 9x16x16: the same batch
    np.testing.assert_array_equal(pipeline.cropped_shapes(shapes[[0, 8, 16]], 9, 16),
                                  [(1, 16, 16), (9, 16, 16), (9, 16, 16)])


def test_batch_size_must_divide_by_shards():
    with pytest.raises(ValueError, match="divisible"):
        pipeline.bucket_batch_sizes(np.array([[1, 8, 8]]), batch_size=6, max_batch_size=8, multiple=4)


def test_unprepared_dataset_names_the_prepare_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="sora-jax data prepare"):
        pipeline.open_source("physworld/tiny", str(tmp_path), "train")
