"""Why a micro VAE run spends most of its first minute compiling: the parameter initializers.

    .venv/bin/python experiments/bench_init_compile.py --out=experiments/results/cpu/bench_init_compile.json

Compiles one jitted function that draws a uniform array of every parameter shape of the micro VAE
(as `trainer.build`'s jitted init does, without the model), once with JAX's default
`jax_threefry_partitionable=True` and once with it off. Compile time only; nothing is trained.
Turning the flag off would change every initial value (and sharded init's layout independence),
so the project has not done it; this measures what it costs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import flax.linen as nn
import jax

from configs import vae
from sora_jax.train.vae_task import VaeTask


def compile_seconds(shapes) -> float:
    def draw(rng):
        return [jax.random.uniform(jax.random.fold_in(rng, i), shape) for i, shape in enumerate(shapes)]

    started = time.perf_counter()
    jax.jit(draw).lower(jax.random.PRNGKey(0)).compile()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    task = VaeTask(vae.get_config("micro"))
    abstract = jax.eval_shape(lambda rng: nn.unbox(task.init(rng, task.example_batch(1))), jax.random.PRNGKey(0))
    shapes = [leaf.shape for leaf in jax.tree.leaves(abstract)]
    result = {"device": jax.devices()[0].device_kind, "arrays": len(shapes)}
    for flag in (True, False):
        jax.config.update("jax_threefry_partitionable", flag)
        result[f"compile_s_threefry_partitionable_{flag}"] = compile_seconds(shapes)
        print(f"threefry_partitionable={flag}: {result[f'compile_s_threefry_partitionable_{flag}']:.1f} s "
              f"to compile {len(shapes)} uniform draws")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
