r"""Activation memory of a DiT training step against tokens: full (XLA) vs chunked vs flash attention.

    .venv/bin/python benchmarks/bench_attention_memory.py --out=out/bench_attention_memory.json

A DiT (width 192, depth 2, 6 heads, MiniLM-shaped text) on one clip whose latent grows in time
(1k to 16k tokens, patch 1x2x2 over 32x32 latents). Each step (loss, gradients) is compiled, not
run: XLA's buffer assignment (`memory_analysis().temp_size_in_bytes`) is the activation memory
the step would take. With mixed precision on a CPU with AMX, `flash` is the fused C++ kernel,
whose own buffers XLA does not see: `flash_mixed` adds them (`amx_attention.workspace_bytes`).
Prints a table and writes JSON.
"""

import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from sora_jax.kernels import amx_attention
from sora_jax.models.dit import DiT

WIDTH, HEADS = 192, 6


def temp_bytes(implementation: str, frames: int, matmul_dtype=None) -> tuple[int, float]:
    model = DiT(latent_channels=16, width=WIDTH, depth=2, heads=HEADS, text_encoder="minilm", text_length=32,
                attention_implementation=implementation, matmul_dtype=matmul_dtype)
    x = jax.ShapeDtypeStruct((1, frames, 32, 32, 16), jnp.float32)
    t = jax.ShapeDtypeStruct((1, frames), jnp.float32)
    text = {"tokens": jax.ShapeDtypeStruct((1, 32, 384), jnp.float32), "mask": jax.ShapeDtypeStruct((1, 32), bool),
            "pooled": jax.ShapeDtypeStruct((1, 384), jnp.float32)}
    params = jax.eval_shape(lambda x, t, text: model.init(jax.random.PRNGKey(0), x, t, text)["params"], x, t, text)

    def loss(p, x, t, text):
        return jnp.mean(model.apply({"params": p}, x, t, text) ** 2)

    started = time.perf_counter()
    compiled = jax.jit(jax.grad(loss)).lower(params, x, t, text).compile()
    return compiled.memory_analysis().temp_size_in_bytes, time.perf_counter() - started


flags.DEFINE_multi_integer("frames", [4, 8, 16, 32, 64], 'Frames (or latent frames) per clip to measure.')
flags.DEFINE_string("out", "out/bench_attention_memory.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rows = []
    kernels = ("xla", "chunked", "flash")
    fused = amx_attention.available()  # mixed precision's `flash` on this CPU: the C++ kernel
    columns = kernels + (("flash_mixed",) if fused else ())
    print(f"{'tokens':>7} " + " ".join(f"{k + ' MiB':>14}" for k in columns))
    for frames in args.frames:
        row = {"tokens": frames * 256}
        for kernel in kernels:
            row[f"{kernel}_bytes"] = temp_bytes(kernel, frames)[0]
        if fused:  # XLA's temporaries + what the kernel allocates itself (not in XLA's count)
            row["flash_mixed_xla_bytes"] = temp_bytes("flash", frames, jnp.bfloat16)[0]
            row["flash_mixed_kernel_bytes"] = amx_attention.workspace_bytes(1, HEADS, frames * 256, frames * 256,
                                                                            WIDTH // HEADS, threads=os.cpu_count())
            row["flash_mixed_bytes"] = row["flash_mixed_xla_bytes"] + row["flash_mixed_kernel_bytes"]
        rows.append(row)
        print(f"{frames * 256:7d} " + " ".join(f"{row[f'{k}_bytes'] / 2**20:14.1f}" for k in columns), flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"device": str(jax.devices()[0]), "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
