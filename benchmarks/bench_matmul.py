r"""Dense-layer matmuls on a CPU, side by side: XLA f32, XLA bf16 operands (f32 accumulation), the
AMX kernel (`sora_jax/kernels/amx_matmul.py`) and, with --torch_python, PyTorch f32 and bf16 (oneDNN)
— each at the forward and both gradient products of a linear layer, alternating in one run.

    .venv/bin/python benchmarks/bench_matmul.py --torch_python=/tmp/refvenv/bin/python \
        --out=benchmarks/results/cpu/bench_matmul.json

A shape `M,K,N` is a layer taking K features to N over M rows (tokens × clips). Its three products:
forward y = x·W [M,K]·[K,N]; input gradient dx = dy·Wᵀ [M,N]·[N,K]; weight gradient dW = xᵀ·dy
[K,M]·[M,N]. The kernel takes the transposed operands as they are (it repacks them anyway); XLA and
PyTorch get the same transposes written into their expressions. GFLOP/s = 2·M·K·N / time (median of
--repeats, the configurations interleaved round by round). Nothing here is a test.
"""

import json
import pathlib
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sora_jax.kernels import amx_matmul

flags.DEFINE_multi_string("shapes", ["2048,384,1152", "2048,384,1536", "2048,1536,384", "2016,192,576",
                                     "2016,192,768", "2016,768,192", "2240,96,288", "512,384,384", "64,384,2304"],
                          "M,K,N of a linear layer (DiT-S/2's qkv, fc1, fc2 at 2,048 tokens; the ladders' widths "
                          "192 and 96; small M)")
flags.DEFINE_integer("repeats", 7, "Timed rounds; medians are reported.")
flags.DEFINE_string("torch_python", None, "A Python with PyTorch, for its f32 and bf16 matmuls.")
flags.DEFINE_string("out", "out/bench_matmul.json", "Where to write the output.")

PRODUCTS = ("forward", "input_grad", "weight_grad")

TORCH = r"""
import json, statistics, sys, time, torch
m, k, n, repeats = map(int, sys.argv[1:5])
out = {}
for name, dtype in (("torch_f32", torch.float32), ("torch_bf16", torch.bfloat16)):
    x, w, dy = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.randn(m, n, dtype=dtype)
    products = (("forward", lambda: x @ w), ("input_grad", lambda: dy @ w.t()), ("weight_grad", lambda: x.t() @ dy))
    for product, f in products:
        f(); times = []
        for _ in range(repeats):
            start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
        out[f"{name}/{product}"] = statistics.median(times)
print(json.dumps(out))
"""


def jax_products(m: int, k: int, n: int) -> dict:
    """{config/product: zero-argument runner}, compiled and warm."""
    rng = np.random.default_rng(0)
    runs = {}
    for name, dtype in (("xla_f32", jnp.float32), ("xla_bf16", jnp.bfloat16), ("amx", jnp.bfloat16)):
        if name == "amx" and not amx_matmul.available():
            continue
        x, w, dy = (jnp.asarray(rng.normal(size=s), dtype) for s in ((m, k), (k, n), (m, n)))
        if name == "amx":
            products = {"forward": (lambda x, w, dy: amx_matmul.matmul(x, w)),
                        "input_grad": (lambda x, w, dy: amx_matmul.matmul(dy, w, transpose_b=True)),
                        "weight_grad": (lambda x, w, dy: amx_matmul.matmul(x, dy, transpose_a=True))}
        else:
            def dot(a, b):
                return jnp.matmul(a, b, preferred_element_type=jnp.float32)
            products = {"forward": (lambda x, w, dy: dot(x, w)), "input_grad": (lambda x, w, dy: dot(dy, w.T)),
                        "weight_grad": (lambda x, w, dy: dot(x.T, dy))}
        for product, f in products.items():
            if name == "amx" and not amx_matmul.supports(*((m, k, n), (m, n, k), (k, m, n))[PRODUCTS.index(product)]):
                continue
            compiled = jax.jit(f).lower(x, w, dy).compile()
            compiled(x, w, dy).block_until_ready()
            runs[f"{name}/{product}"] = (lambda c=compiled, args=(x, w, dy): c(*args).block_until_ready())
    return runs


def main(argv):
    del argv
    args = flags.FLAGS
    state = "available" if amx_matmul.available() else f"unavailable: {amx_matmul.unavailable_reason()}"
    print(f"{jax.devices()[0].device_kind}: AMX matmul {state}")
    rows = []
    for shape in args.shapes:
        m, k, n = map(int, shape.split(","))
        runs = jax_products(m, k, n)
        times = {key: [] for key in runs}
        torch_times = []
        for _ in range(args.repeats):
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
            if args.torch_python:
                reply = subprocess.run([args.torch_python, "-c", TORCH, str(m), str(k), str(n), "3"],
                                       capture_output=True, text=True, check=True).stdout
                torch_times.append(json.loads(reply))
        medians = {key: statistics.median(value) for key, value in times.items()}
        for key in (torch_times[0] if torch_times else {}):
            medians[key] = statistics.median(t[key] for t in torch_times)
        gflops = {key: 2 * m * k * n / seconds / 1e9 for key, seconds in medians.items()}
        rows.append({"m": m, "k": k, "n": n, "seconds": medians, "gflop_per_s": gflops})
        print(f"M={m:5d} K={k:5d} N={n:5d}   GFLOP/s  " + "  ".join(
            f"{product}: " + " ".join(f"{name} {gflops[f'{name}/{product}']:6.0f}" for name in
                                      ("xla_f32", "xla_bf16", "amx", "torch_f32", "torch_bf16")
                                      if f"{name}/{product}" in gflops) for product in PRODUCTS), flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"device": jax.devices()[0].device_kind, "repeats": args.repeats,
                                                  "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
