"""Sampling time per clip against steps and sampler, for a trained T2V run.

    .venv/bin/python benchmarks/bench_sampling.py --workdir=runs/t2v_tiny --out=out/bench_sampling.json

One 17-frame 32x56 clip (5x8x14 latent, 140 tokens), classifier-free guidance on (two DiT calls
per velocity, batched). Each configuration is compiled and run once untimed, then timed over
`--repeats` runs (median); VAE decode is timed separately. Numbers are seconds on this machine.
"""

import json
import pathlib
import statistics
import time

import numpy as np
from absl import app, flags

from sora_jax import generate

flags.DEFINE_string("workdir", "runs/t2v_tiny", "A trained run's workdir or export.")
flags.DEFINE_multi_integer("steps", [10, 20, 30, 50], 'Steps (sampling or training) to run.')
flags.DEFINE_multi_string("samplers", ["euler", "heun", "ab2"], 'Samplers to measure (repeat for several).')
flags.DEFINE_integer("repeats", 3, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/bench_sampling.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    generator = generate.Generator(args.workdir)
    shape = (5, 8, 14, generator.vae.latent_channels)
    rows = []
    for sampler in args.samplers:
        for steps in args.steps:
            def run(seed):
                return generator.pipeline.sample_latents(generator.params, ["a red ball bounces"], shape, seed=seed,
                                                     steps=steps, method=sampler)

            run(0)
            times = []
            for repeat in range(args.repeats):
                start = time.perf_counter()
                run(repeat + 1)
                times.append(time.perf_counter() - start)
            calls = steps * (2 if sampler == "heun" else 1)
            rows.append({"sampler": sampler, "steps": steps, "dit_calls": calls, "seconds": statistics.median(times)})
            print(f"{sampler:6s} {steps:3d} steps ({calls:3d} DiT calls): {rows[-1]['seconds']:.3f} s per clip")
    latents = np.zeros((1, *shape), np.float32)
    generator.pipeline.decode(latents)
    start = time.perf_counter()
    generator.pipeline.decode(latents)
    decode = time.perf_counter() - start
    print(f"VAE decode of the clip: {decode:.3f} s")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workdir": args.workdir, "latent_shape": shape, "rows": rows,
                               "decode_seconds": decode}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
