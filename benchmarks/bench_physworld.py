"""PhysWorld rendering throughput (clips/s) per dataset config, printed and written as JSON.

    .venv/bin/python benchmarks/bench_physworld.py --out=out/bench_physworld.json

Each config renders its own mix of shapes (aspect ratios x durations, images included) from the
seeds its tfds builder would use, single process, after one warm-up clip.
"""

from __future__ import annotations

import json
import pathlib
import platform
import time

from absl import app, flags

from sora_jax.data import physworld
from sora_jax.data.physworld_tfds import builder


def measure(config: builder.PhysworldConfig, seconds: float) -> dict:
    physworld.render_clip(0, *config.example_shape([0]), config.world)  # warm-up
    clips, frames, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        seed = config.example_seed("train", clips)
        shape = config.example_shape(seed)
        physworld.render_clip(seed, *shape, config.world)
        clips, frames = clips + 1, frames + shape[0]
    elapsed = time.perf_counter() - start
    return {"config": config.name, "clips": clips, "seconds": round(elapsed, 3),
            "clips_per_s": round(clips / elapsed, 1), "frames_per_s": round(frames / elapsed, 1)}


flags.DEFINE_string("configs", "tiny,small", 'PhysWorld variants, comma-separated.')
flags.DEFINE_float("seconds", 5.0, 'Seconds to spend per measurement (video seconds for make_scale_doc).')
flags.DEFINE_string("out", "out/bench_physworld.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    configs = {c.name: c for c in builder.BUILDER_CONFIGS}
    rows = [measure(configs[name], args.seconds) for name in args.configs.split(",")]
    print(f"{'config':8} {'clips/s':>9} {'frames/s':>10} {'clips':>7}")
    for row in rows:
        print(f"{row['config']:8} {row['clips_per_s']:9.1f} {row['frames_per_s']:10.1f} {row['clips']:7d}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "results": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
