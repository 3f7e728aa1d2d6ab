r"""Attention kernels head to head: forward and forward + backward time, TFLOP/s, temp memory,
and each kernel's error against XLA's attention computed in float32 on the same inputs.

    .venv/bin/python benchmarks/bench_attention.py --out=out/bench_attention.json          # CPU
    .venv/bin/python benchmarks/bench_attention.py --operand_dtype bfloat16 \
        --implementations=xla --implementations=flash_jax --implementations=flash \
        --out=out/bench_attention_mixed.json         # CPU, mixed
    python3 benchmarks/bench_attention.py --tokens=4096 --tokens=16384 --tokens=65536 --heads=16 --dtype bfloat16  # GPU

Every kernel of `sora_jax/models/attention.py` (`IMPLEMENTATIONS`) on [B, N, H, D] inputs. FLOPs
are the matmuls' (forward 4·B·H·N²·D, forward + backward 3× that, the model-FLOP convention; a
kernel that recomputes scores in its backward pass does more work than it is credited with).
A kernel that cannot run a shape (cuDNN off a GPU, N² scores larger than the device) is reported
with its reason, not skipped silently. Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sora_jax.models import attention
from sora_jax.train import throughput


def device_memory_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


flags.DEFINE_multi_integer("tokens", [1024, 2048, 4096], 'Tokens per sequence (repeat the flag for several).')
flags.DEFINE_integer("batch", 1, 'Sequences (clips) per batch.')
flags.DEFINE_integer("heads", 3, 'Attention heads (repeat for several).')
flags.DEFINE_integer("head_dim", 64, 'Width of one attention head.')
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], 'Compute dtype.')
flags.DEFINE_enum("operand_dtype", None, ["bfloat16"],
                  'matmul operands of flash (mixed precision: f32 inputs, bf16 operands)')
flags.DEFINE_multi_string("implementations", list(attention.IMPLEMENTATIONS),
                          'Attention implementations to measure (repeat for several).')
flags.DEFINE_integer("repeats", 5, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/bench_attention.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    dtype = jnp.dtype(args.dtype)
    memory = device_memory_bytes()
    ceiling = throughput.matmul_peak_flops(dtype=jnp.dtype(args.operand_dtype or args.dtype))
    device = jax.devices()[0]
    print(f"{device.device_kind} ({jax.default_backend()}): matmul ceiling {ceiling / 1e12:.2f} TFLOP/s "
          f"({args.operand_dtype or args.dtype} operands)")
    print(f"{'tokens':>7} {'kernel':>8} {'fwd ms':>9} {'fwd+bwd ms':>11} {'TFLOP/s':>8} {'of ceiling':>10} "
          f"{'temp MiB':>9} {'max err':>8}")
    rows = []
    for n in args.tokens:
        rng = np.random.default_rng(n)
        shape = (args.batch, n, args.heads, args.head_dim)
        q, k, v, cotangent = (jnp.asarray(rng.normal(size=shape), dtype) for _ in range(4))
        flops_forward = 4.0 * args.batch * args.heads * n * n * args.head_dim
        scores_bytes = 4.0 * args.batch * args.heads * n * n  # one f32 [B, H, N, N] tensor

        def loss(fn, q, k, v):
            return jnp.sum(fn(q, k, v).astype(jnp.float32) * cotangent.astype(jnp.float32))

        scores_fit = memory is None or 4 * scores_bytes < memory  # XLA's attention holds a few of them
        reference = None
        if scores_fit:
            f32 = [x.astype(jnp.float32) for x in (q, k, v)]
            reference = jax.jit(jax.value_and_grad(lambda *a: loss(jax.nn.dot_product_attention, *a), argnums=(0, 1,
                                                                                                               2)))(*f32)
        for implementation in args.implementations:
            row = {"tokens": n, "implementation": implementation, "batch": args.batch, "heads": args.heads,
                   "head_dim": args.head_dim, "dtype": args.dtype, "operand_dtype": args.operand_dtype or args.dtype}
            if implementation == "xla" and not scores_fit:
                row["error"] = (f"N² scores need {scores_bytes / 2**30:.0f} GiB per tensor; device has "
                                f"{memory / 2**30:.0f} GiB")
            else:
                kernel = lambda q, k, v, implementation=implementation: attention.attend(
                    q, k, v, implementation=implementation, operand_dtype=args.operand_dtype)
                try:
                    forward = jax.jit(kernel)
                    both = jax.jit(jax.value_and_grad(lambda *a: loss(kernel, *a), argnums=(0, 1, 2)))
                    compiled = both.lower(q, k, v).compile()
                    row["forward_seconds"] = throughput.seconds_per_call(forward, (q, k, v), args.repeats)
                    row["train_seconds"] = throughput.seconds_per_call(compiled, (q, k, v), args.repeats)
                    row["train_tflops_per_s"] = 3 * flops_forward / row["train_seconds"] / 1e12
                    row["of_ceiling"] = 3 * flops_forward / row["train_seconds"] / ceiling
                    row["temp_bytes"] = compiled.memory_analysis().temp_size_in_bytes
                    if reference is not None:
                        value, grads = compiled(q, k, v)
                        errors = [float(jnp.max(jnp.abs(a.astype(jnp.float32) - b) / (1e-3 + jnp.max(jnp.abs(b)))))
                                  for a, b in zip(grads, reference[1])]
                        row["max_relative_grad_error"] = max(errors)
                        row["relative_value_error"] = float(abs(value - reference[0]) / (1e-3 + abs(reference[0])))
                except Exception as error:  # unsupported shape / backend: report it
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            rows.append(row)
            if "error" in row:
                print(f"{n:7d} {implementation:>8}  {row['error']}", flush=True)
            else:
                print(f"{n:7d} {implementation:>8} {row['forward_seconds'] * 1e3:9.2f} "
                      f"{row['train_seconds'] * 1e3:11.2f} "
                      f"{row['train_tflops_per_s']:8.3f} {row['of_ceiling']:10.2f} {row['temp_bytes'] / 2**20:9.1f} "
                      f"{row.get('max_relative_grad_error', float('nan')):8.1e}", flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"device": device.device_kind, "backend": jax.default_backend(),
                                                  "ceiling_flops": ceiling, "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
