"""The chunked (memory-efficient) kernel equals XLA's attention, values and gradients, with and
without masks, at chunk sizes that do not divide the sequence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.models import attention


@pytest.mark.parametrize("b,nq,nk,h,d,chunk", [(2, 37, 37, 3, 16, 8), (1, 64, 20, 2, 8, 16), (2, 5, 9, 2, 4, 4)])
@jax.default_matmul_precision("float32")  # on a GPU, f32 matmuls would otherwise take TF32
def test_chunked_equals_xla(b, nq, nk, h, d, chunk):
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, d)), jnp.float32) for n in (nq, nk, nk))
    mask = jnp.asarray(rng.random((b, 1, 1, nk)) > 0.3).at[..., 0].set(True)
    for m in (None, mask):
        reference = jax.nn.dot_product_attention(q, k, v, mask=m)
        np.testing.assert_allclose(attention.chunked_attention(q, k, v, m, chunk=chunk), reference, atol=2e-6)

        def loss(fn, q, k, v):
            return (fn(q, k, v) ** 2).sum()

        expected = jax.grad(lambda *a: loss(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=m), *a),
                            argnums=(0, 1, 2))(q, k, v)
        got = jax.grad(lambda *a: loss(lambda q, k, v: attention.chunked_attention(q, k, v, m, chunk=chunk), *a),
                       argnums=(0, 1, 2))(q, k, v)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=2e-5)


@jax.default_matmul_precision("float32")
@pytest.mark.parametrize("b,nq,nk,h,d,block", [(2, 37, 37, 3, 16, 8), (1, 64, 20, 2, 8, 16), (1, 24, 24, 2, 8, 256)])
def test_flash_equals_xla_values_and_gradients(b, nq, nk, h, d, block):
    """Blocks that do not divide the queries (padding), fewer keys than queries, one block."""
    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, d)), jnp.float32) for n in (nq, nk, nk))
    cotangent = jnp.asarray(rng.normal(size=(b, nq, h, d)), jnp.float32)

    def loss(fn, q, k, v):
        return jnp.sum(fn(q, k, v) * cotangent)

    expected = jax.value_and_grad(lambda *a: loss(jax.nn.dot_product_attention, *a), argnums=(0, 1, 2))(q, k, v)
    got = jax.value_and_grad(lambda *a: loss(lambda q, k, v: attention.flash_attention(q, k, v, block=block), *a),
                             argnums=(0, 1, 2))(q, k, v)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    for g, e in zip(got[1], expected[1]):
        np.testing.assert_allclose(g, e, atol=2e-5)


def test_flash_with_bf16_operands_stays_close_and_returns_the_input_dtype():
    """Mixed precision: f32 in and out, bf16 matmul operands, f32 softmax."""
    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(rng.normal(size=(1, 96, 2, 32)), jnp.float32) for _ in range(3))
    expected = jax.nn.dot_product_attention(q, k, v)
    grads = jax.grad(lambda q: jnp.sum(attention.flash_attention(q, k, v, jnp.bfloat16, block=32) ** 2))(q)
    got = attention.flash_attention(q, k, v, jnp.bfloat16, block=32)
    assert got.dtype == jnp.float32 and grads.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, atol=2e-2)
    np.testing.assert_allclose(grads, jax.grad(lambda q: jnp.sum(jax.nn.dot_product_attention(q, k, v) ** 2))(q),
                               atol=5e-2)


def test_bf16_rounding_of_the_flash_kernel_is_round_to_nearest():
    """Half-up rounding on the bits equals XLA's round-to-nearest-even except on exact ties, keeps
    infinities, and has no bias (truncation would shrink every weight by ~0.2 %)."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(np.concatenate([rng.normal(size=20000) * 10.0 ** rng.integers(-30, 30, 20000),
                                    [np.inf, -np.inf, 0.0, -0.0, 3.4e38]]), jnp.float32)
    got, expected = attention._to_operand(x, jnp.bfloat16), x.astype(jnp.bfloat16)
    assert got.dtype == jnp.bfloat16
    tie = (np.asarray(jax.lax.bitcast_convert_type(x, jnp.uint32)) & 0xFFFF) == 0x8000
    np.testing.assert_array_equal(np.asarray(got.astype(jnp.float32))[~tie],
                                  np.asarray(expected.astype(jnp.float32))[~tie])
    weights = jnp.exp(-jnp.asarray(rng.uniform(0, 8, 100000), jnp.float32))
    assert abs(float(jnp.mean(attention._to_operand(weights, jnp.bfloat16).astype(jnp.float32) / weights)) - 1) < 1e-4
    np.testing.assert_array_equal(attention._to_operand(x, jnp.float32), x)  # f32 operands pass through


