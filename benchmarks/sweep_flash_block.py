r"""How many queries a flash-attention block should hold, measured where it matters: the whole DiT
training step (`bench_dit_step.jax_steps`, mixed precision, flash attention), one compiled step
per block size, timed interleaved round by round in one process (medians; ratios against the
first block size listed). A kernel timed alone favours bigger blocks than the step does: inside
the step the score blocks compete for cache with everything else.

    .venv/bin/python benchmarks/sweep_flash_block.py \
        --out=benchmarks/results/cpu/sweep_flash_block.json

Each `--shapes` entry is WIDTH:T,H,W (latent frames, height, width; 2x2 patches, head dim 64).
Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib
import statistics
import time
from unittest import mock

import jax
from absl import app, flags

from harness import jax_steps
from sora_jax.models import attention


def sweep(width: int, latent: tuple[int, int, int], blocks: list[int], depth: int, repeats: int) -> dict:
    runs = {}
    for block in blocks:
        with mock.patch.object(attention, "flash_block", lambda heads, keys, block=block: block):
            runs[block] = jax_steps(width, depth, width // 64, latent, 1, "mixed", "flash")[0]
    for run in runs.values():
        run()
    seconds = {block: [] for block in blocks}
    for _ in range(repeats):
        for block, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[block].append(time.perf_counter() - started)
    medians = {block: statistics.median(s) for block, s in seconds.items()}
    tokens = latent[0] * latent[1] * latent[2] // 4
    return {"width": width, "heads": width // 64, "latent": list(latent),
            "tokens": tokens, "rule_block": attention.flash_block(width // 64, tokens),
            "step_ms": {str(b): 1e3 * m for b, m in medians.items()},
            "speed_vs_first": {str(b): medians[blocks[0]] / m for b, m in medians.items()}}


flags.DEFINE_multi_string("shapes", ["192:8,16,64", "384:8,16,64", "192:8,16,32", "192:8,32,128"],
                          'WIDTH:T,H,W latent shapes (repeat for several).')
flags.DEFINE_multi_integer("blocks", [1024, 512, 256, 128],
                           'Flash-attention query blocks to sweep (repeat for several).')
flags.DEFINE_integer("depth", 4, 'Transformer blocks.')
flags.DEFINE_integer("repeats", 7, 'Timed repetitions; the best (or median) is reported.')
flags.DEFINE_string("out", "out/sweep_flash_block.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rows = []
    for shape in args.shapes:
        width, latent = shape.split(":")
        latent = tuple(int(v) for v in latent.split(","))
        tokens = latent[0] * latent[1] * latent[2] // 4
        blocks = [b for b in args.blocks if b <= tokens]
        row = sweep(int(width), latent, blocks, args.depth, args.repeats)
        rows.append(row)
        timings = ", ".join(f"{b} queries {row['step_ms'][str(b)]:.0f} ms ({row['speed_vs_first'][str(b)]:.3f}x)"
                            for b in blocks)
        print(f"width {row['width']} ({row['heads']} heads), {tokens} tokens (rule: {row['rule_block']}): {timings}",
              flush=True)
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        report = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "depth": args.depth,
                  "repeats": args.repeats, "rows": rows}
        pathlib.Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
