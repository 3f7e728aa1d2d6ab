"""Data that grows with the budget: PhysWorld clips past the prepared split are rendered from
their seeds (the same example a bigger prepared split would hold), the latent cache serves a
smaller run from a bigger cache's prefix, and every ladder rung stays under its epoch cap."""

import json

import ml_collections
import numpy as np
import pytest

from sora_jax.configs import scaling
from sora_jax.data import pipeline
from sora_jax.data.physworld_tfds import builder
from sora_jax.scaling import ladder, plan
from sora_jax.train import latent_cache


def test_a_split_extended_past_its_records_renders_what_a_bigger_split_would_hold(physworld_tiny):
    prepared = pipeline.open_source("physworld/tiny", str(physworld_tiny), "validation")
    extended = pipeline.open_source("physworld/tiny", str(physworld_tiny), "validation", count=len(prepared) + 3)
    assert len(extended) == len(prepared) + 3
    inside, past = extended[len(prepared) - 1], extended[len(prepared) + 2]
    np.testing.assert_array_equal(inside["video"], prepared[len(prepared) - 1]["video"])
    # tfds stores records shuffled; past them come examples n, n+1, ... in order.
    assert sorted(int(extended[i]["index"]) for i in range(len(extended))) == list(range(len(extended)))
    expected = builder.make_example(builder.variant("tiny"), "validation", len(prepared) + 2)
    np.testing.assert_array_equal(past["video"], expected["video"])
    assert past["caption"] == expected["caption"]
    shapes = extended.shapes()
    assert shapes.shape == (len(prepared) + 3, 3)
    np.testing.assert_array_equal(shapes[:5], [prepared[i]["shape"] for i in range(5)])
    np.testing.assert_array_equal(shapes[-1], past["shape"])
    with pytest.raises(IndexError):
        extended[len(extended)]


def test_a_folder_refuses_more_clips_than_it_holds(tmp_path):
    from sora_jax.data import physworld, video_io

    video_io.write_video(tmp_path / "a.mp4", physworld.render_clip(1, 9, 32, 56).video, fps=8)
    (tmp_path / "a.txt").write_text("a red ball bounces")
    with pytest.raises(ValueError, match="only PhysWorld renders"):
        pipeline.open_source(f"folder:{tmp_path}", "", "train", count=5)


def _data_config(data_dir, num_train=0):
    return ml_collections.ConfigDict(dict(dataset="physworld/tiny", data_dir=str(data_dir), train_split="train",
                                          eval_split="validation", num_train=num_train))


def test_the_latent_cache_serves_a_smaller_run_from_its_prefix_and_grows_when_asked(physworld_tiny, micro_vae,
                                                                                    tmp_path):
    directory = tmp_path / "train"
    built = latent_cache.ensure(directory, micro_vae, _data_config(physworld_tiny, 6), "train", "minilm",
                                build_count=9)
    assert len(built) == 6 and len(json.loads((directory / "index.json").read_text())["captions"]) == 9
    stamp = (directory / "index.json").stat().st_mtime_ns
    smaller = latent_cache.ensure(directory, micro_vae, _data_config(physworld_tiny, 4), "train", "minilm")
    assert (directory / "index.json").stat().st_mtime_ns == stamp  # served from the prefix, not rebuilt
    assert len(smaller) == 4 and smaller.shapes().shape == (4, 3)
    np.testing.assert_array_equal(smaller[3]["latent"], built[3]["latent"])
    bigger = latent_cache.ensure(directory, micro_vae, _data_config(physworld_tiny, 12), "train", "minilm")
    assert len(bigger) == 12 and (directory / "index.json").stat().st_mtime_ns != stamp
    np.testing.assert_allclose(bigger[3]["latent"], built[3]["latent"], atol=1e-5)  # other batch, same clip

    # Text features streamed in length-sorted chunks equal the encoder's own output, row by row.
    from sora_jax.models import text

    direct = text.make_frozen_encoder("minilm").encode(bigger.captions)
    for row in (0, 7, 11):
        item, length = bigger[row], int(direct.mask[row].sum())
        assert int(item["text_mask"].sum()) == length
        np.testing.assert_allclose(item["text_tokens"][:length], direct.tokens[row, :length], atol=2e-3)
        np.testing.assert_allclose(item["text_pooled"], direct.pooled[row], atol=1e-5)


@pytest.mark.parametrize("preset", ["demo", "cpu"])
def test_no_ladder_rung_sees_a_clip_more_than_about_four_times(preset):
    config = scaling.get_config(preset)
    for row in ladder.table(config):
        assert row["epochs"] <= config.ladder.max_epochs + 1e-9, row
        assert row["clips"] >= builder.variant("tiny").num_examples["train"] and row["clips"] % 1024 == 0
    # The epoch count follows the batches BatchPlan actually cuts (bigger ones for short clips).
    rung = ladder.rung_config(config, "32x")
    assert plan.clips_per_step(rung) > rung.data.batch_size


BUILD_IN_PROCESSES = r"""
import sys, jax
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[1]}", num_processes=2, process_id=int(sys.argv[2]))
import ml_collections
from sora_jax.train import latent_cache
data = ml_collections.ConfigDict(dict(dataset="physworld/tiny", data_dir=sys.argv[4], train_split="train",
                                      eval_split="validation", num_train=11))
source = latent_cache.ensure(sys.argv[3], sys.argv[5], data, "train", "minilm")
print("records", len(source), "process", jax.process_index())
"""


def test_two_processes_build_one_latent_cache_equal_to_one_process(physworld_tiny, micro_vae, tmp_path):
    """Each process encodes its share (records 0, 2, ... and 1, 3, ...: latents and captions) into
    one set of files; the cache equals a single process's up to batch composition."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, free_port

    port = free_port()
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    shared = tmp_path / "shared" / "train"
    workers = [subprocess.Popen([sys.executable, "-c", BUILD_IN_PROCESSES, str(port), str(i), str(shared),
                                 str(physworld_tiny), str(micro_vae)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0 and "records 11" in out, err[-3000:]
    assert sorted(p.name for p in shared.iterdir()) == ["index.json", "latents.npy", "text_mask.npy", "text_pooled.npy",
                                                        "text_tokens.npy"]  # no caption shards left behind
    two = latent_cache.LatentSource(shared)
    one = latent_cache.ensure(tmp_path / "single" / "train", micro_vae, _data_config(physworld_tiny, 11), "train",
                              "minilm")
    assert two.captions == one.captions and two.index["offsets"] == one.index["offsets"]
    assert two.fingerprint == one.fingerprint
    for i in range(11):
        a, b = two[i], one[i]
        np.testing.assert_allclose(a["latent"], b["latent"], atol=1e-5)
        np.testing.assert_array_equal(a["text_mask"], b["text_mask"])
        np.testing.assert_allclose(a["text_tokens"], b["text_tokens"], atol=2e-3)
        np.testing.assert_allclose(a["text_pooled"], b["text_pooled"], atol=1e-5)
