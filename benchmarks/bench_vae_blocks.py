"""The tiny VAE's training step under each residual-block form, A/B in one process.

    .venv/bin/python benchmarks/bench_vae_blocks.py --out=benchmarks/results/cpu/bench_vae_blocks.json

Times (median of interleaved repeats) the forward + backward of the tiny VAE on one batch of 8
crops of 9x16x16 with: full 3x3x3 residual blocks, (2+1)D blocks without and with the SiLU
between the spatial and temporal conv (the recipe), and (2+1)D everywhere (the resampling and
first/last convs too). Then the whole compiled train step of `sora_jax/configs/vae.py:tiny` on the same
shape (optimizer, EMA and clipping included).
"""

from __future__ import annotations

import json
import pathlib
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from harness import compiled_train_step
from sora_jax.models import vae
from sora_jax.models.causal_conv import CausalConv3d

BATCH = (8, 9, 16, 16, 3)


class _NoSiluBlock(vae.ResBlock):
    def conv(self, x, init_scale=1.0):
        x = CausalConv3d(self.features, kernel=(1, 3, 3), dtype=self.dtype)(x)
        return CausalConv3d(self.features, kernel=(3, 1, 1), init_scale=init_scale, dtype=self.dtype)(x)


class _FactorizedEverywhere(nn.Module):
    """A CausalConv3d whose 3x3x3 kernels become 1x3x3 then 3x1x1 (other kernels unchanged)."""

    features: int
    kernel: tuple = (3, 3, 3)
    strides: tuple = (1, 1, 1)
    init_scale: float = 1.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if tuple(self.kernel) != (3, 3, 3):
            return CausalConv3d(self.features, self.kernel, self.strides, self.init_scale, self.dtype)(x)
        x = CausalConv3d(self.features, (1, 3, 3), (1, *self.strides[1:]), dtype=self.dtype)(x)
        return CausalConv3d(self.features, (3, 1, 1), (self.strides[0], 1, 1), self.init_scale, self.dtype)(x)


def _forward_backward(factorized: bool):
    model = vae.VideoVAE.from_variant("tiny", spatial=4, temporal=4, latent_channels=16, patch=2, factorized=factorized)
    video = jax.random.uniform(jax.random.PRNGKey(0), BATCH, minval=-1.0, maxval=1.0)
    params = model.init(jax.random.PRNGKey(1), video)
    step = jax.jit(jax.value_and_grad(lambda p: jnp.mean((model.apply(p, video)[0] - video) ** 2)))
    jax.block_until_ready(step(params))
    count = sum(x.size for x in jax.tree.leaves(params))
    return (lambda: jax.block_until_ready(step(params))), count


def _train_step():
    run, _ = compiled_train_step("tiny")  # 8 crops of 9x16x16, as BATCH
    run()
    return run


flags.DEFINE_integer("repeats", 30, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    forms, params = {}, {}
    forms["full_3x3x3"], params["full_3x3x3"] = _forward_backward(False)
    original_block, original_conv = vae.ResBlock, vae.CausalConv3d
    vae.ResBlock = _NoSiluBlock
    forms["2plus1d_no_silu"], params["2plus1d_no_silu"] = _forward_backward(True)
    vae.ResBlock = original_block
    forms["2plus1d_recipe"], params["2plus1d_recipe"] = _forward_backward(True)
    vae.CausalConv3d = _FactorizedEverywhere
    forms["2plus1d_everywhere"], params["2plus1d_everywhere"] = _forward_backward(True)
    vae.CausalConv3d = original_conv
    forms["train_step_recipe"] = _train_step()
    times = {name: [] for name in forms}
    for _ in range(args.repeats):
        for name, run in forms.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    result = {"device": jax.devices()[0].device_kind, "batch": BATCH, "repeats": args.repeats,
              "median_ms": {name: 1e3 * float(np.median(t)) for name, t in times.items()}, "params": params}
    recipe = result["median_ms"]["2plus1d_recipe"]
    for name, ms in result["median_ms"].items():
        print(f"{name:20s} {ms:7.1f} ms  ({ms / recipe:.3f}x the recipe's forward+backward)"
              + (f"  {params[name]:,} params" if name in params else ""))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    app.run(main)
