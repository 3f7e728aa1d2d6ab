"""The DiT: patches, 3D rotary positions on unseen grids, per-frame conditioning, text dropout,
layouts, remat and bf16, and the sampler keeping given frames."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import samplers
from sora_jax.models import dit, text


def _model(**overrides):
    kwargs = dict(latent_channels=4, width=32, depth=2, heads=2, text_width=16, text_length=12)
    return dit.DiT(**{**kwargs, **overrides})


def _inputs(shape=(2, 3, 4, 6, 4), captions=("a red circle", "two blue squares")):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    t = jnp.tile(jnp.linspace(0.2, 0.9, shape[1])[None], (shape[0], 1))
    ids, mask = text.byte_tokenize(list(captions), 12)
    return x, t, {"ids": ids, "mask": mask}


def _init(model, x, t, txt):
    params = nn.unbox(model.init(jax.random.PRNGKey(0), x, t, txt))["params"]
    # adaLN-Zero starts as the identity: perturb so every path contributes.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    return jax.tree.unflatten(tree, [leaf + 0.05 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])


@pytest.mark.parametrize("patch", [(1, 1, 1), (1, 2, 2), (2, 2, 1)])
def test_patchify_unpatchify_inverse(patch):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 6, 8, 3))
    patches = dit.patchify(x, patch)
    assert patches.shape == (2, 4 // patch[0], 6 // patch[1], 8 // patch[2], 3 * int(np.prod(patch)))
    np.testing.assert_array_equal(dit.unpatchify(patches, patch, 3), x)


def test_rope_scores_depend_only_on_relative_position():
    q = jax.random.normal(jax.random.PRNGKey(0), (1, 1, 1, 24))
    k = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 1, 24))
    cos, sin = dit.rope_3d((6, 5, 7), 24)
    grid = np.arange(6 * 5 * 7).reshape(6, 5, 7)

    def score(a, b):
        qa = dit.apply_rope(q, cos[grid[a]][None], sin[grid[a]][None])
        kb = dit.apply_rope(k, cos[grid[b]][None], sin[grid[b]][None])
        return float(jnp.sum(qa * kb))

    assert score((0, 0, 0), (1, 2, 3)) == pytest.approx(score((4, 2, 3), (5, 4, 6)), abs=1e-4)
    assert score((0, 0, 0), (1, 2, 3)) != pytest.approx(score((0, 0, 0), (1, 3, 2)), abs=1e-4)


def test_unseen_grids_aspect_ratios_and_durations_work():
    model = _model()
    x, t, txt = _inputs((2, 2, 4, 4, 4))
    params = _init(model, x, t, txt)
    for shape in [(2, 5, 8, 14, 4), (2, 1, 14, 8, 4), (2, 9, 6, 6, 4)]:
        xs, ts, _ = _inputs(shape)
        out = model.apply({"params": params}, xs, ts, txt)
        assert out.shape == shape and bool(jnp.all(jnp.isfinite(out)))
    with pytest.raises(ValueError, match="does not divide by the patch size"):
        model.apply({"params": params}, jnp.zeros((2, 2, 5, 4, 4)), t[:, :2], txt)


def test_each_latent_frame_has_its_own_timestep():
    model = _model(layout="factorized")  # temporal mixing only through the temporal attention
    x, t, txt = _inputs()
    params = _init(model, x, t, txt)
    base = model.apply({"params": params}, x, t, txt)
    moved = model.apply({"params": params}, x, t.at[:, 1].set(0.0), txt)
    assert float(jnp.abs(moved - base).max()) > 1e-4  # the timestep of frame 1 is read
    t_same = jnp.full_like(t, 0.5)
    uniform = model.apply({"params": params}, x, t_same, txt)
    per_frame = model.apply({"params": params}, x, t_same.at[:, 0].set(0.0), txt)
    assert float(jnp.abs(per_frame - uniform)[:, 0].max()) > 1e-4


def test_dropped_caption_ignores_the_text():
    model = _model()
    x, t, txt = _inputs()
    params = _init(model, x, t, txt)
    _, _, other = _inputs(captions=("a yellow triangle falls", "cyan"))
    drop = jnp.zeros((2,), bool)
    a = model.apply({"params": params}, x, t, {**txt, "keep": drop})
    b = model.apply({"params": params}, x, t, {**other, "keep": drop})
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = model.apply({"params": params}, x, t, {**other, "keep": ~drop})
    assert float(jnp.abs(c - a).max()) > 1e-4


def test_frozen_encoder_inputs_and_factorized_layout():
    model = _model(text_encoder="minilm", layout="factorized")
    x, t, _ = _inputs()
    txt = {"tokens": jnp.ones((2, 5, 384)), "mask": jnp.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool),
           "pooled": jnp.ones((2, 384))}
    params = _init(model, x, t, txt)
    assert "byte_encoder" not in params and "temporal_attention" in params["block_0"]
    assert model.apply({"params": params}, x, t, txt).shape == x.shape


def test_remat_and_bfloat16_match_the_plain_float32_model():
    x, t, txt = _inputs()
    plain = _model()
    params = _init(plain, x, t, txt)

    def loss(model, p):
        return jnp.mean(model.apply({"params": p}, x, t, txt) ** 2)

    reference, grads = jax.value_and_grad(lambda p: loss(plain, p))(params)
    for policy in ("full", "dots"):
        value, remat_grads = jax.value_and_grad(lambda p: loss(_model(remat=policy), p))(params)
        assert float(value) == pytest.approx(float(reference), rel=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), grads, remat_grads)
    low = float(loss(_model(dtype=jnp.bfloat16), params))
    assert low == pytest.approx(float(reference), rel=0.05)
    mixed_model = _model(matmul_dtype=jnp.bfloat16)  # model.dtype="mixed": bf16 operands, f32 out
    mixed, mixed_grads = jax.value_and_grad(lambda p: loss(mixed_model, p))(params)
    assert float(mixed) == pytest.approx(float(reference), rel=0.02)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(mixed_grads))
    hlo = jax.jit(lambda p: mixed_model.apply({"params": p}, x, t, txt)).lower(params).as_text()
    assert re.search(r"dot_general.*\(tensor<[^>]*bf16>, tensor<[^>]*bf16>\) -> tensor<[^>]*f32>", hlo)


def test_mixed_precision_gradient_matmuls_take_bf16_operands():
    """JAX's own transpose of a bf16-operand dot with an f32 result runs the gradient matmuls in
    f32; `mixed_linear` keeps them in bf16 (f32 accumulation) and still returns f32 gradients —
    the bias's summed from the same bf16 output gradient — close to the f32 ones."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 7, 3, 8)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(8, 2, 5)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(2, 7, 3, 2, 5)), jnp.float32)

    def loss(fn, x, kernel, bias):
        return jnp.sum(fn(x, kernel, bias) * cotangent)

    mixed = jax.grad(lambda *a: loss(lambda x, w, b: dit.mixed_linear(x, w, b, 1, jnp.bfloat16), *a), argnums=(0, 1, 2))
    exact = jax.grad(lambda *a: loss(lambda x, w, b: jnp.einsum("abci,ijk->abcjk", x, w) + b, *a), argnums=(0, 1, 2))
    for got, expected in zip(mixed(x, kernel, bias), exact(x, kernel, bias)):
        assert got.dtype == jnp.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=0.02 * float(jnp.max(jnp.abs(expected))))
    hlo = jax.jit(mixed).lower(x, kernel, bias).as_text()
    dots = re.findall(r"dot_general.*\((tensor<[^>]*>), (tensor<[^>]*>)\) -> tensor<[^>]*>", hlo)
    assert len(dots) == 2 and all("bf16" in a and "bf16" in b for a, b in dots), dots  # dx and dW (the loss is linear)


