r"""How many queries a flash-attention block should hold, measured where it matters: the whole DiT
training step (`bench_dit_step.jax_steps`, mixed precision, flash attention), one compiled step
per block size, timed interleaved round by round in one process (medians; ratios against the
first block size listed). A kernel timed alone favours bigger blocks than the step does: inside
the step the score blocks compete for cache with everything else.

    .venv/bin/python experiments/sweep_flash_block.py \
        --out=experiments/results/cpu/sweep_flash_block.json

Each `--shapes` entry is WIDTH:T,H,W (latent frames, height, width; 2x2 patches, head dim 64).
Nothing here is a test: numbers depend on the machine.
"""

import argparse
import json
import pathlib
import statistics
import time
from unittest import mock

import jax

from bench_dit_step import jax_steps  # a sibling script: the benchmark's compiled DiT step
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
    return {"width": width, "heads": width // 64, "latent": list(latent),
            "tokens": latent[0] * latent[1] * latent[2] // 4, "rule_block": attention.flash_block(width // 64, latent[0] * latent[1] * latent[2] // 4),
            "step_ms": {str(b): 1e3 * m for b, m in medians.items()},
            "speed_vs_first": {str(b): medians[blocks[0]] / m for b, m in medians.items()}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", nargs="+", default=["192:8,16,64", "384:8,16,64", "192:8,16,32", "192:8,32,128"])
    parser.add_argument("--blocks", type=int, nargs="+", default=[1024, 512, 256, 128])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="out/sweep_flash_block.json")
    args = parser.parse_args()
    rows = []
    for shape in args.shapes:
        width, latent = shape.split(":")
        latent = tuple(int(v) for v in latent.split(","))
        tokens = latent[0] * latent[1] * latent[2] // 4
        blocks = [b for b in args.blocks if b <= tokens]
        row = sweep(int(width), latent, blocks, args.depth, args.repeats)
        rows.append(row)
        print(f"width {row['width']} ({row['heads']} heads), {tokens} tokens (rule: {row['rule_block']}): " + ", ".join(
            f"{b} queries {row['step_ms'][str(b)]:.0f} ms ({row['speed_vs_first'][str(b)]:.3f}x)" for b in blocks), flush=True)
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps({"device": jax.devices()[0].device_kind, "jax": jax.__version__,
                                                      "depth": args.depth, "repeats": args.repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
