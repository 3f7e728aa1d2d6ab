"""The AMX matmul kernel (C++ FFI) against an f32 matmul of the same bf16 operands: every
combination of transposed operands, ragged M and K (not multiples of 16 / 32), with and without
bias; `mixed_linear` runs a layer's three products on it under mixed precision and its values and
gradients match XLA's bf16 dots; bad shapes are refused with a reason."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.kernels import amx_matmul
from sora_jax.models import mixed_linear as mixed_linear_lib

needs_amx = pytest.mark.skipif(not amx_matmul.available(),
                               reason=f"AMX matmul unavailable: {amx_matmul.unavailable_reason()}")


@needs_amx
@pytest.mark.parametrize("m,k,n", [(64, 32, 16), (100, 70, 48), (33, 385, 80), (300, 1000, 272)])
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_the_kernel_equals_an_f32_product_of_the_bf16_operands(m, k, n, transpose_a, transpose_b):
    rng = np.random.default_rng(m + k + n)
    a = jnp.asarray(rng.normal(size=(k, m) if transpose_a else (m, k)), jnp.bfloat16)
    b = jnp.asarray(rng.normal(size=(n, k) if transpose_b else (k, n)), jnp.bfloat16)
    bias = jnp.asarray(rng.normal(size=(n,)), jnp.float32)
    exact = jnp.matmul((a.T if transpose_a else a).astype(jnp.float32), (b.T if transpose_b else b).astype(jnp.float32),
                       precision="highest")
    got = jax.jit(amx_matmul.matmul, static_argnums=(3, 4))(a, b, bias, transpose_a, transpose_b)
    assert got.dtype == jnp.float32 and got.shape == (m, n)
    # The products of bf16 operands are exact in f32; only the order of the f32 additions differs.
    np.testing.assert_allclose(got, exact + bias, rtol=0, atol=2e-5 * np.sqrt(k) * float(jnp.max(jnp.abs(exact))))
    np.testing.assert_allclose(amx_matmul.matmul(a, b, None, transpose_a, transpose_b), got - bias, atol=1e-4)


@needs_amx
def test_bad_operands_are_refused_with_a_reason():
    x = jnp.ones((64, 32), jnp.bfloat16)
    with pytest.raises(ValueError, match="2D bf16 operands"):
        amx_matmul.matmul(x.astype(jnp.float32), x.T)
    with pytest.raises(ValueError, match="contracted sizes must match"):
        amx_matmul.matmul(x, x)
    with pytest.raises(ValueError, match="multiple of 16"):
        amx_matmul.matmul(x, jnp.ones((32, 24), jnp.bfloat16))
    assert not amx_matmul.supports(32, 64, 64) and not amx_matmul.supports(64, 64, 40)  # few rows; N % 16


@needs_amx
def test_mixed_linear_runs_on_the_kernel_and_matches_xla_dots(monkeypatch):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 40, 96)), jnp.float32)  # 160 rows, 96 features in, 2 x 64 out
    kernel = jnp.asarray(rng.normal(size=(96, 2, 64)) / 10, jnp.float32)
    bias = jnp.asarray(rng.normal(size=(2, 64)), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(4, 40, 2, 64)), jnp.float32)

    def layer(x, kernel, bias):
        return mixed_linear_lib.mixed_linear(x, kernel, bias, 1, jnp.bfloat16)

    def value_and_grads(x, kernel, bias):
        grads = jax.grad(lambda *a: jnp.sum(layer(*a) * cotangent), (0, 1, 2))(x, kernel, bias)
        return layer(x, kernel, bias), grads

    text = jax.jit(value_and_grads).lower(x, kernel, bias).as_text()
    assert len(re.findall(r"sora_amx_matmul", text)) == 3 and "dot_general" not in text  # y, dx, dW
    on_amx = jax.jit(value_and_grads)(x, kernel, bias)
    monkeypatch.setattr(amx_matmul, "supports", lambda *shape: False)
    on_xla = jax.jit(value_and_grads)(x, kernel, bias)
    for got, want in zip(jax.tree.leaves(on_amx), jax.tree.leaves(on_xla)):
        assert got.dtype == want.dtype == jnp.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(jnp.max(jnp.abs(want))))
