"""Pallas splash attention (the TPU kernel) in interpret mode on this CPU: values and gradients
against XLA's attention in f32 and with bf16 operands, unequal lengths, padding and key masks,
inside the DiT, and under the context-parallel shard_map; `auto` picks each backend's kernel."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.kernels import splash
from sora_jax.models import attention


def _inputs(b, nq, nk, h, d, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, d)), jnp.float32) for n in (nq, nk, nk))
    return q, k, v, jnp.asarray(rng.normal(size=(b, nq, h, d)), jnp.float32)


def _value_and_grads(q, k, v, cotangent, implementation, mask=None, operand_dtype=None):
    def loss(q, k, v):
        return jnp.sum(attention.attend(q, k, v, mask, implementation, operand_dtype) * cotangent)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)


@jax.default_matmul_precision("float32")
@pytest.mark.parametrize("b,nq,nk,h,d,masked", [
    (2, 256, 256, 2, 64, False),  # one block, no padding: the kernel without segment ids
    (1, 140, 300, 2, 32, False),  # unequal lengths, both padded (to 256 and 512: two key blocks)
    (2, 200, 33, 3, 64, True),    # cross-attention: a few right-padded text keys
])
def test_splash_equals_xla_values_and_gradients_in_f32(b, nq, nk, h, d, masked):
    q, k, v, cotangent = _inputs(b, nq, nk, h, d)
    mask = (jnp.arange(nk)[None, :] < jnp.array([[nk], [5]][:b]))[:, None, None, :] if masked else None
    expected = _value_and_grads(q, k, v, cotangent, "xla", mask)
    got = _value_and_grads(q, k, v, cotangent, "splash", mask)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    for g, e in zip(got[1], expected[1]):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(g, e, atol=1e-4 * float(jnp.max(jnp.abs(e))))


def test_splash_with_bf16_operands_and_bf16_inputs():
    """Mixed precision (f32 in and out, bf16 matmul operands) and bf16 throughout: within bf16's
    rounding of XLA's f32 attention, outputs and gradients in the inputs' dtype."""
    q, k, v, cotangent = _inputs(1, 140, 300, 2, 64, seed=3)
    expected = _value_and_grads(q, k, v, cotangent, "xla")
    mixed = _value_and_grads(q, k, v, cotangent, "splash", operand_dtype=jnp.bfloat16)
    as_bf16 = [x.astype(jnp.bfloat16) for x in (q, k, v, cotangent)]
    bf16 = _value_and_grads(*as_bf16, "splash")
    for got, dtype in ((mixed, jnp.float32), (bf16, jnp.bfloat16)):
        assert all(g.dtype == dtype for g in got[1])
        for g, e in zip(got[1], expected[1]):
            error = float(jnp.max(jnp.abs(g.astype(jnp.float32) - e))) / float(jnp.max(jnp.abs(e)))
            assert error < 3e-2, error


def test_block_sizes_are_powers_of_two_from_128_to_512():
    assert [splash.block_size(n) for n in (1, 33, 128, 129, 300, 512, 4096)] == [128, 128, 128, 256, 512, 512, 512]
    with pytest.raises(ValueError, match="key mask"):
        splash.splash_attention(*_inputs(1, 8, 8, 1, 8)[:3], mask=jnp.ones((1, 8, 8), bool))


def test_splash_dit_equals_xla_dit():
    """A DiT with splash attention (self-attention over 140 spacetime tokens, cross-attention to
    padded text) computes what the XLA DiT computes."""
    from sora_jax.models import dit

    kwargs = dict(latent_channels=4, width=64, depth=2, heads=2, text_encoder="minilm", text_length=16,
                  patch=(1, 2, 2))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 8, 14, 4)), jnp.float32)
    t = jnp.asarray(rng.random((2, 5)), jnp.float32)
    text = {"tokens": jnp.asarray(rng.normal(size=(2, 16, 384)), jnp.float32),
            "mask": jnp.arange(16)[None] < jnp.array([[16], [6]]),
            "pooled": jnp.asarray(rng.normal(size=(2, 384)), jnp.float32)}
    reference = dit.DiT(**kwargs)
    params = reference.init(jax.random.PRNGKey(0), x, t, text)["params"]
    params = jax.tree.map(lambda p: p + 0.02 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    with jax.default_matmul_precision("float32"):
        expected = reference.apply({"params": params}, x, t, text)
        got = dit.DiT(**kwargs, attention_implementation="splash").apply({"params": params}, x, t, text)
    np.testing.assert_allclose(got, expected, atol=1e-4 * float(jnp.max(jnp.abs(expected))))


def test_auto_picks_the_backends_kernel():
    assert [attention.resolve("auto", backend) for backend in ("gpu", "tpu", "cpu")] == ["cudnn", "splash", "flash"]
    assert attention.resolve("auto") == "flash"  # this CPU
    assert attention.resolve("xla", "tpu") == "xla"  # a named kernel is kept
    q, k, v, _ = _inputs(1, 64, 64, 2, 16)
    np.testing.assert_array_equal(attention.attend(q, k, v, implementation="auto"),
                                  attention.attend(q, k, v, implementation="flash"))


CONTEXT_PARALLEL = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from sora_jax.models import attention
jax.config.update("jax_default_matmul_precision", "float32")
mesh = jax.make_mesh((2, 4), ("data", "context"))
rng = np.random.default_rng(0)
q, k, v, w = (jnp.asarray(rng.normal(size=(2, 256, 2, 32)), jnp.float32) for _ in range(4))
def loss(implementation):
    return lambda q, k, v: jnp.sum(attention.attend(q, k, v, implementation=implementation) * w)
reference = jax.jit(jax.value_and_grad(loss("xla"), argnums=(0, 1, 2)))(q, k, v)
grad = jax.jit(jax.value_and_grad(loss("splash"), argnums=(0, 1, 2)))
spec = NamedSharding(mesh, P("data", "context", None, None))
with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    lowered = grad.lower(*(jax.device_put(x, spec) for x in (q, k, v)))
    eight = lowered.compile()(*(jax.device_put(x, spec) for x in (q, k, v)))
text = lowered.as_text()
print(json.dumps({"gathered": "all_gather" in text or "all-gather" in text,
                  "sharded": len(eight[1][0].sharding.device_set),
                  "difference": max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
                                    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(eight)))}))
"""


def test_context_parallel_splash_on_eight_devices_equals_xla_on_one():
    """Tokens split over `context` (8 forced CPU devices, data 2 x context 4): each device runs the
    splash kernel on its 64 queries against all 256 gathered keys (queries padded to a block)."""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", CONTEXT_PARALLEL], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["gathered"] and result["sharded"] == 8, result
    assert result["difference"] < 1e-4, result