def test_sampler_keeps_given_frames_and_guidance_mixes():
    shape = (2, 3, 2, 2, 1)
    given = jnp.full(shape, 0.7)
    mask = jnp.array([[True, False, False], [False, False, True]])

    def velocity(x, t_frames, keep):
        return jnp.where(keep[:, None, None, None, None], x, 2.0 * x)  # conditional v = x, unconditional 2x

    out = samplers.sample(velocity, jnp.ones(shape), steps=5, cond_latents=given, cond_mask=mask)
    np.testing.assert_array_equal(out[0, 0], given[0, 0])
    np.testing.assert_array_equal(out[1, 2], given[1, 2])
    v = samplers.guided_velocity(velocity, jnp.ones(shape), jnp.zeros(shape[:2]), guidance=3.0)
    np.testing.assert_allclose(v, 2.0 + 3.0 * (1.0 - 2.0))  # v_u + g (v_c - v_u)


def test_sampler_shows_noised_context_at_cond_t_and_returns_it_clean():
    shape = (1, 3, 2, 2, 1)
    given, noise = jnp.full(shape, 0.7), jnp.ones(shape)
    mask = jnp.array([[True, False, False]])
    seen = []

    def velocity(x, t_frames, keep):
        jax.debug.callback(lambda x, t: seen.append((np.asarray(x), np.asarray(t))), x[:, 0], t_frames[:, 0])
        return x

    out = samplers.sample(velocity, noise, steps=3, cond_latents=given, cond_mask=mask, cond_t=0.1)
    assert len(seen) == 3  # every step shows the model the same noised context at t = cond_t
    for x_given, t_given in seen:
        np.testing.assert_allclose(x_given, 0.9 * 0.7 + 0.1 * 1.0, rtol=1e-6)
        np.testing.assert_allclose(t_given, 0.1)
    np.testing.assert_array_equal(out[:, 0], given[:, 0])


