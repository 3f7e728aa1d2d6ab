"""The analytic FLOP and parameter counts against the model itself and XLA's cost analysis."""

import jax
import jax.numpy as jnp
import pytest

from sora_jax.models.dit import DiT
from sora_jax.scaling import flops
from sora_jax.train import throughput

# (width, depth, heads, layout, text encoder, latent (t, h, w), batch[, output conv k])
CONFIGS = [
    (128, 2, 4, "full", "minilm", (5, 8, 14), 4),
    (192, 4, 6, "full", "minilm", (5, 8, 8), 4),
    (256, 3, 8, "factorized", "minilm", (5, 8, 14), 2),
    (96, 3, 3, "full", "bytes", (3, 8, 8), 4),
    (320, 2, 10, "full", "minilm", (1, 16, 16), 8),
    (128, 2, 4, "full", "minilm", (5, 8, 14), 4, 3),
]


def _model_and_inputs(width, depth, heads, layout, encoder, thw, batch, output_conv=0):
    model = DiT(latent_channels=16, width=width, depth=depth, heads=heads, layout=layout, text_encoder=encoder,
                text_length=32, output_conv=output_conv)
    x, t = jnp.zeros((batch, *thw, 16)), jnp.zeros((batch, thw[0]))
    if encoder == "bytes":
        text = {"ids": jnp.zeros((batch, 32), jnp.int32), "mask": jnp.ones((batch, 32), bool)}
    else:
        text = {"tokens": jnp.zeros((batch, 32, 384)), "mask": jnp.ones((batch, 32), bool),
                "pooled": jnp.zeros((batch, 384))}
    shape = flops.DiTShape(width=width, depth=depth, heads=heads, latent_channels=16, layout=layout,
                           text_encoder=encoder, text_length=32, output_conv=output_conv)
    return model, x, t, text, shape


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"d{c[0]}L{c[1]}-{c[3]}-{c[4]}" + "-conv" * (len(c) > 7))
def test_counts_match_the_model_and_xla(config):
    model, x, t, text, shape = _model_and_inputs(*config)
    thw, batch = config[5], config[6]
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, t, text)["params"])
    assert flops.param_counts(shape)["total"] == sum(p.size for p in jax.tree.leaves(params))

    forward = flops._total(flops.forward_flops(shape, thw, batch))
    assert flops.program_flops(lambda p: model.apply({"params": p}, x, t, text), params) == pytest.approx(forward,
                                                                                                          rel=1e-6)

    def loss(p):
        return jnp.mean(model.apply({"params": p}, x, t, text) ** 2)

    train = flops.train_step_flops(shape, thw, batch)
    assert flops.program_flops(jax.grad(loss), params) == pytest.approx(train, rel=0.01)
    real = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    xla = throughput.compiled_flops(jax.jit(jax.grad(loss)).lower(real).compile())
    assert xla == pytest.approx(train, rel=0.10), "XLA counts norms and softmax too, but within 10 %"


def test_sampling_and_attention_terms_scale_as_stated():
    shape = flops.DiTShape(width=128, depth=2, heads=4, latent_channels=16)
    one = flops.sample_flops(shape, (5, 8, 14), steps=10)
    assert flops.sample_flops(shape, (5, 8, 14), steps=10, guidance=4.0) == pytest.approx(2 * one)
    assert flops.sampler_evaluations("heun", 10) == 19
    small, large = flops.forward_flops(shape, (5, 8, 8)), flops.forward_flops(shape, (10, 8, 8))
    assert large["self_attention"] == pytest.approx(4 * small["self_attention"])  # quadratic in tokens
    assert large["token_matmuls"] == pytest.approx(2 * small["token_matmuls"])  # linear in tokens


def test_vae_flops_from_the_jaxpr_grow_with_frames():
    from sora_jax.models.vae import VideoVAE

    vae = VideoVAE.from_variant("micro", spatial=4, temporal=4, latent_channels=4)
    video = jnp.zeros((1, 5, 16, 16, 3))
    params = jax.eval_shape(lambda: vae.init(jax.random.PRNGKey(0), video)["params"])
    short = flops.vae_flops(vae, params, (1, 5, 16, 16, 3))
    long = flops.vae_flops(vae, params, (1, 9, 16, 16, 3))
    assert 1.4 < long / short < 2.0
    assert flops.vae_flops(vae, params, (1, 5, 16, 16, 3), method="decode") > 0


def test_mfu_peaks_come_from_the_datasheet_and_a_cpu_says_its_is_measured():
    assert throughput.datasheet_peak("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert throughput.datasheet_peak("NVIDIA H100 PCIe", "bf16") == 756e12  # the longest prefix wins
    assert throughput.datasheet_peak("NVIDIA A100-SXM4-80GB", "f32") == 156e12  # TF32, XLA's default for f32
    assert throughput.datasheet_peak("TPU v5 lite", "bf16") == 197e12  # v5e
    assert throughput.datasheet_peak("TPU v5", "f32") == 459e12  # v5p: f32 matmuls run as bf16 passes
    assert throughput.datasheet_peak("cpu", "bf16") is None
    assert [throughput.precision_of(d) for d in ("float32", "mixed", "bfloat16")] == ["f32", "bf16", "bf16"]

    class Chip:
        device_kind = "NVIDIA H200"

    peak = throughput.device_peak("bf16", measured_per_device=1e12, devices=[Chip()] * 8)
    assert peak.flops_per_s == 8 * 989e12 and peak.source == "datasheet NVIDIA H200, dense bf16"
    here = throughput.device_peak("f32", measured_per_device=2e11)
    assert here.flops_per_s == 2e11 * jax.device_count() and here.source.startswith("measured f32 matmul ceiling")