def test_the_bf16_kernels_exponential_is_far_below_bf16_rounding():
    """The cubic exp of the bf16 weights is within 9e-5 (bf16's rounding step is 2^-9 ≈ 2e-3),
    unbiased, exact at 0 and ~0 deep in the underflow; its weights are that exp rounded; f32
    operands keep XLA's exp exactly."""
    x = jnp.concatenate([jnp.linspace(-87.0, 0.0, 200001), jnp.asarray([-1e4, -200.0, 0.0])]).astype(jnp.float32)
    reference, fast = jnp.exp(x), attention._exp_cubic(x)
    normal = np.asarray(reference > 2.0**-126)
    relative = np.asarray(fast / reference - 1)[normal]
    assert np.abs(relative).max() <= 9e-5 and abs(relative.mean()) < 2e-5
    assert float(fast[-1]) == 1.0 and 0 <= float(fast[-3]) <= 2.0**-125
    np.testing.assert_array_equal(attention._weights(x, jnp.bfloat16), attention._to_operand(fast, jnp.bfloat16))
    np.testing.assert_array_equal(attention._weights(x, jnp.float32), reference)


def test_unknown_implementation_is_refused():
    x = jnp.zeros((1, 4, 1, 8))
    with pytest.raises(ValueError, match="valid: auto, xla, cudnn, splash, chunked, flash"):
        attention.attend(x, x, x, implementation="flash3")


def test_chunked_scores_memory_does_not_grow_quadratically():
    """XLA's temp buffers for forward + backward at 2x the tokens (4,096 -> 8,192): ~4x for full
    attention, ~2x for the chunked and flash kernels (compile only; nothing runs). Measured at the
    larger sizes: at 1,024 tokens full attention's buffers are not yet dominated by the scores
    (jax 0.12.1: 32 -> 258 -> 1,028 MiB at 1k / 4k / 8k tokens, a ratio of 8 at 4x the tokens
    where jax 0.12.0 planned 16)."""
    def temp_bytes(fn, tokens):
        x = jax.ShapeDtypeStruct((1, tokens, 2, 32), jnp.float32)
        grad = jax.grad(lambda q, k, v: (fn(q, k, v) ** 2).sum(), argnums=(0, 1, 2))
        return jax.jit(grad).lower(x, x, x).compile().memory_analysis().temp_size_in_bytes

    kernels = {"full": lambda q, k, v: jax.nn.dot_product_attention(q, k, v),
               "chunked": lambda q, k, v: attention.chunked_attention(q, k, v, chunk=256),
               "flash": lambda q, k, v: attention.flash_attention(q, k, v, block=256)}
    sizes = {name: (temp_bytes(fn, 4096), temp_bytes(fn, 8192)) for name, fn in kernels.items()}
    growth = {name: large / small for name, (small, large) in sizes.items()}
    assert growth["full"] > 3.5 and growth["chunked"] < 2.5 and growth["flash"] < 2.5, growth
    assert sizes["flash"][1] < sizes["full"][1] / 10, sizes


def test_flash_block_keeps_one_block_of_scores_under_the_cap():
    """512 queries while a block's scores fit FLASH_MAX_SCORES, then halved (not below 32)."""
    assert attention.flash_block(3, 2048) == attention.flash_block(6, 8192) == 512
    for heads, keys in ((16, 16384), (24, 100_000), (48, 10**6)):
        block = attention.flash_block(heads, keys)
        scores = heads * keys * block
        assert block == 32 or scores <= attention.FLASH_MAX_SCORES < scores * 2, (heads, keys, block)
    assert attention.flash_block(48, 10**6) == 32


gpu_only = pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN needs a GPU (run with JAX_PLATFORMS=cuda)")


@gpu_only
def test_cudnn_equals_xla_with_a_right_padded_key_mask():
    """What cross-attention to text does: f32 inputs (mixed precision) go through cuDNN in bf16,
    and a right-padded key mask becomes per-clip key lengths."""
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(3, 256, 4, 64)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(3, 33, 4, 64)), jnp.float32) for _ in range(2))
    mask = (jnp.arange(33)[None, :] < jnp.array([[33], [1], [12]]))[:, None, None, :]
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask)
    got = attention.attend(q, k, v, mask=mask, implementation="cudnn")
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, atol=3e-2)  # bf16 operands


@gpu_only
def test_cudnn_dit_equals_xla_dit():
    from sora_jax.models import dit

    kwargs = dict(latent_channels=16, width=256, depth=2, heads=4, text_encoder="minilm", text_length=32)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 16, 16, 16)), jnp.float32)
    t = jnp.asarray(rng.random((2, 5)), jnp.float32)
    text = {"tokens": jnp.asarray(rng.normal(size=(2, 32, 384)), jnp.float32),
            "mask": jnp.arange(32)[None] < jnp.array([[32], [9]]), "pooled": jnp.asarray(rng.normal(size=(2, 384)),
                                                                                         jnp.float32)}
    reference = dit.DiT(**kwargs, dtype=jnp.bfloat16)
    params = reference.init(jax.random.PRNGKey(0), x, t, text)["params"]
    # un-zero adaLN
    params = jax.tree.map(lambda p: p + 0.02 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    expected = reference.apply({"params": params}, x, t, text)
    got = dit.DiT(**kwargs, dtype=jnp.bfloat16, attention_implementation="cudnn").apply({"params": params}, x, t, text)
    assert float(jnp.max(jnp.abs(got - expected))) < 0.05 * float(jnp.max(jnp.abs(expected)))
