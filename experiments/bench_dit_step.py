r"""DiT training-step throughput: JAX (f32 and bf16 compute) against a plain PyTorch eager
reference of the same network, interleaved A/B in one run, MFU against matmul ceilings measured
in the same process.

    .venv/bin/python experiments/bench_dit_step.py --out=out/bench_dit_step.json
    # with the PyTorch reference (a separate venv: `python3.12 -m venv /tmp/refvenv &&
    #   /tmp/refvenv/bin/pip install torch==2.13.0 numpy`):
    .venv/bin/python experiments/bench_dit_step.py --torch_python=/tmp/refvenv/bin/python

JAX runs three precisions (`model.dtype`): float32; mixed (bf16 matmul operands, f32
accumulation, output and everything else); bfloat16 (all compute). Parameters stay f32.
The network: `sora_jax/models/dit.py` (full attention, QK-norm, 3D RoPE, cross-attention to 33
text tokens, per-frame adaLN-Zero, GELU MLP) and its mirror in `experiments/torch_dit_block.py`;
one AdamW step on one batch (the PyTorch process stays alive and steps on request, so both
frameworks alternate on a warm machine). Model FLOPs come from `sora_jax/scaling/flops.py`. Each
configuration is compiled / warmed up once, then timed `--repeats` times, alternating
frameworks; the median is reported. Nothing here is a test: numbers depend on the machine.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sora_jax.models.dit import DTYPES, DiT
from sora_jax.scaling import flops
from sora_jax.train import throughput

TEXT = 32


def jax_step(width: int, depth: int, latent, dtype: str, remat: str = "none"):
    heads = width // 64
    compute, matmul = DTYPES[dtype]
    model = DiT(latent_channels=16, width=width, depth=depth, heads=heads, text_encoder="minilm", text_length=TEXT,
                dtype=compute, matmul_dtype=matmul, remat=remat)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, *latent, 16)), jnp.float32)
    t = jnp.full((1, latent[0]), 0.5, jnp.float32)
    text = {"tokens": jnp.asarray(rng.normal(size=(1, TEXT, 384)), jnp.float32), "mask": jnp.ones((1, TEXT), bool),
            "pooled": jnp.asarray(rng.normal(size=(1, 384)), jnp.float32)}
    params = model.init(jax.random.PRNGKey(0), x, t, text)["params"]
    optimizer = optax.adamw(1e-4)
    state = (params, optimizer.init(params))

    def loss(p):
        return jnp.mean((model.apply({"params": p}, x, t, text) - x) ** 2)

    def step(state):
        params, opt = state
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = optimizer.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), value

    started = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state).compile()
    compile_seconds = time.perf_counter() - started
    memory = compiled.memory_analysis()
    holder = {"state": state}

    def run():
        holder["state"], value = compiled(holder["state"])
        value.block_until_ready()

    run()
    shape = flops.DiTShape(width=width, depth=depth, heads=heads, latent_channels=16, text_length=TEXT)
    return run, {"compile_seconds": compile_seconds, "temp_bytes": memory.temp_size_in_bytes,
                 "model_flops": flops.train_step_flops(shape, latent, 1), "tokens": shape.grid(latent)[0]
                 * shape.grid(latent)[1] * shape.grid(latent)[2]}


class TorchStep:
    """The PyTorch mirror in its own venv, kept alive: each `()` runs and times one step there."""

    def __init__(self, python: str, width: int, depth: int, latent):
        script = pathlib.Path(__file__).with_name("torch_dit_block.py")
        self.process = subprocess.Popen([python, str(script), str(width), str(depth), *map(str, latent), str(TEXT)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self) -> float:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", type=int, nargs="+", default=[192, 384])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--latent", type=int, nargs=3, default=[8, 16, 64])  # 8 x 8 x 32 = 2048 tokens
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch_python", default=None)
    parser.add_argument("--out", default="out/bench_dit_step.json")
    args = parser.parse_args()
    ceiling_f32 = throughput.matmul_peak_flops(dtype=jnp.float32)
    ceiling_bf16 = throughput.matmul_peak_flops(dtype=jnp.bfloat16)
    print(f"matmul ceiling (this process): f32 {ceiling_f32 / 1e9:.0f} GFLOP/s, bf16 operands "
          f"{ceiling_bf16 / 1e9:.0f} GFLOP/s")
    rows = []
    for width in args.widths:
        runs = {dtype: jax_step(width, args.depth, tuple(args.latent), dtype) for dtype in ("float32", "mixed", "bfloat16")}
        times = {dtype: [] for dtype in runs}
        torch_times = []
        torch_run = TorchStep(args.torch_python, width, args.depth, args.latent) if args.torch_python else None
        for _ in range(args.repeats):  # interleaved A/B: both see the same machine state
            for dtype, (run, _) in runs.items():
                started = time.perf_counter()
                run()
                times[dtype].append(time.perf_counter() - started)
            if torch_run:
                torch_times.append(torch_run())
        if torch_run:
            torch_run.close()
        info = runs["float32"][1]
        row = {"width": width, "depth": args.depth, "tokens": info["tokens"], "model_flops": info["model_flops"]}
        for dtype in runs:
            seconds = statistics.median(times[dtype])
            row[dtype] = {"step_seconds": seconds, "tokens_per_s": info["tokens"] / seconds,
                          "tflops_per_s": info["model_flops"] / seconds / 1e12,
                          "mfu_vs_f32_matmul": info["model_flops"] / seconds / ceiling_f32,
                          "mfu_vs_bf16_matmul": info["model_flops"] / seconds / ceiling_bf16,
                          "compile_seconds": runs[dtype][1]["compile_seconds"], "temp_bytes": runs[dtype][1]["temp_bytes"]}
        if torch_times:
            seconds = statistics.median(torch_times)
            row["torch_f32"] = {"step_seconds": seconds, "mfu_vs_f32_matmul": info["model_flops"] / seconds / ceiling_f32}
            row["jax_f32_over_torch"] = seconds / row["float32"]["step_seconds"]
            row["jax_bf16_over_torch"] = seconds / row["bfloat16"]["step_seconds"]
            row["jax_mixed_over_torch"] = seconds / row["mixed"]["step_seconds"]
        rows.append(row)
        line = (f"width {width}: f32 {row['float32']['step_seconds'] * 1e3:.0f} ms "
                f"(MFU {row['float32']['mfu_vs_f32_matmul']:.2f} of f32), mixed {row['mixed']['step_seconds'] * 1e3:.0f} ms, "
                f"bf16 {row['bfloat16']['step_seconds'] * 1e3:.0f} ms")
        if torch_times:
            line += (f"; torch f32 {row['torch_f32']['step_seconds'] * 1e3:.0f} ms -> JAX f32 {row['jax_f32_over_torch']:.2f}x, "
                     f"mixed {row['jax_mixed_over_torch']:.2f}x torch")
        print(line, flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"device": str(jax.devices()[0]), "ceiling_f32": ceiling_f32,
                                                  "ceiling_bf16": ceiling_bf16, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
