"""Bad configs fail before anything compiles, in one line naming the field and what is valid."""

import pytest

from sora_jax.configs import scaling, t2v, vae
from sora_jax.train import validate
from tests.conftest import REPO, run_cli

VAE_DIR = str(REPO / "assets" / "vae_tiny")


def _t2v(**changes):
    config = t2v.get_config("micro")
    config.vae_workdir = VAE_DIR
    return _apply(config, changes)


def _vae(**changes):
    return _apply(vae.get_config("tiny"), changes)


def _ladder(**changes):
    config = scaling.get_config("cpu,budget=4x")
    config.vae_workdir = VAE_DIR
    return _apply(config, changes)


def _apply(config, changes):
    for key, value in changes.items():
        node = config
        *parents, leaf = key.split("__")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


CASES = [
    (_t2v(total_steps=0), "total_steps=0 must be positive"),
    (_t2v(data__batch_size=-4), "data.batch_size=-4 must be positive"),
    (_t2v(data__batch_size=6), "must divide by mesh data x fsdp (4)"),
    (_t2v(optimizer__grad_accum_steps=3), "x optimizer.grad_accum_steps (3) = 12"),
    (_t2v(mesh__data=3), "mesh: mesh"),
    (_t2v(mesh__data=-1, mesh__fsdp=-1), "only one axis may be -1"),
    (_t2v(mesh__tensor=4, mesh__data=1), "model.heads=2 does not divide by mesh.tensor=4"),
    (_t2v(model__heads=3), "model.width=64 does not divide by model.heads=3"),
    (_t2v(model__width=60, model__heads=4), "must be even (rotary pairs)"),
    (_t2v(model__layout="axial"), "valid: full, factorized"),
    (_t2v(model__remat="some"), "valid: none, full, dots, dots_no_batch"),
    (_t2v(model__dtype="float16"), "valid: float32, bfloat16"),
    (_t2v(model__text_encoder="clip"), "valid: bytes, minilm"),
    (_t2v(model__attention_implementation="ring"), "valid: auto, xla, cudnn, splash, chunked, flash"),
    (_t2v(model__patch=(1, 0, 2)), "three positive ints"),
    (_t2v(flow__text_dropout=1.5), "flow.text_dropout=1.5 must be in [0, 1]"),
    (_t2v(flow__tasks__t2v=-1.0), "must be >= 0"),
    (_t2v(vae_workdir="/nonexistent/vae"), "train the VAE first"),
    (_t2v(sample__steps=0), "sample.steps=0 must be positive"),
    (_t2v(data__dataset="physworld/huge"), "valid: physworld/tiny"),
    (_t2v(optimizer__schedule="linear"), "valid: constant, constant_cooldown, cosine"),
    (_t2v(optimizer__ema_decay=1.0), "optimizer.ema_decay=1.0 must be in [0, 1)"),
    (_t2v(optimizer__learning_rate=0.0), "optimizer.learning_rate=0.0 must be positive"),
    (_t2v(task="gan"), "valid: vae, t2v"),
    (_vae(data__crop_frames=8), "nearest valid: 5 or 9"),
    (_vae(data__crop_side=18), "nearest valid: 16 or 20"),
    (_vae(model__spatial_compression=16), "valid: 4, 8"),
    (_vae(model__temporal_compression=3), "valid: 1, 2, 4"),
    (_vae(model__latent_channels=32), "must be in 4..16"),
    (_vae(model__patch=8), "valid: 1, 2 or 4"),
    (_vae(loss__kl_weight=-1.0), "loss.kl_weight=-1.0 must be >= 0"),
    (_t2v(init_from="/nonexistent/run"), "init_from='/nonexistent/run' does not exist"),
    (_ladder(data__batch_size=32), "does not spend ladder.compute_flops"),
]


@pytest.mark.parametrize("config,message", CASES, ids=[m[:40] for _, m in CASES])
def test_bad_config_is_refused_with_the_field_named(config, message):
    with pytest.raises(validate.ConfigError) as error:
        validate.check(config, device_count=4)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_good_configs_pass():
    validate.check(_t2v(), device_count=4)
    validate.check(_vae(), device_count=1)
    validate.check(t2v.get_config("tiny"), device_count=1)  # the committed VAE is found from the repo root
    validate.check(_ladder(), device_count=4)


def test_cli_reports_a_bad_config_in_one_line_before_compiling(tmp_path):
    result = run_cli("train", "--config=sora_jax/configs/vae.py:tiny", f"--workdir={tmp_path}",
                     "--config.data.crop_frames=8")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "data.crop_frames=8" in result.stderr and not (tmp_path / "checkpoints").exists()
