"""The fused AMX attention kernel (C++ FFI) against XLA's f32 attention and the pure-JAX flash kernel
with the same bf16 operands: values and all three gradients, with padding (token counts that are
not multiples of 32), fewer or more keys than queries, head dims 32-128, under vmap; `attend`
picks it for `flash` under mixed precision; a machine that cannot build it falls back with a reason."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.kernels import amx_attention, cpu_ffi
from sora_jax.models import attention

needs_amx = pytest.mark.skipif(not amx_attention.available(),
                               reason=f"AMX attention unavailable: {amx_attention.unavailable_reason()}")


def _errors(fn, q, k, v, cotangent):
    """Max abs error of fn's output and gradients against f32 XLA attention."""
    def loss(f, *a):
        return jnp.sum(f(*a) * cotangent)

    reference = jax.nn.dot_product_attention
    want = (reference(q, k, v), *jax.grad(lambda *a: loss(reference, *a), argnums=(0, 1, 2))(q, k, v))
    got = (fn(q, k, v), *jax.grad(lambda *a: loss(fn, *a), argnums=(0, 1, 2))(q, k, v))
    assert all(g.dtype == jnp.float32 and g.shape == w.shape for g, w in zip(got, want))
    return np.array([float(jnp.max(jnp.abs(g - w))) for g, w in zip(got, want)])


@needs_amx
@jax.default_matmul_precision("float32")
@pytest.mark.parametrize("b,nq,nk,h,d", [(1, 64, 64, 1, 64), (2, 100, 77, 3, 64), (1, 40, 50, 2, 32),
                                         (1, 33, 130, 1, 128)])
def test_fused_kernel_is_as_accurate_as_the_pure_jax_bf16_kernel(b, nq, nk, h, d):
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, d)), jnp.float32) for n in (nq, nk, nk))
    cotangent = jnp.asarray(rng.normal(size=(b, nq, h, d)), jnp.float32)
    fused = _errors(amx_attention.amx_attention, q, k, v, cotangent)
    pure_jax = _errors(lambda q, k, v: attention.flash_attention(q, k, v, jnp.bfloat16), q, k, v, cotangent)
    # Both round operands to bf16 (relative step 2^-8): errors of a few 1e-3 at unit scale.
    assert fused.max() < 2e-2, fused
    assert np.all(fused <= 2 * pure_jax + 2e-3), (fused, pure_jax)


@needs_amx
def test_bf16_inputs_give_bf16_outputs_and_gradients_close_to_f32():
    """The `bfloat16` model dtype: q, k, v arrive in bf16 and `flash` takes the fused kernel."""
    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 70, 2, 64)), jnp.bfloat16) for _ in range(3))
    fn = lambda q, k, v: attention.attend(q, k, v, implementation="flash")
    out, grads = fn(q, k, v), jax.grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32) ** 2), argnums=(0, 1, 2))(q, k, v)
    assert out.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in grads)
    f32 = [x.astype(jnp.float32) for x in (q, k, v)]
    reference = jax.grad(lambda *a: jnp.sum(jax.nn.dot_product_attention(*a) ** 2), argnums=(0, 1, 2))(*f32)
    np.testing.assert_allclose(out.astype(jnp.float32), jax.nn.dot_product_attention(*f32), atol=2e-2)
    for g, r in zip(grads, reference):
        assert float(jnp.max(jnp.abs(g.astype(jnp.float32) - r))) < 0.03 * float(jnp.max(jnp.abs(r)))


@needs_amx
def test_fused_kernel_under_vmap_equals_a_loop():
    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.normal(size=(3, 1, 48, 2, 32)), jnp.float32) for _ in range(3))
    got = jax.vmap(amx_attention.amx_attention)(q, k, v)
    np.testing.assert_allclose(got, jnp.stack([amx_attention.amx_attention(*x) for x in zip(q, k, v)]), atol=1e-6)


@needs_amx
def test_attend_picks_the_fused_kernel_for_flash_with_bf16_operands_only():
    x = jax.ShapeDtypeStruct((1, 64, 2, 64), jnp.float32)

    def lowered(implementation, operand_dtype):
        fn = lambda q: attention.attend(q, q, q, implementation=implementation, operand_dtype=operand_dtype)
        return jax.jit(jax.grad(lambda q: fn(q).sum())).lower(x).as_text()

    assert "sora_amx_attention_forward" in lowered("flash", jnp.bfloat16)
    assert "sora_amx_attention_backward" in lowered("flash", jnp.bfloat16)
    assert "sora_amx_attention" not in lowered("flash", None)  # f32 operands: the pure-JAX kernel
    assert "sora_amx_attention" not in lowered("flash_jax", jnp.bfloat16)


@needs_amx
def test_head_dims_the_tiles_cannot_take_are_refused_and_flash_falls_back():
    x = jnp.ones((1, 16, 1, 48), jnp.float32)
    assert not amx_attention.supports(x, x, x)
    assert not amx_attention.supports(x[..., :32], x[..., :32], x)  # values of another head dim
    with pytest.raises(ValueError, match=r"cannot take q \(1, 16, 1, 48\)"):
        amx_attention.amx_attention(x, x, x)
    np.testing.assert_allclose(attention.attend(x, x, x, implementation="flash", operand_dtype=jnp.bfloat16), x)


def test_a_failing_compiler_or_the_switch_leaves_a_reason_and_no_kernel(monkeypatch, tmp_path):
    """What a machine without a working g++ sees: a warning, `available()` False, and `flash`
    running the pure-JAX kernel (nothing is loaded or registered)."""
    load = amx_attention._load.__wrapped__
    monkeypatch.setenv("SORA_JAX_AMX_ATTENTION", "0")
    assert load() == "disabled by SORA_JAX_AMX_ATTENTION=0"
    monkeypatch.setenv("SORA_JAX_AMX_ATTENTION", "1")
    if not set(cpu_ffi.CPU_FLAGS) <= cpu_ffi.cpu_flags():
        assert "the CPU lacks" in load()
        return
    monkeypatch.setenv("SORA_JAX_KERNEL_CACHE", str(tmp_path))  # nothing cached: it must compile
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.warns(UserWarning, match="AMX attention unavailable"):
        assert load().startswith("compiling amx_attention.cc failed")
    assert not list(tmp_path.glob("*.so"))


CONTEXT_PARALLEL = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from sora_jax.models import attention
mesh = jax.make_mesh((2, 4), ("data", "context"))
rng = np.random.default_rng(0)
q, k, v, w = (jnp.asarray(rng.normal(size=(2, 64, 2, 64)), jnp.float32) for _ in range(4))
def loss(q, k, v):
    return jnp.sum(attention.attend(q, k, v, implementation="flash", operand_dtype=jnp.bfloat16) * w)
grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
one = grad(q, k, v)
spec = NamedSharding(mesh, P("data", "context", None, None))
with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    lowered = grad.lower(*(jax.device_put(x, spec) for x in (q, k, v)))
    eight = lowered.compile()(*(jax.device_put(x, spec) for x in (q, k, v)))
text = lowered.as_text()
print(json.dumps({"fused": "sora_amx_attention_backward" in text,
                  "gathered": "all_gather" in text or "all-gather" in text,
                  "difference": max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
                                    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)))}))
"""


@needs_amx
def test_context_parallel_fused_attention_on_eight_devices_equals_one():
    """Tokens split over `context` (keys and values all-gathered): each device runs the fused
    kernel on its queries; loss and gradients equal the one-device run up to f32 summation order
    (dK and dV are summed over the shards)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", CONTEXT_PARALLEL], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["fused"] and result["gathered"], result
    assert result["difference"] < 1e-5, result
