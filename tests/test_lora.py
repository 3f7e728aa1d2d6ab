"""LoRA: adapters on the DiT's dense layers that start as the identity and fold into the kernels
exactly; a LoRA run trains and checkpoints only the adapters, records its base by fingerprint,
samples on that base (`--adapter`) or merged (`export --merge`), and refuses any other base."""

import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax import checkpoints
from sora_jax.models import lora
from sora_jax.models.dit import DiT
from sora_jax.pipelines import adapters
from sora_jax.pipelines import t2v as t2v_pipeline
from sora_jax.train import trainer, validate
from tests.conftest import micro_t2v_config, run_cli

SPEC = lora.LoraSpec(rank=4, alpha=8.0)


def _inputs(seed=1):
    x = jax.random.normal(jax.random.PRNGKey(seed), (2, 2, 4, 4, 4))
    t = jnp.array([[0.3, 0.7], [0.9, 0.1]])
    text = {"ids": jnp.ones((2, 16), jnp.int32), "mask": jnp.ones((2, 16), bool)}
    return x, t, text


def _noisy(tree, seed, scale):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(treedef, [a + scale * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


@pytest.mark.parametrize("layout", ["full", "factorized"])
def test_adapters_start_as_identity_and_merge_exactly(layout):
    kwargs = dict(latent_channels=4, width=64, depth=2, heads=2, text_encoder="bytes", text_length=16, layout=layout)
    adapted, plain = DiT(**kwargs, lora=SPEC), DiT(**kwargs)
    x, t, text = _inputs()
    params = nn.unbox(adapted.init(jax.random.PRNGKey(0), x, t, text)["params"])
    base, adapter_params = lora.split(params)
    # Every targeted layer got exactly an (A, B) pair; nothing else did.
    layers = lora.layers(adapter_params, "*")
    attention = "attention" if layout == "full" else "spatial_attention"
    assert f"block_0/{attention}/qkv" in layers and "block_1/mlp_out" in layers
    assert not any(name.endswith(("modulation", "final", "patch_embed")) for name in layers)
    assert jax.tree.structure(lora.combine(base, adapter_params)) == jax.tree.structure(params)
    base = _noisy(base, 3, 0.05)  # adaLN-Zero gates are zero at init: perturb, or every output is 0
    fresh = adapted.apply({"params": lora.combine(base, adapter_params)}, x, t, text)
    np.testing.assert_array_equal(fresh, plain.apply({"params": base}, x, t, text))  # B = 0: the base exactly
    trained = lora.combine(base, _noisy(adapter_params, 2, 0.1))
    out = adapted.apply({"params": trained}, x, t, text)
    assert float(jnp.abs(out - plain.apply({"params": base}, x, t, text)).max()) > 1e-2
    np.testing.assert_allclose(out, plain.apply({"params": lora.merge(trained, SPEC)}, x, t, text), atol=1e-5)


def test_fingerprint_names_content():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.zeros(2, np.float32)}
    same = {"b": np.zeros(2, np.float32), "a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    assert lora.fingerprint(tree) == lora.fingerprint(same)
    changed = {"a": {"kernel": tree["a"]["kernel"] + np.float32(1e-7)}, "b": tree["b"]}
    assert lora.fingerprint(changed) != lora.fingerprint(tree)


def _lora_config(base, data_dir, steps=2, **lora_fields):
    config = micro_t2v_config("lora", data_dir, total_steps=steps)
    config.lora.base = str(base)
    config.lora.rank, config.lora.alpha = 4, 8.0
    for key, value in lora_fields.items():
        config.lora[key] = value
    config.log.every_steps = 1
    config.checkpoint.every_steps = 1
    config.sample.steps = 3
    return config


@pytest.fixture(scope="module")
def lora_run(micro_t2v, physworld_tiny, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lora_run")
    results = trainer.train(_lora_config(micro_t2v, physworld_tiny), workdir, quiet=True)
    return workdir, results


def test_a_lora_run_trains_and_saves_only_adapters(lora_run, micro_t2v):
    workdir, results = lora_run
    base_params, base_meta, _ = checkpoints.load_params(micro_t2v)
    saved, meta, step = checkpoints.load_params(workdir)
    assert step == 2 and lora.split(saved)[0] == {}, "the checkpoint holds adapters only"
    assert results["param_count"] == lora.count(saved) < lora.count(base_params) / 5
    assert meta["config"]["model"]["width"] == base_meta["config"]["model"]["width"]  # the base's model, adopted
    assert meta["lora_base"]["fingerprint"] == lora.fingerprint(base_params) == meta["config"]["lora"][
        "base_fingerprint"]
    # The optimizer state covers the adapters alone: restored in full, Adam's moments match their size.
    with checkpoints._latest_checkpoint(workdir) as (checkpointer, latest):
        state = checkpointer.manager.item_metadata(latest)["state"]
    moments = sum(int(np.prod(m.shape)) for m in jax.tree.leaves(state["opt_state"]))
    assert lora.count(saved) * 2 <= moments <= lora.count(saved) * 2 + 8
    assert "frozen" not in state
    # Trained: some B moved off zero (the base itself is untouched: load_params above read it back).
    assert any(float(np.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(lora.split(saved)[1])
               if leaf.shape[0] == 4)


def test_resuming_continues_the_adapters_bitwise(lora_run, micro_t2v, physworld_tiny, tmp_path):
    workdir, _ = lora_run
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "2")
    trainer.train(_lora_config(micro_t2v, physworld_tiny), resumed, quiet=True)
    a, b = checkpoints.load_params(workdir)[0], checkpoints.load_params(resumed)[0]
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_adapted_sampling_equals_the_merged_export(lora_run, micro_t2v, tmp_path):
    workdir, _ = lora_run
    pipeline, params, _, _ = t2v_pipeline.load(micro_t2v, adapter=workdir)
    merged_dir = adapters.export_merged(workdir, tmp_path / "merged")
    merged_pipeline, merged_params, merged_meta, _ = t2v_pipeline.load(merged_dir)
    assert merged_pipeline.model.lora is None and lora.split(merged_params)[1] == {}
    assert merged_meta["merged_from"]["base_fingerprint"] == lora.fingerprint(checkpoints.load_params(micro_t2v)[0])
    shape = (2, 4, 6, pipeline.model.latent_channels)
    a = pipeline.sample_latents(params, ["a red ball"], shape, seed=0, steps=3)
    b = merged_pipeline.sample_latents(merged_params, ["a red ball"], shape, seed=0, steps=3)
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_another_base_is_refused(lora_run, micro_t2v, physworld_tiny, tmp_path):
    workdir, _ = lora_run
    params, meta, step = checkpoints.load_params(micro_t2v)
    other = checkpoints.write_export(_noisy(params, 5, 1e-3), meta, tmp_path / "other_base", step)
    with pytest.raises(adapters.BaseMismatch, match="fingerprint"):
        t2v_pipeline.load(other, adapter=workdir)
    result = run_cli("sample", f"--workdir={other}", f"--adapter={workdir}", "--prompt=a red ball",
                     f"--out={tmp_path / 'x.mp4'}", "--steps=2", "--frames=5")
    assert result.returncode == 2 and "holds other weights" in result.stderr and not (tmp_path / "x.mp4").exists()
    # Resuming the LoRA run on another base: refused before any work, the run's files untouched.
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    saved = (resumed / "config.json").read_text()
    with pytest.raises(validate.ConfigError, match="lora.base_fingerprint"):
        trainer.train(_lora_config(other, physworld_tiny, steps=3), resumed, quiet=True)
    assert (resumed / "config.json").read_text() == saved


def test_bad_lora_configs_fail_before_work(micro_t2v, micro_vae, physworld_tiny, tmp_path):
    with pytest.raises(validate.ConfigError, match="match no layer.*mlp_in"):
        trainer.train(_lora_config(micro_t2v, physworld_tiny, targets=("*attn/qkv",)), tmp_path / "a", quiet=True)
    with pytest.raises(validate.ConfigError, match="lora.base=.*does not exist"):
        trainer.train(_lora_config(tmp_path / "nowhere", physworld_tiny), tmp_path / "b", quiet=True)
    with pytest.raises(validate.ConfigError, match="not a text-to-video DiT"):
        trainer.train(_lora_config(micro_vae, physworld_tiny), tmp_path / "c", quiet=True)
    config = _lora_config(micro_t2v, physworld_tiny)
    config.init_from = str(micro_t2v)
    with pytest.raises(validate.ConfigError, match="init_from"):
        trainer.train(config, tmp_path / "d", quiet=True)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_export_merge_of_a_plain_run_is_refused(micro_t2v, tmp_path):
    result = run_cli("export", f"--workdir={micro_t2v}", "--merge", f"--out={tmp_path / 'm'}")
    assert result.returncode == 2 and "not a LoRA run" in result.stderr and not (tmp_path / "m").exists()
