"""μP for the DiT: the coordinate check (activations flat across an 8x width range under μP,
growing under the standard parametrization), the per-layer LR multipliers, and a μP run that
records its parametrization and refuses to resume as another."""

import jax
import numpy as np
import pytest

from sora_jax import checkpoints
from sora_jax.models import dit, mup
from sora_jax.train import coord_check, trainer, validate
from tests.conftest import REPO, micro_t2v_config


@pytest.fixture(scope="module")
def coordinates():
    widths = (32, 256)
    return {p: coord_check.coordinate_check(p, widths=widths, steps=4, learning_rate=1e-2)
            for p in ("standard", "mup")}


def test_activations_stay_flat_under_mup_and_grow_under_standard(coordinates):
    mup_sizes, standard = coordinates["mup"], coordinates["standard"]
    for layer in mup_sizes[32]:
        ratio = mup_sizes[256][layer] / mup_sizes[32][layer]
        assert 0.6 < ratio < 1.5, (layer, mup_sizes[32][layer], mup_sizes[256][layer])
    # Standard: the deep blocks' outputs grow several-fold at 8x the width (measured 5.5x), the
    # input layer's shrink (Glorot init).
    assert standard[256]["block_1"] > 3 * standard[32]["block_1"]
    assert standard[256]["patch_embed"] < 0.7 * standard[32]["patch_embed"]


def test_hidden_and_output_layers_get_base_over_width_input_layers_and_vectors_one():
    x = np.zeros((1, 2, 4, 4, 4), np.float32)
    t = np.zeros((1, 2), np.float32)
    text = {"ids": np.ones((1, 8), np.int32), "mask": np.ones((1, 8), bool)}
    model = dit.DiT(latent_channels=4, width=128, depth=1, heads=8, text_width=32, text_length=8,
                    attention_implementation="xla", parametrization="mup")
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, t, text)["params"])
    base = mup.base_model(model, 32)
    assert (base.width, base.heads) == (32, 2)
    multipliers = mup.lr_multipliers(params, jax.eval_shape(lambda: base.init(jax.random.PRNGKey(0), x, t, text)
                                                            ["params"]))
    block = multipliers["block_0"]
    for hidden in (block["attention"]["qkv"]["kernel"], block["attention"]["out"]["kernel"],
                   block["mlp_in"]["kernel"], block["modulation"]["kernel"], multipliers["time_out"]["kernel"],
                   multipliers["final"]["kernel"]):
        assert hidden == 0.25
    for fixed in (multipliers["patch_embed"]["kernel"], multipliers["time_in"]["kernel"],
                  multipliers["text_proj"]["kernel"], block["mlp_in"]["bias"], multipliers["null_text"],
                  block["attention"]["q_norm"]["scale"]):
        assert fixed == 1.0
    with pytest.raises(ValueError, match="not a multiple of head_dim 16"):
        mup.base_model(model, 40)


def test_a_mup_run_records_its_parametrization_and_refuses_another(physworld_tiny, tmp_path):
    config = micro_t2v_config("micro", physworld_tiny, total_steps=2)
    config.vae_workdir = str(REPO / "assets" / "vae_tiny")
    config.model.parametrization, config.model.mup_base_width = "mup", config.model.width // 2
    trainer.train(config, tmp_path / "run", quiet=True)
    checkpointer = checkpoints.Checkpointer(tmp_path / "run")
    saved = checkpointer.read_meta(checkpointer.resume_step())["config"]
    checkpointer.close()
    assert saved["model"]["parametrization"] == "mup"
    config.model.parametrization = "standard"
    config.total_steps = 3
    with pytest.raises(validate.ConfigError, match="model.parametrization: checkpoint 'mup', config 'standard'"):
        trainer.train(config, tmp_path / "run", quiet=True)
    config.model.parametrization, config.model.mup_base_width = "mup", 24
    with pytest.raises(validate.ConfigError, match="mup_base_width=24 must be a positive multiple"):
        validate.check(config, 1)
