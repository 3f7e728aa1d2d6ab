r"""Why a VAE's reconstructions fail the trail probe: where their trail-colored pixels come from.

`trail_persistence` (evaluation/probes.py) takes every pixel labelled as paint in *any* frame and
asks that it still be painted in the last one. A reconstruction fails it two ways: paint it
draws too wide or too faint at times (true trail pixels it loses, stroke edges it widens), and
trail-colored pixels where no paint is — which, since a trail is its painter's color at 45 %,
is what a moving object smeared over the frames of one latent frame looks like (a *ghost*).
For each VAE, on the ladder's probe scenes (seeds 90000+): PSNR, the probe on truth and
reconstruction, per-frame recall / precision of trail pixels, and every reconstructed trail
pixel that is none in the truth, attributed to

    widened  within 1 px of a true trail pixel in the same frame;
    ghost    within 2 px of a true object of the painter's color in the frame or up to 3 frames
             either side (what temporal compression to one latent frame per 4 can smear);
    occluder within 1 px of a gray occluder (a blurred edge between its 0.5 gray and the dark
             background is a mid gray, which the nearest-palette labels call a dim trail shade);
    other    elsewhere.

    .venv/bin/python experiments/vae_trails.py --vae=assets/vae_tiny --vae=runs/vae_tiny_plus5k \
        --vae=runs/vae_tiny_edge_temporal --vae=assets/vae_tiny_t2 --out=experiments/results/vae_trails

The two runs in between fine-tune assets/vae_tiny 5,000 steps at lr 3e-4 (what more steps give),
the second with edge and temporal L1 terms:

    sora-jax train --config=sora_jax/configs/vae.py:physworld3d --config.data.dataset=physworld/tiny \
        --config.total_steps=5000 --workdir=runs/vae_tiny_plus5k
    ... the same, plus --config.loss.hooks.edge_l1=0.1 --config.loss.hooks.temporal_l1=0.05 \
        --workdir=runs/vae_tiny_edge_temporal
"""

import json
import pathlib

import numpy as np
from absl import app, flags
from scipy import ndimage

_VAE = flags.DEFINE_multi_string("vae", ["assets/vae_tiny"], "VAE runs or exports.")
_CLIPS = flags.DEFINE_integer("clips", 128, "Probe scenes.")
_OUT = flags.DEFINE_string("out", "", "Write vae_trails.json / .md here (optional).")
GHOST_FRAMES, GHOST_PX = 3, 2


def attribute(truth_labels: np.ndarray, recon_labels: np.ndarray) -> dict[str, int]:
    """Counts of trail pixels per frame: true, reconstructed, both, and the false ones by cause."""
    from sora_jax.evaluation import probes

    true, made = probes.trail_pixels(truth_labels), probes.trail_pixels(recon_labels)
    false = made & ~true
    widened = false & ndimage.binary_dilation(true, np.ones((1, 3, 3), bool))
    ghost = np.zeros_like(false)
    for color in range(probes.COLORS):
        painted_as = recon_labels == probes.TRAIL + color
        if not (false & painted_as).any():
            continue
        near = ndimage.binary_dilation(truth_labels == color, np.ones((1, 2 * GHOST_PX + 1, 2 * GHOST_PX + 1), bool))
        near = ndimage.maximum_filter1d(near.astype(np.uint8), 2 * GHOST_FRAMES + 1, axis=0).astype(bool)
        ghost |= false & painted_as & near & ~widened
    occluder = false & ~widened & ~ghost & ndimage.binary_dilation(truth_labels == probes.OCCLUDER,
                                                                   np.ones((1, 3, 3), bool))
    return {"true": int(true.sum()), "made": int(made.sum()), "both": int((true & made).sum()),
            "false_widened": int(widened.sum()), "false_ghost": int(ghost.sum()),
            "false_occluder": int(occluder.sum()),
            "false_other": int((false & ~widened & ~ghost & ~occluder).sum())}


def measure(vae_dir: str, scenes, truth: np.ndarray) -> dict:
    from sora_jax.evaluation import metrics, probes
    from sora_jax.pipelines import vae as vae_pipeline

    vae = vae_pipeline.load(vae_dir)
    recon = vae_pipeline.reconstruct(vae, truth)
    objects, cameras = [s.truth["objects"] for s in scenes], [s.scene.camera for s in scenes]
    counts = {}
    for t, r in zip(truth, recon):
        for key, value in attribute(probes.segment(t), probes.segment(r)).items():
            counts[key] = counts.get(key, 0) + value
    false = counts["made"] - counts["both"]
    return {"vae": vae_dir, "psnr": float(np.mean([metrics.psnr(t, r) for t, r in zip(truth, recon)])),
            "trail_persistence": {"truth": probes.score_videos(truth, objects, cameras)["trail_persistence"],
                                  "vae_recon": probes.score_videos(recon, objects, cameras)["trail_persistence"]},
            "trail_recall": counts["both"] / max(counts["true"], 1),
            "trail_precision": counts["both"] / max(counts["made"], 1),
            "false_share": {k: counts[f"false_{k}"] / max(false, 1) for k in ("widened", "ghost", "occluder", "other")},
            "pixels": counts}


def main(argv):
    del argv
    from sora_jax.data import physworld
    from sora_jax.scaling import compare

    world = physworld.WorldConfig(object_scale=1.4)
    scenes = [physworld.render_clip(compare.PROBE_SEED + i, *compare.PROBE_CLIP, world) for i in range(_CLIPS.value)]
    truth = np.stack([s.video for s in scenes])
    rows = [measure(v, scenes, truth) for v in _VAE.value]
    lines = ["| VAE | PSNR | trails recon / truth | trail px recall | precision "
             "| false: widened / ghost / occluder edge / other |", "|---|---|---|---|---|---|"]
    for r in rows:
        tp = r["trail_persistence"]
        share = r["false_share"]
        lines.append(f"| {r['vae']} | {r['psnr']:.2f} | {tp['vae_recon']['mean']:.2f} / {tp['truth']['mean']:.2f} | "
                     f"{r['trail_recall']:.2f} | {r['trail_precision']:.2f} | {share['widened']:.2f} / "
                     f"{share['ghost']:.2f} / {share['occluder']:.2f} / {share['other']:.2f} |")
    clips = f"{len(scenes)} probe scenes of {compare.PROBE_CLIP} (seeds {compare.PROBE_SEED}+)"
    markdown = "\n".join(lines) + f"\n\n{clips}.\n"
    print(markdown)
    if _OUT.value:
        out = pathlib.Path(_OUT.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "vae_trails.json").write_text(json.dumps({"clips": len(scenes), "rows": rows}, indent=1))
        (out / "vae_trails.md").write_text(markdown)


if __name__ == "__main__":
    app.run(main)
