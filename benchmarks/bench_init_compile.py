"""Why VAE runs spent their first minute compiling, and what drawing kernels as matrices saves.

    .venv/bin/python benchmarks/bench_init_compile.py --out=benchmarks/results/cpu/bench_init_compile.json

Part 1 compiles one jitted function that draws a truncated normal of every parameter shape of the
micro VAE, three ways: at each kernel's own shape (what Flax's initializers do), as the
`[fan_in, fan_out]` matrix `sora_jax/models/initializers.py` draws and reshapes (bit-identical
values, checked here), and with `jax_threefry_partitionable` off (different values; shown for
scale). Part 2 times the compile of the real jitted parameter init (`trainer.build`'s) of the
micro and tiny VAEs as the code now stands. Compile times only; nothing is trained.
"""

from __future__ import annotations

import json
import math
import pathlib
import time

import flax.linen as nn
import jax
import numpy as np
from absl import app, flags

from sora_jax.configs import vae
from sora_jax.train.vae_task import VaeTask


def draw_compile(shapes, as_matrix: bool) -> tuple[float, list]:
    def draw(rng):
        out = []
        for i, shape in enumerate(shapes):
            drawn = (math.prod(shape[:-1]), shape[-1]) if as_matrix and len(shape) > 2 else shape
            out.append(jax.random.truncated_normal(jax.random.fold_in(rng, i), -2, 2, drawn).reshape(shape))
        return out

    started = time.perf_counter()
    compiled = jax.jit(draw).lower(jax.random.PRNGKey(0)).compile()
    return time.perf_counter() - started, compiled(jax.random.PRNGKey(0))


def init_compile(variant: str) -> tuple[float, int]:
    task = VaeTask(vae.get_config(variant))
    example = task.example_batch(1)
    started = time.perf_counter()
    compiled = jax.jit(lambda rng: nn.unbox(task.init(rng, example))).lower(jax.random.PRNGKey(0)).compile()
    seconds = time.perf_counter() - started
    return seconds, len(jax.tree.leaves(compiled(jax.random.PRNGKey(0))))


flags.DEFINE_string("out", "", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    task = VaeTask(vae.get_config("micro"))
    abstract = jax.eval_shape(lambda rng: nn.unbox(task.init(rng, task.example_batch(1))), jax.random.PRNGKey(0))
    shapes = [leaf.shape for leaf in jax.tree.leaves(abstract)]
    result = {"device": jax.devices()[0].device_kind, "micro_vae_arrays": len(shapes),
              "micro_vae_5_axis_kernels": sum(len(s) == 5 for s in shapes)}
    own, own_values = draw_compile(shapes, as_matrix=False)
    matrix, matrix_values = draw_compile(shapes, as_matrix=True)
    result["draws_compile_s_own_shapes"] = own
    result["draws_compile_s_as_matrices"] = matrix
    result["draws_bit_identical"] = all(np.array_equal(a, b) for a, b in zip(own_values, matrix_values))
    jax.config.update("jax_threefry_partitionable", False)
    result["draws_compile_s_own_shapes_threefry_partitionable_off"] = draw_compile(shapes, as_matrix=False)[0]
    jax.config.update("jax_threefry_partitionable", True)
    print(f"part 1: {len(shapes)} truncated-normal draws (micro VAE shapes) compile in {own:.1f} s at their own "
          f"shapes, {matrix:.1f} s as matrices (bit-identical: {result['draws_bit_identical']}), "
          f"{result['draws_compile_s_own_shapes_threefry_partitionable_off']:.1f} s with partitionable threefry off")
    for variant in ("micro", "tiny"):
        seconds, arrays = init_compile(variant)
        result[f"init_compile_s_{variant}_vae"] = seconds
        print(f"part 2: the {variant} VAE's jitted init ({arrays} arrays) compiles in {seconds:.1f} s")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    app.run(main)
