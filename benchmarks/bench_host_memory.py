r"""What keeping freed host memory buys (`sora_jax/host_memory.py`): the DiT training step with
glibc's default allocator against the retained one, in alternating child processes (the setting
is fixed for a process's lifetime), with the page faults and system CPU time of each step.

    .venv/bin/python benchmarks/bench_host_memory.py --out=benchmarks/results/cpu/bench_host_memory.json

Each child compiles one gradient step of `sora_jax/models/dit.py` (width `--width`, depth 4, one
clip of 2,048 tokens, `--dtype`, flash attention), warms it up and times `--steps` steps; the
parent alternates `--rounds` pairs of children and reports medians and their ratio. Nothing here
is a test: numbers depend on the machine.
"""

import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags


def child(width: int, dtype: str, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    from bench_dit_step import TEXT, _inputs  # the same clip, timesteps and text as the step benchmark

    from sora_jax import host_memory
    from sora_jax.models import dit

    x, t, text = _inputs((8, 16, 64), 1)
    compute, matmul = dit.DTYPES[dtype]
    model = dit.DiT(latent_channels=16, width=width, depth=4, heads=width // 64, text_encoder="minilm",
                    text_length=TEXT,
                    dtype=compute, matmul_dtype=matmul, attention_implementation="flash")
    params = model.init(jax.random.PRNGKey(0), x, t, text)
    grad = jax.jit(jax.grad(lambda p: jnp.mean(model.apply(p, x, t, text) ** 2)))
    for _ in range(5):  # warm-up: the heap grows to its working size over the first calls
        jax.block_until_ready(grad(params))
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        jax.block_until_ready(grad(params))
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return {"retained": host_memory.retain_freed_memory(), "step_seconds": seconds / steps,
            "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "system_cpu_seconds_per_step": (after.ru_stime - before.ru_stime) / steps,
            "user_cpu_seconds_per_step": (after.ru_utime - before.ru_utime) / steps}


def run_child(args, allocator: str) -> dict:
    env = dict(os.environ, SORA_JAX_HOST_MALLOC=allocator)
    command = [sys.executable, __file__, "--child", f"--width={args.width}", f"--dtype={args.dtype}",
               f"--steps={args.steps}"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


flags.DEFINE_integer("width", 192, 'Model width.')
flags.DEFINE_enum("dtype", "mixed", ["float32", "mixed", "bfloat16"], 'Compute dtype.')
flags.DEFINE_integer("steps", 10, 'Steps (sampling or training) to run.')
flags.DEFINE_integer("rounds", 3, 'Interleaved rounds per setting.')
flags.DEFINE_bool("child", False, 'Internal: run as the measured child process.')
flags.DEFINE_string("out", "out/bench_host_memory.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    if args.child:
        print(json.dumps(child(args.width, args.dtype, args.steps)))
        return
    results = {"retain": [], "default": []}
    for _ in range(args.rounds):
        for allocator in results:
            results[allocator].append(run_child(args, allocator))
            row = results[allocator][-1]
            print(f"{allocator:>7}: step {row['step_seconds'] * 1e3:6.1f} ms, {row['minor_faults_per_step']:7.0f} page "
                  "faults, "
                  f"system CPU {row['system_cpu_seconds_per_step'] * 1e3:5.0f} ms a step", flush=True)
    summary = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "retained"}
               for name, rows in results.items()}
    ratio = summary["default"]["step_seconds"] / summary["retain"]["step_seconds"]
    print(f"width {args.width} {args.dtype}: retained memory runs the step {ratio:.2f}x as fast "
          f"({summary['default']['step_seconds'] * 1e3:.0f} -> {summary['retain']['step_seconds'] * 1e3:.0f} ms, "
          f"median of {args.rounds})")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"width": args.width, "dtype": args.dtype, "steps": args.steps,
                                                  "speedup": ratio, "median": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    app.run(main)
