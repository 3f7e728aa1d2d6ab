r"""The fused AMX attention kernel against its C++ source at an earlier commit (or against the
pure-JAX flash kernel), A/B in one process: the baseline's `sora_jax/kernels/amx_attention.cc`
is read with `git show REV:...`, compiled beside the working tree's and registered under its own
custom-call names; both run the same forward + backward, interleaved, best of `--repeats`.

    .venv/bin/python benchmarks/ab_amx_kernel.py --baseline=REV --out=out/ab_amx_kernel.json
    .venv/bin/python benchmarks/ab_amx_kernel.py --baseline=flash_jax   # the pure-JAX bf16 kernel

Shapes: `--batch` clips (1) of `--tokens` tokens, `--heads` each of `--head_dim` (64); f32 inputs, bf16 operands
(mixed precision). Also the largest difference of the gradients between the two, relative to
their largest magnitude. Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from harness import source_at
from sora_jax.kernels import amx_attention, cpu_ffi
from sora_jax.models import attention
from sora_jax.train import throughput

SOURCE = "sora_jax/kernels/amx_attention.cc"


def kernel_at(revision: str):
    """f(q, k, v): the fused attention built from `revision`'s C++ source."""
    library = cpu_ffi.build(cpu_ffi.compiler(), source=source_at(revision, SOURCE))
    fused = amx_attention.attention_with(*amx_attention.register(library, suffix=f"_{revision}"))
    return lambda q, k, v: fused(q, k, v, k.shape[1])


flags.DEFINE_string("baseline", None, "a git revision, or flash_jax")
flags.DEFINE_multi_integer("tokens", [2048], 'Tokens per sequence (repeat the flag for several).')
flags.DEFINE_multi_integer("heads", [3, 6], 'Attention heads (repeat for several).')
flags.DEFINE_integer("batch", 1, 'Sequences (clips) per batch.')
flags.DEFINE_integer("head_dim", 64, 'Width of one attention head.')
flags.DEFINE_integer("repeats", 7, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/ab_amx_kernel.json", 'Where to write the output.')
flags.mark_flag_as_required("baseline")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    if not amx_attention.available():
        raise SystemExit(f"AMX attention unavailable: {amx_attention.unavailable_reason()}")
    baseline = (kernel_at(args.baseline) if args.baseline != "flash_jax"
                else lambda q, k, v: attention.flash_attention(q, k, v, jnp.bfloat16))
    kernels = {args.baseline: baseline, "working tree": amx_attention.amx_attention}
    rng = np.random.default_rng(0)
    rows = []
    for tokens in args.tokens:
        for heads in args.heads:
            shape = (args.batch, tokens, heads, args.head_dim)
            q, k, v, cotangent = (jnp.asarray(rng.normal(size=shape), jnp.float32) for _ in range(4))
            steps = {name: jax.jit(jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v) * cotangent), argnums=(0, 1, 2)))
                     for name, fn in kernels.items()}
            forwards = {name: jax.jit(fn) for name, fn in kernels.items()}
            grads = {name: step(q, k, v) for name, step in steps.items()}
            times = {name: [] for name in kernels}
            forward_times = {name: [] for name in kernels}
            for _ in range(args.repeats):  # interleaved
                for name in kernels:
                    times[name].append(throughput.seconds_per_call(steps[name], (q, k, v), 1))
                    forward_times[name].append(throughput.seconds_per_call(forwards[name], (q, k, v), 1))
            (a, ga), (b, gb) = grads.items()
            difference = max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in zip(ga, gb))
            row = {"batch": args.batch, "tokens": tokens, "heads": heads, "head_dim": args.head_dim,
                   "seconds": {name: min(t) for name, t in times.items()},
                   "forward_seconds": {name: min(t) for name, t in forward_times.items()},
                   "speedup": min(times[a]) / min(times["working tree"]),
                   "forward_speedup": min(forward_times[a]) / min(forward_times["working tree"]),
                   "max_relative_grad_difference": difference}
            rows.append(row)
            print(f"{tokens} tokens x {heads} heads: fwd+bwd {args.baseline} {min(times[a]) * 1e3:.2f} ms, "
                  f"working tree {min(times['working tree']) * 1e3:.2f} ms ({row['speedup']:.2f}x); forward "
                  f"{row['forward_speedup']:.2f}x; gradients differ by {difference:.1e} of their max", flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"baseline": args.baseline, "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
