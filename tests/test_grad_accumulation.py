"""Gradient accumulation: k scanned microbatches give the full batch's loss and gradient."""

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.train import step as step_lib


class _LeastSquares:
    """A per-row mean loss: the full-batch gradient is the mean of equal microbatches' gradients."""

    def loss(self, params, batch, rng):
        del rng
        residual = batch["x"] @ params["w"] - batch["y"]
        return jnp.mean(residual**2), {"max_residual": jnp.max(jnp.abs(residual))}


def test_accumulated_gradient_equals_the_full_batch_gradient():
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(12, 3)).astype(np.float32), "y": rng.normal(size=(12,)).astype(np.float32)}
    params = {"w": jnp.array([0.5, -1.0, 2.0])}
    key = jax.random.PRNGKey(0)
    loss_fn = _LeastSquares().loss
    (loss, _), grads = step_lib.value_and_grad(loss_fn, params, batch, key, 1)
    for k in (2, 3, 4):
        (loss_k, aux_k), grads_k = jax.jit(step_lib.value_and_grad, static_argnums=(0, 4))(
            loss_fn, params, batch, key, k)
        np.testing.assert_allclose(loss_k, loss, rtol=1e-6)
        np.testing.assert_allclose(grads_k["w"], grads["w"], rtol=1e-5)
        assert aux_k["max_residual"] > 0
