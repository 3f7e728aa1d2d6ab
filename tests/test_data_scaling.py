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
