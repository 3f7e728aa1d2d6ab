"""The causal conv on this CPU: its 2D "temporal taps as channels" form against XLA's conv3d, and
where the 2D form's forward + backward time goes (forward, input gradient, kernel gradient).

    .venv/bin/python benchmarks/bench_causal_conv.py --out=benchmarks/results/cpu/bench_causal_conv.json

Part 1: same arithmetic, same activation (8, 17, 32, 32, 32) and a 3x3x3 kernel; both rates and
the largest difference between the two outputs. Part 2: the three convolutions of a training
step, separately, at the shapes of the tiny VAE's three levels (8 crops of 9x16x16, patch 2)
and at level 0 of the first recipe (32 crops, patch 1).
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sora_jax.models.causal_conv import _conv_time_taps_as_channels
from sora_jax.train.throughput import seconds_per_call

B, T, H, W, C = 8, 17, 32, 32, 32
# (name, [B, T, H, W, C] after causal padding, output channels): the tiny VAE's residual-block
# convs at its three levels for 8 crops of 9x16x16 with 2x2 pixels folded into channels.
# Last row: level 0 of the first tiny recipe (32 crops a step, no pixel folding), for contrast.
TINY_LEVELS = (("level 0", (8, 11, 8, 8, 32), 32), ("level 1", (8, 7, 4, 4, 64), 64), ("level 2", (8, 5, 4, 4, 128),
                                                                                       128),
               ("level 0, patch 1, 32 crops", (32, 11, 16, 16, 32), 32))
SAME = ((0, 0), (1, 1), (1, 1))


def conv3d(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1, 1), SAME, dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def taps_as_channels(x, k):
    return _conv_time_taps_as_channels(x, k, (1, 1, 1), SAME)


def seconds_per_grad(fn, x, k):
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(fn(a, b) ** 2), argnums=(0, 1)))
    return seconds_per_call(grad, (x, k))


def random(shape, seed, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, jnp.float32)


def conv3d_vs_2d() -> dict:
    x, k = random((B, T + 2, H, W, C), 0), random((3, 3, 3, C, C), 1, 0.05)
    flops = 3 * 2 * 27 * C * C * B * T * H * W  # forward + backward (2x forward)
    result = {"max_abs_difference": float(jnp.abs(conv3d(x, k) - taps_as_channels(x, k)).max())}
    print(f"max |difference| = {result['max_abs_difference']:.2e}")
    for name, fn in (("conv3d", conv3d), ("taps_as_channels", taps_as_channels)):
        seconds = seconds_per_grad(fn, x, k)
        result[name] = {"ms": seconds * 1e3, "gflops_per_s": flops / seconds / 1e9}
        print(f"{name:17} {seconds * 1e3:8.1f} ms  {flops / seconds / 1e9:6.1f} GFLOP/s (forward + backward)")
    return result


def step_parts() -> list[dict]:
    """Forward, input gradient and kernel gradient of the 2D form, each jitted alone."""
    rows = []
    print(f"\n{'conv':26} {'shape':>22} {'forward':>9} {'d input':>9} {'d kernel':>9}  GFLOP/s")
    for name, shape, features in TINY_LEVELS:
        x, k = random(shape, 0), random((3, 3, 3, shape[-1], features), 1, 0.05)
        y = taps_as_channels(x, k)
        flops = 2 * 27 * shape[-1] * features * int(np.prod(y.shape[:-1]))
        backward = lambda a, b, dy: jax.vjp(taps_as_channels, a, b)[1](dy)  # noqa: E731
        rates = {
            "forward": flops / seconds_per_call(jax.jit(taps_as_channels), (x, k)),
            "input_gradient": flops / seconds_per_call(jax.jit(lambda a, b, dy: backward(a, b, dy)[0]), (x, k, y)),
            "kernel_gradient": flops / seconds_per_call(jax.jit(lambda a, b, dy: backward(a, b, dy)[1]), (x, k, y)),
        }
        rows.append({"conv": name, "input_shape": list(shape), "features": features,
                     **{key: value / 1e9 for key, value in rates.items()}})
        print(f"{name:26} {str(shape):>22} " + " ".join(f"{value / 1e9:9.1f}" for value in rates.values()))
    return rows


flags.DEFINE_string("out", "", "write the results as JSON here")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    result = {"device": jax.devices()[0].device_kind, "conv3d_vs_taps_as_channels": conv3d_vs_2d(),
              "tiny_vae_step_parts_gflops_per_s": step_parts()}
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    app.run(main)
