"""Sampling time per clip against steps and sampler, for a trained T2V run.

    .venv/bin/python experiments/bench_sampling.py --workdir=runs/t2v_tiny --out=out/bench_sampling.json

One 17-frame 32x56 clip (5x8x14 latent, 140 tokens), classifier-free guidance on (two DiT calls
per velocity, batched). Each configuration is compiled and run once untimed, then timed over
`--repeats` runs (median); VAE decode is timed separately. Numbers are seconds on this machine.
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy as np

from sora_jax import generate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/t2v_tiny")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30, 50])
    parser.add_argument("--samplers", nargs="+", default=["euler", "heun", "ab2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="out/bench_sampling.json")
    args = parser.parse_args()
    generator = generate.Generator(args.workdir)
    shape = (5, 8, 14, generator.vae.latent_channels)
    rows = []
    for sampler in args.samplers:
        for steps in args.steps:
            def run(seed):
                return generator.task.sample_latents(generator.params, ["a red ball bounces"], shape, seed=seed,
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
    generator.task.decode(latents)
    start = time.perf_counter()
    generator.task.decode(latents)
    decode = time.perf_counter() - start
    print(f"VAE decode of the clip: {decode:.3f} s")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workdir": args.workdir, "latent_shape": shape, "rows": rows,
                               "decode_seconds": decode}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
