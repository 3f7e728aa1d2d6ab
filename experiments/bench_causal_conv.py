"""The causal conv's temporal taps as one 2D conv vs XLA's conv3d: forward + backward GFLOP/s.

    .venv/bin/python experiments/bench_causal_conv.py

Same arithmetic, same activation (8, 17, 32, 32, 32) and a 3x3x3 kernel; prints both rates and
the largest difference between the two outputs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.models.causal_conv import _conv_time_taps_as_channels

B, T, H, W, C = 8, 17, 32, 32, 32


def conv3d(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1, 1), ((0, 0), (1, 1), (1, 1)),
                                        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def taps_as_channels(x, k):
    return _conv_time_taps_as_channels(x, k, (1, 1, 1), ((0, 0), (1, 1), (1, 1)))


def seconds_per_grad(fn, x, k, repeats=3):
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(fn(a, b) ** 2), argnums=(0, 1)))
    jax.block_until_ready(grad(x, k))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(grad(x, k))
    return (time.perf_counter() - start) / repeats


def main() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((B, T + 2, H, W, C)), jnp.float32)
    k = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 3, C, C)) * 0.05, jnp.float32)
    flops = 3 * 2 * 27 * C * C * B * T * H * W  # forward + backward (2x forward)
    print(f"max |difference| = {float(jnp.abs(conv3d(x, k) - taps_as_channels(x, k)).max()):.2e}")
    for name, fn in (("conv3d", conv3d), ("taps_as_channels", taps_as_channels)):
        seconds = seconds_per_grad(fn, x, k)
        print(f"{name:17} {seconds * 1e3:8.1f} ms  {flops / seconds / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
