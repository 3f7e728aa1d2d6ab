r"""World scale against tokenizer resolution: what the latent keeps, and what each choice costs.

For every (VAE, object scale) pair: render the ladder's held-out probe scenes (seeds 90000+, the
clip shape `scaling/compare.PROBE_CLIP` or `--clip`) in a world whose objects are `object_scale`
times the v1 world's, run them through the VAE, and score the world probes on the ground truth and
on the reconstructions (the ceiling any DiT trained on that latent can reach), with PSNR. Then
the cost side: tokens per clip at DiT patch 1 and 2 and the training FLOPs of one step of the
demo ladder's 32x model (batch 16) on that latent.

    .venv/bin/python experiments/world_vs_tokenizer.py --vae=assets/vae_tiny \
        --object_scale=1.0 --object_scale=1.4 --object_scale=1.8 \
        --out=experiments/results/world_vs_tokenizer.json

Writes JSON (one row per pair) and prints a markdown table (docs/scaling.md carries it).
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
from absl import app, flags

from sora_jax.configs import t2v
from sora_jax.data import physworld
from sora_jax.evaluation import metrics, probes
from sora_jax.pipelines import vae as vae_pipeline
from sora_jax.scaling import compare, flops, plan

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("vae", ["assets/vae_tiny"], "VAE run or export directories.")
flags.DEFINE_multi_float("object_scale", [1.0], "object scales of the world (1.0 = the v1 world).")
flags.DEFINE_integer("clips", 128, "probe scenes per pair.")
flags.DEFINE_list("clip", [str(n) for n in compare.PROBE_CLIP], "frames,height,width of the probe clips.")
flags.DEFINE_string("size", "L3d128", "DiT depth/width whose step FLOPs are reported (demo 32x).")
flags.DEFINE_integer("batch", 16, "batch of the reported DiT step.")
flags.DEFINE_string("out", "", "JSON output (optional).")

OBJECT_PROBES = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity",
                 "color_constancy", "trail_persistence")


def costs(vae: vae_pipeline.TrainedVae, clip, size: str, batch: int) -> dict:
    model = vae.config["model"]
    geometry = {"temporal": model["temporal_compression"], "spatial": model["spatial_compression"],
                "channels": model["latent_channels"]}
    thw = plan.latent_thw(clip, geometry)
    depth, width = plan.parse_size(size)
    model_config = t2v.get_config("tiny").model
    result = {"latent_thw": list(thw)}
    for patch in (1, 2):
        model_config.unlock()
        model_config.patch = (1, patch, patch)
        shape = plan.shape_for(depth, width, model_config, geometry["channels"])
        tokens = int(np.prod(shape.grid(thw)))
        result[f"tokens_patch{patch}"] = tokens
        result[f"dit_step_flops_patch{patch}"] = flops.train_step_flops(shape, thw, batch)
    return result


def measure(vae_dir: str, scale: float, count: int, clip) -> dict:
    vae = vae_pipeline.load(vae_dir)
    world = physworld.WorldConfig(object_scale=scale)
    scenes = [physworld.render_clip(compare.PROBE_SEED + i, *clip, world) for i in range(count)]
    truth = np.stack([s.video for s in scenes])
    start = time.perf_counter()
    recon = vae_pipeline.reconstruct(vae, truth)
    seconds = time.perf_counter() - start
    objects, cameras = [s.truth["objects"] for s in scenes], [s.scene.camera for s in scenes]
    truth_scores = probes.score_videos(truth, objects, cameras)
    recon_scores = probes.score_videos(recon, objects, cameras)
    row = {"vae": vae_dir, "object_scale": scale, "clips": count, "clip": list(clip),
           "psnr": float(np.mean([metrics.psnr(t, r) for t, r in zip(truth, recon)])),
           "reconstruct_s": seconds, "truth": truth_scores, "vae_recon": recon_scores,
           "ratio": {k: recon_scores[k]["mean"] / truth_scores[k]["mean"] for k in OBJECT_PROBES
                     if truth_scores[k]["mean"]}}
    row["min_ratio"] = min(row["ratio"].values())
    row.update(costs(vae, clip, FLAGS.size, FLAGS.batch))
    return row


def table(rows: list[dict]) -> str:
    head = ["VAE", "scale", "PSNR", *[p.replace("caption_", "") for p in OBJECT_PROBES], "min ratio",
            "tokens p2 / p1", "DiT step GFLOPs p2 / p1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [pathlib.Path(r["vae"]).name, f"{r['object_scale']:.1f}", f"{r['psnr']:.2f}"]
        cells += [f"{r['vae_recon'][p]['mean']:.2f} / {r['truth'][p]['mean']:.2f}" for p in OBJECT_PROBES]
        cells += [f"{r['min_ratio']:.2f}", f"{r['tokens_patch2']} / {r['tokens_patch1']}",
                  f"{r['dit_step_flops_patch2'] / 1e9:.0f} / {r['dit_step_flops_patch1'] / 1e9:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    clip = tuple(int(n) for n in FLAGS.clip)
    rows = []
    for vae_dir in FLAGS.vae:
        for scale in FLAGS.object_scale:
            rows.append(measure(vae_dir, scale, FLAGS.clips, clip))
            print(f"{vae_dir} scale {scale}: PSNR {rows[-1]['psnr']:.2f}, min ratio {rows[-1]['min_ratio']:.2f}",
                  flush=True)
    print(table(rows))
    if FLAGS.out:
        pathlib.Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(FLAGS.out).write_text(json.dumps({"rows": rows, "table": table(rows)}, indent=1))


if __name__ == "__main__":
    app.run(main)
