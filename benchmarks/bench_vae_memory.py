"""VAE peak memory against video length: one-shot vs chunked encode + decode.

    .venv/bin/python benchmarks/bench_vae_memory.py --out=out/bench_vae_memory.json

Each (mode, frames) point runs in a fresh process and reports its peak resident memory
(`ru_maxrss`) minus the same process's peak after imports and parameter init, so the figure is
what the encode + decode itself added. Weights are a random init of the chosen variant: memory
does not depend on their values.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from absl import app, flags

CHILD = r"""
import json, resource, sys, time
import jax, numpy as np
from sora_jax.models import vae_streaming
from sora_jax.models.vae import VideoVAE
mode, frames, side, variant, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
model = VideoVAE.from_variant(variant, spatial=4, temporal=4, latent_channels=16)
params = model.init(jax.random.PRNGKey(0), np.zeros((1, 5, 16, 16, 3), np.float32))["params"]
video = np.random.default_rng(0).uniform(-1, 1, (1, frames, side, side, 3)).astype(np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if mode == "one_shot":
    latents = vae_streaming.encode(model, params, video)
    out = vae_streaming.decode(model, params, latents)
else:
    latents = vae_streaming.encode(model, params, video, chunk_frames=chunk)
    out = vae_streaming.decode(model, params, latents, chunk_latents=chunk // 4)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mode": mode, "frames": frames, "side": side, "added_mb": (peak - base) / 1024,
                  "peak_mb": peak / 1024, "seconds": seconds, "out_shape": list(out.shape)}))
"""


flags.DEFINE_string("frames", "17,33,65", 'Frames (or latent frames) per clip to measure.')
flags.DEFINE_integer("side", 128, 'Frame height and width in pixels.')
flags.DEFINE_string("variant", "tiny", 'VAE variant (sora_jax/configs/vae.py).')
flags.DEFINE_integer("chunk", 8, "frames per chunk (a multiple of 4)")
flags.DEFINE_string("out", "out/bench_vae_memory.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rows = []
    for mode in ("one_shot", "chunked"):
        for frames in map(int, args.frames.split(",")):
            result = subprocess.run([sys.executable, "-c", CHILD, mode, str(frames), str(args.side), args.variant,
                                     str(args.chunk)], capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{mode:9} frames={frames:4d} {args.side}x{args.side}: +{row['added_mb']:8.1f} MB  "
                  f"(peak {row['peak_mb']:7.1f} MB, {row['seconds']:.1f} s)", flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variant": args.variant, "chunk_frames": args.chunk, "results": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