def test_second_order_samplers_beat_euler_on_a_fixed_velocity_field():
    def velocity(x, t_frames, keep):
        t = t_frames[:, :, None, None, None]
        return jnp.sin(3.0 * t) * x + jnp.cos(x)  # smooth, nonlinear, time-dependent

    noise = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 3, 3, 1))
    exact = samplers.sample(velocity, noise, method="heun", steps=400)
    error = {(m, n): float(jnp.abs(samplers.sample(velocity, noise, method=m, steps=n) - exact).max())
             for m in samplers.SAMPLERS for n in (8, 32)}
    assert error[("heun", 8)] < error[("euler", 32)]  # Heun at N beats Euler at 4N
    assert error[("ab2", 8)] < error[("euler", 8)] / 2
    with pytest.raises(ValueError, match="valid: euler, heun, ab2"):
        samplers.sample(velocity, noise, method="rk4")


def _gaussian_velocity(mean: float, std: float):
    """The exact flow velocity E[noise - x0 | x_t] when every x0 entry is N(mean, std²)."""
    def velocity(x, t_frames, keep):
        t = t_frames[:, :, None, None, None]
        variance = (1 - t) ** 2 * std**2 + t**2
        centred = x - (1 - t) * mean
        return t / variance * centred - (mean + (1 - t) * std**2 / variance * centred)
    return velocity


def test_ddim_is_euler_at_eta_0_and_ancestral_sampling_keeps_the_data_distribution():
    velocity = _gaussian_velocity(0.5, 0.3)
    noise = jax.random.normal(jax.random.PRNGKey(0), (64, 2, 4, 4, 2))
    euler = samplers.sample(velocity, noise, steps=8)
    np.testing.assert_allclose(samplers.sample(velocity, noise, method="ddim", steps=8), euler, atol=1e-5)
    key = jax.random.PRNGKey(1)
    ancestral = samplers.sample(velocity, noise, method="ddim", steps=400, eta=1.0, rng=key)
    # fresh noise each step, and yet the marginal is the data's, mean 0.5 and std 0.3 (8,192 draws;
    # ancestral steps shrink the spread more than Euler's at few steps: 0.263 at 30, 0.288 at 100)
    assert float(ancestral.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(ancestral.std()) == pytest.approx(0.3, rel=0.02)
    assert float(jnp.abs(ancestral - euler).mean()) > 0.05  # another sample of the same distribution
    np.testing.assert_array_equal(ancestral, samplers.sample(velocity, noise, method="ddim", steps=400, eta=1.0,
                                                              rng=key))  # the rng fixes it
    # fresh noise only below eta_t_max: none below 0 is Euler; below 0.5, the early steps are Euler's
    never = samplers.sample(velocity, noise, method="ddim", steps=8, eta=1.0, eta_t_max=0.0, rng=key)
    np.testing.assert_allclose(never, euler, atol=1e-5)
    late = samplers.sample(velocity, noise, method="ddim", steps=8, eta=1.0, eta_t_max=0.5, rng=key)
    every = samplers.sample(velocity, noise, method="ddim", steps=8, eta=1.0, rng=key)
    assert 0 < float(jnp.abs(late - euler).mean()) < float(jnp.abs(every - euler).mean())
    mask = jnp.zeros((64, 2), bool).at[:, 0].set(True)
    given = jnp.full(noise.shape, 0.9)
    kept = samplers.sample(velocity, noise, method="ddim", steps=4, eta=1.0, rng=key, cond_latents=given,
                           cond_mask=mask)
    np.testing.assert_array_equal(kept[:, 0], given[:, 0])
    with pytest.raises(ValueError, match="needs an rng"):
        samplers.sample(velocity, noise, method="ddim", eta=0.5)
    with pytest.raises(ValueError, match="eta=1.5"):
        samplers.sample(velocity, noise, method="ddim", eta=1.5, rng=key)


def test_output_conv_starts_as_the_plain_dit_and_mixes_only_neighbouring_latent_pixels():
    x, t, txt = _inputs()
    plain, conv = _model(), _model(output_conv=3)
    params = _init(plain, x, t, txt)
    fresh = nn.unbox(conv.init(jax.random.PRNGKey(0), x, t, txt))["params"]
    assert fresh["output_conv"]["kernel"].shape == (3, 3, 4, 4) and not fresh["output_conv"]["kernel"].any()
    with_conv = {**params, "output_conv": fresh["output_conv"]}  # zero-initialized: the plain DiT
    base = plain.apply({"params": params}, x, t, txt)
    np.testing.assert_array_equal(conv.apply({"params": with_conv}, x, t, txt), base)
    # A kernel that only reads the pixel one column to the left: each output pixel gains that one.
    kernel = np.zeros((3, 3, 4, 4), np.float32)
    kernel[1, 0] = np.eye(4)
    shifted = {**params, "output_conv": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(4)}}
    expected = base.at[:, :, :, 1:].add(base[:, :, :, :-1])
    np.testing.assert_allclose(conv.apply({"params": shifted}, x, t, txt), expected, rtol=1e-5, atol=1e-5)
