"""The μP coordinate check (Yang et al., Tensor Programs V, fig. 5): train the same small DiT at
several widths for a few Adam steps at one LR and measure each layer's activation size. Under μP
the sizes stay flat as width grows; under the standard parametrization they grow with it (each
hidden update moves a coordinate by ~LR, and width of them add up).

    rms = coordinate_check("mup", widths=(32, 64, 128, 256), steps=4, learning_rate=1e-2)
    rms[256]["block_1"]  # RMS of block_1's output after 4 steps, on a fixed batch

The data are a fixed random batch (latents, per-frame timesteps, byte captions) with the
rectified-flow loss: what matters is how activations scale, not what is learned.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sora_jax.models import dit, mup
from sora_jax.train import state

LAYERS = ("patch_embed", "time_out", "block_0", "block_1")  # outputs measured, and the model's


def _batch(seed: int, channels: int = 4):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((4, 3, 8, 8, channels)).astype(np.float32)
    noise = rng.standard_normal(latent.shape).astype(np.float32)
    t = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    ids = rng.integers(1, 255, (4, 16)).astype(np.int32)
    return latent, noise, t, {"ids": jnp.asarray(ids), "mask": jnp.ones((4, 16), bool)}


def coordinate_check(parametrization: str, widths=(32, 64, 128, 256), steps: int = 4, learning_rate: float = 1e-2,
                     base_width: int = 32, seed: int = 0) -> dict[int, dict[str, float]]:
    """{width: {layer: RMS of its output}} after `steps` AdamW steps at `learning_rate`."""
    latent, noise, t, text = _batch(seed)
    x_t = (1 - t[..., None, None, None]) * latent + t[..., None, None, None] * noise
    target = noise - latent
    optimizer_config = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=learning_rate, schedule="constant", warmup_steps=0, b1=0.9, b2=0.999,
        weight_decay=0.0, grad_clip_norm=0.0, cooldown_fraction=0.0))
    sizes = {}
    for width in widths:
        model = dit.DiT(latent_channels=latent.shape[-1], width=width, depth=2, heads=width // 16, text_width=32,
                        text_length=16, attention_implementation="xla", parametrization=parametrization)
        params = nn.unbox(model.init(jax.random.PRNGKey(seed), x_t, t, text)["params"])
        multipliers = None
        if parametrization == "mup":
            base = mup.base_model(model, base_width)
            multipliers = mup.lr_multipliers(params, jax.eval_shape(
                lambda: nn.unbox(base.init(jax.random.PRNGKey(seed), x_t, t, text)["params"])))
        optimizer = state.make_optimizer(optimizer_config, steps, multipliers)
        opt_state = optimizer.init(params)

        @jax.jit
        def step(params, opt_state):
            def loss(p):
                return jnp.mean((model.apply({"params": p}, x_t, t, text) - target) ** 2)

            grads = jax.grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return jax.tree.map(lambda p, u: p + u, params, updates), opt_state

        for _ in range(steps):
            params, opt_state = step(params, opt_state)
        _, captured = model.apply({"params": params}, x_t, t, text, capture_intermediates=True)
        outputs = captured["intermediates"]
        sizes[width] = {layer: float(jnp.sqrt(jnp.mean(jnp.square(outputs[layer]["__call__"][0]))))
                        for layer in LAYERS if layer in outputs}
        sizes[width]["output"] = float(jnp.sqrt(jnp.mean(jnp.square(outputs["__call__"][0]))))
    return sizes
