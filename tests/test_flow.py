"""Rectified flow: per-frame timesteps, conditioning frames untouched and outside the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sora_jax.diffusion import flow


def _latents(batch=4, frames=5, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed))
    shape = (batch, frames, 4, 6, 8)
    return jax.random.normal(keys[0], shape), jax.random.normal(keys[1], shape)


def test_interpolation_ends_are_data_and_noise():
    x0, noise = _latents()
    np.testing.assert_allclose(flow.noise_latents(x0, noise, jnp.zeros((4, 5))), x0)
    np.testing.assert_allclose(flow.noise_latents(x0, noise, jnp.ones((4, 5))), noise)


def test_conditioned_frames_are_untouched_and_outside_the_loss():
    x0, noise = _latents()
    cond = jnp.array([[True, False, False, False, True]] * 4)
    t = flow.frame_timesteps(jnp.full((4,), 0.7), cond)
    xt = flow.noise_latents(x0, noise, t)
    np.testing.assert_array_equal(xt[:, 0], x0[:, 0])
    np.testing.assert_array_equal(xt[:, 4], x0[:, 4])
    assert not np.allclose(xt[:, 2], x0[:, 2])
    perfect = flow.velocity_target(x0, noise)
    wrong_on_given = perfect.at[:, 0].add(100.0).at[:, 4].add(100.0)
    assert float(flow.flow_loss(wrong_on_given, x0, noise, cond)[0]) == 0.0
    assert float(flow.flow_loss(perfect.at[:, 2].add(1.0), x0, noise, cond)[0]) > 0.0


def test_shift_is_monotone_fixes_the_ends_and_grows_with_tokens():
    t = jnp.linspace(0, 1, 11)
    shifted = flow.shift_timesteps(t, 3.0)
    assert float(shifted[0]) == 0.0 and float(shifted[-1]) == pytest.approx(1.0)
    assert bool(jnp.all(jnp.diff(shifted) > 0)) and bool(jnp.all(shifted >= t))
    assert flow.timestep_shift(64) == 1.0 < flow.timestep_shift(1024) <= 4.0


def test_logit_normal_timesteps_are_inside_the_unit_interval_and_centred():
    t = flow.sample_timesteps(jax.random.PRNGKey(0), 20000)
    assert 0.0 < float(t.min()) and float(t.max()) < 1.0
    assert abs(float(jnp.median(t)) - 0.5) < 0.02


def test_grid_timesteps_are_exactly_where_the_few_step_sampler_calls_the_model():
    from sora_jax.diffusion import samplers

    t = np.asarray(flow.grid_timesteps(jax.random.PRNGKey(0), 4000, 4, shift=2.0))
    calls = np.asarray(samplers.timestep_grid(4, 2.0))[:-1]  # the sampler's t before each step (not 0)
    np.testing.assert_allclose(np.unique(t), np.sort(calls), rtol=1e-6)
    counts = np.array([np.sum(np.isclose(t, c)) for c in calls])
    assert counts.min() > 900  # each of the 4 about equally often (1,000 expected)


def test_task_masks_match_their_recipes():
    probabilities = {name: 1.0 for name in flow.TASKS}
    task, mask = flow.task_masks(jax.random.PRNGKey(1), 4000, 6, probabilities)
    task, mask = np.asarray(task), np.asarray(mask)
    names = np.array(flow.TASKS)[task]
    assert not mask[np.isin(names, ["t2v", "t2i"])].any()
    assert (mask[names == "i2v"] == np.eye(6, dtype=bool)[0]).all()
    connect = mask[names == "connect"]
    assert connect[:, 0].all() and connect[:, -1].all() and not connect[:, 1:-1].any()
    forward = mask[names == "extend_forward"]
    assert forward[:, 0].all() and (np.diff(forward.astype(int), axis=1) <= 0).all()
    backward = mask[names == "extend_backward"]
    assert backward[:, -1].all() and (np.diff(backward.astype(int), axis=1) >= 0).all()
    assert (~mask).any(axis=1).all(), "every sample generates at least one frame"
    assert set(names) == set(flow.TASKS)


def test_images_are_always_text_to_image():
    task, mask = flow.task_masks(jax.random.PRNGKey(2), 64, 1, {"i2v": 1.0, "connect": 1.0})
    assert not np.asarray(mask).any() and set(np.asarray(task).tolist()) == {flow.TASKS.index("t2i")}


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown tasks"):
        flow.task_masks(jax.random.PRNGKey(0), 2, 3, {"t2x": 1.0})


def test_noised_context_trains_given_frames_at_a_small_t_and_keeps_them_out_of_the_loss():
    x0, noise = _latents()
    cond = jnp.array([[True, True, False, False, False]] * 4)
    cond_t = flow.context_timesteps(jax.random.PRNGKey(3), 4, 0.2)
    assert cond_t.shape == (4,) and float(cond_t.min()) >= 0.0 and float(cond_t.max()) <= 0.2
    t = flow.frame_timesteps(jnp.full((4,), 0.7), cond, cond_t)
    np.testing.assert_allclose(t[:, :2], jnp.stack([cond_t, cond_t], 1))
    np.testing.assert_allclose(t[:, 2:], 0.7)
    xt = flow.noise_latents(x0, noise, t)
    np.testing.assert_allclose(xt[:, 0], (1 - cond_t[:, None, None, None]) * x0[:, 0]
                               + cond_t[:, None, None, None] * noise[:, 0], rtol=1e-6, atol=1e-6)
    perfect = flow.velocity_target(x0, noise)
    assert float(flow.flow_loss(perfect.at[:, :2].add(100.0), x0, noise, cond)[0]) == 0.0
    # No context noise is the clean-context recipe exactly.
    np.testing.assert_array_equal(flow.frame_timesteps(jnp.full((4,), 0.7), cond, 0.0),
                                  flow.frame_timesteps(jnp.full((4,), 0.7), cond))
