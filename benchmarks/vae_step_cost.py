r"""What one training step of each VAE variant costs here, and what its whole recipe would.

    .venv/bin/python benchmarks/vae_step_cost.py --variants=tiny --variants=small --steps=3 \
        --out=benchmarks/results/cpu/vae_step_cost.json
    .venv/bin/python benchmarks/vae_step_cost.py --variants=base --steps=0  # compile only

For each `sora_jax/configs/vae.py` variant: the compiled train step of its video bucket (`batch_size`
crops of `crop_frames` × `crop_side`², the trainer's own step: optimizer, EMA and clipping
included) — parameters, XLA's FLOPs and temporary memory for one step, compile time — then the
median of `--steps` timed steps and the recipe's `total_steps` at that rate, in hours. The image
bucket (more, one-frame crops) costs about as much. Nothing here is a test: numbers depend on the
machine.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import jax
from absl import app, flags

from harness import compiled_train_step


def step_cost(variant: str, steps: int) -> dict:
    run, row = compiled_train_step(variant)
    times = []
    for _ in range(steps + 1 if steps else 0):  # the first call warms up
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    if times:
        row["step_seconds"] = statistics.median(times[1:])
        row["recipe_hours"] = row["step_seconds"] * row["total_steps"] / 3600
        row["tflops_per_s"] = row["step_flops"] / row["step_seconds"] / 1e12
    return row


flags.DEFINE_multi_enum("variants", ["tiny", "small"], ["micro", "tiny", "small", "base"],
                        'VAE variants of sora_jax/configs/vae.py (repeat for several).')
flags.DEFINE_integer("steps", 3, "timed steps after a warm-up one; 0 = compile only")
flags.DEFINE_string("out", "out/vae_step_cost.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rows = []
    for variant in args.variants:
        row = step_cost(variant, args.steps)
        rows.append(row)
        timed = (f", {row['step_seconds']:.2f} s a step ({row['tflops_per_s']:.3f} TFLOP/s): "
                 f"{row['total_steps']:,} steps = {row['recipe_hours']:.1f} h") if "step_seconds" in row else ""
        print(f"{variant:5s} {row['params'] / 1e6:6.1f}M params, batch {'x'.join(map(str, row['batch']))}, "
              f"{row['step_flops'] / 1e12:.2f} TFLOP a step, temp {row['temp_bytes'] / 2**30:.2f} GiB, "
              f"compile {row['compile_seconds']:.0f} s{timed}", flush=True)
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
                                   "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
