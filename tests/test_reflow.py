"""Reflow distillation at micro scale: a teacher's (noise, sample) pairs are a latent cache with the
noise beside it, reproducible from the teacher; a student trains on them from the teacher's
weights and samples in its configured 4 steps, without guidance, in every prompting mode, given
frames coming back."""

import json

import numpy as np
import pytest

from sora_jax import generate
from sora_jax.data import physworld
from sora_jax.evaluation.metrics import psnr
from sora_jax.pipelines import t2v as t2v_pipeline
from sora_jax.train import reflow_pairs, trainer, validate
from tests.conftest import micro_t2v_config


@pytest.fixture(scope="module")
def pairs(micro_t2v, tmp_path_factory):
    return reflow_pairs.make(micro_t2v, tmp_path_factory.mktemp("reflow") / "pairs", count=24, steps=2, batch=8)


def test_pairs_are_the_teachers_samples_of_their_noise(pairs, micro_t2v):
    assert len(pairs) == 24 and "noise" in pairs.batch_keys
    item = pairs[4]
    assert item["noise"].shape == item["latent"].shape
    pipeline, params, _, _ = t2v_pipeline.load(micro_t2v)
    again = pipeline.sample_latents(params, [item["caption"]], item["latent"].shape, steps=2, guidance=4.0,
                                    noise=item["noise"][None])
    np.testing.assert_allclose(again[0], item["latent"], atol=1e-4)
    index = json.loads((pairs.directory / "index.json").read_text())
    assert index["teacher"]["steps"] == 2 and index["teacher"]["guidance"] == 4.0


def _student_config(pairs_dir, data_dir):
    config = micro_t2v_config("reflow", data_dir, total_steps=2, cache_limit=8)
    config.distill.pairs = str(pairs_dir)
    return config


def test_a_student_trains_on_pairs_and_samples_in_four_steps(pairs, micro_t2v, physworld_tiny, tmp_path):
    results = trainer.train(_student_config(pairs.directory, physworld_tiny), tmp_path / "student", quiet=True)
    assert results["init_from"]["loaded"] > 10 and not results["init_from"]["fresh"]  # the teacher's weights
    generator = generate.Generator(tmp_path / "student")
    assert generator.config.sample.steps == 4 and generator.config.sample.guidance == 1.0
    assert generator.config.model.width == generate.Generator(micro_t2v).config.model.width
    clip, other = physworld.render_clip([2, 5], 9, 32, 56).video, physworld.render_clip([3, 5], 9, 32, 56).video
    recon = generator.decode(generator.encode(clip))
    given = {"t2v": {}, "t2i": {}, "i2v": {"image": clip[:1]}, "extend_forward": {"video": clip},
             "extend_backward": {"video": clip}, "loop": {"video": clip}, "connect": {"video": clip, "video2": other},
             "edit": {"video": clip}}
    assert set(given) == set(generate.MODES)
    for mode, inputs in given.items():
        frames = 9 if mode in ("t2v", "i2v") else 8
        result = generator.generate(generate.Request(prompt="a red ball", enrich=False, mode=mode, frames=frames,
                                                     **inputs))
        assert result.meta["steps"] == 4, mode
        video = result.video
        if mode == "i2v":
            assert psnr(recon[0], video[0]) >= 30
        elif mode in ("extend_forward", "loop", "connect"):
            assert psnr(recon, video[:9]) >= 30, mode  # the given video comes back first
        elif mode == "extend_backward":
            assert psnr(recon[1:], video[-8:]) >= 30


def test_pairs_that_are_not_pairs_are_refused(micro_t2v, physworld_tiny, tmp_path):
    with pytest.raises(validate.ConfigError, match="no reflow pairs"):
        trainer.train(_student_config(tmp_path / "nowhere", physworld_tiny), tmp_path / "a", quiet=True)
    with pytest.raises(validate.ConfigError, match="a latent cache, not reflow pairs"):
        trainer.train(_student_config(micro_t2v / "latent_cache" / "train", physworld_tiny), tmp_path / "b",
                      quiet=True)
