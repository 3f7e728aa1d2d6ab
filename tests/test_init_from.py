"""A checkpoint of a different model is refused with the differing fields named; `init_from`
starts a new run from another run's weights wherever path and shape match."""

import shutil

import numpy as np
import pytest

from sora_jax import checkpoints
from sora_jax.train import trainer, validate
from tests.conftest import micro_vae_config


def _micro_config(data_dir, **model):
    config = micro_vae_config(data_dir, total_steps=1)
    for key, value in model.items():
        config.model[key] = value
    return config


def test_resuming_a_different_model_names_the_fields(micro_vae, physworld_tiny, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(micro_vae, workdir)
    saved = (workdir / "config.json").read_text()
    with pytest.raises(validate.ConfigError, match=r"model.latent_channels: checkpoint 4, config 8.*init_from"):
        trainer.train(_micro_config(physworld_tiny, latent_channels=8), workdir, quiet=True)
    assert (workdir / "config.json").read_text() == saved, "the refused run's record is untouched"


def test_init_from_loads_matching_arrays_and_keeps_the_rest_fresh(micro_vae, physworld_tiny, tmp_path):
    config = _micro_config(physworld_tiny, latent_channels=8)
    config.init_from = str(micro_vae)
    results = trainer.train(config, tmp_path / "finetune", quiet=True)
    report = results["init_from"]
    assert report["loaded"] > 10 and report["fresh"] and not report["ignored"]
    assert all("kernel" in path or "bias" in path or "scale" in path for path in report["fresh"])


def test_partial_load_matches_by_path_and_shape():
    target = {"a": {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}, "new": np.ones(4, np.float32)}
    source = {"a": {"w": np.full((2, 3), 7.0), "b": np.full(5, 7.0)}, "old": np.ones(2)}
    params, report = checkpoints.partial_load(target, source)
    assert np.all(params["a"]["w"] == 7.0) and params["a"]["w"].dtype == np.float32
    assert np.all(params["a"]["b"] == 0.0) and np.all(params["new"] == 1.0)
    assert report == {"loaded": 1, "fresh": ["a.b", "new"], "ignored": ["old"]}


def test_init_from_a_missing_path_fails_before_anything_runs(physworld_tiny, tmp_path):
    config = _micro_config(physworld_tiny)
    config.init_from = str(tmp_path / "nowhere")
    with pytest.raises(validate.ConfigError, match="init_from"):
        validate.check(config, 1)
