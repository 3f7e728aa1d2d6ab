r"""The PhysWorld 3D probes, validated: their scores on ground-truth renders (which they must score
near the top), on doctored renders (a still object drifting, one warped frame, a view mirrored
halfway — which they must score low), and on VAE reconstructions (the ceiling a DiT in that latent
can reach); the camera-move classifier's confusion on held-out truth and each move's flow features
(where `probes3d`'s thresholds come from); and a picture of orbiting scenes with cuts.

    .venv/bin/python experiments/physworld3d_probes.py --vae=assets/vae_physworld3d \
        --results=experiments/results/physworld3d

Scenes: the ladder's probe scenes (`world_evals.Physworld3dEval`, seeds 90000+, never in a
training split); the doctored scores use the clips with a moving camera and no cut.
"""

import collections
import json
import pathlib

import numpy as np
from absl import app, flags

_VAE = flags.DEFINE_string("vae", "", "A VAE run or export whose reconstructions give the ceilings (empty: skip).")
_RESULTS = flags.DEFINE_string("results", None, "Write physworld3d_probes.json / .md and pictures here.")
_CLIPS = flags.DEFINE_integer("clips", 192, "Probe scenes scored.")


def move_table(clips) -> dict:
    """Per named move: how often the classifier recovers it from the truth, what it says instead,
    and the 10th / 50th / 90th percentiles of the flow features."""
    from sora_jax.data import physworld3d
    from sora_jax.evaluation import probes3d

    table = collections.defaultdict(lambda: {"n": 0, "right": 0, "confused_with": collections.Counter(),
                                             "features": []})
    for clip in clips:
        if len(clip.video) == 1:
            continue
        features = probes3d.move_features(clip.video[:clip.scene.cut_frame])
        want, got = physworld3d.CAMERA_NAMES[clip.scene.camera], probes3d.classify_move(features)
        row = table[want]
        row["n"] += 1
        row["right"] += int(got == want)
        if got != want:
            row["confused_with"][str(got)] += 1
        if features is not None:
            row["features"].append(features)
    names = ("u0", "du_dx", "du_dy", "v0", "dv_dx", "dv_dy")
    return {move: {"n": row["n"], "accuracy": row["right"] / row["n"], "confused_with": dict(row["confused_with"]),
                   "feature_percentiles_10_50_90": {name: np.percentile(np.array(row["features"])[:, i],
                                                                         [10, 50, 90]).round(4).tolist()
                                                    for i, name in enumerate(names)}}
            for move, row in sorted(table.items())}


def picture(clips, out: pathlib.Path) -> None:
    """Orbiting scenes (and cuts): 5 frames per row, 4x nearest neighbour, the caption beside."""
    from sora_jax.data import physworld3d, video_io
    from sora_jax.scaling import compare

    chosen = [c for c in clips if len(c.video) > 1 and c.video.shape[1] < c.video.shape[2]
              and (physworld3d.CAMERA_NAMES[c.scene.camera].startswith("orbit") or c.scene.cut >= 0)][:6]
    columns = {f"frame {t}": np.stack([c.video[[t]] for c in chosen]) for t in (0, 4, 8, 12, 16)}
    video_io.write_video(out / "orbits_and_cuts.png", compare.still(compare.side_by_side(
        columns, len(chosen), [c.caption for c in chosen], scale=4)))


def main(argv):
    del argv
    from sora_jax.data import violations3d
    from sora_jax.scaling import compare, world_evals

    world = world_evals.Physworld3dEval()
    clips = world.scenes(_CLIPS.value)
    truth = np.stack([c.video for c in clips])
    report = {"clips": len(clips), "seeds": [world.seed, world.seed + len(clips) - 1],
              "probes": {"truth": world.score(truth, clips)}}
    moving = [c for c in clips if c.scene.camera != 0 and c.scene.cut < 0]
    for kind in violations3d.DOCTORED:
        videos = np.stack([violations3d.doctored(c, kind, np.random.default_rng(i)) for i, c in enumerate(moving)])
        report["probes"][f"doctored_{kind}"] = world.score(videos, moving)
    report["probes"]["truth_moving"] = world.score(np.stack([c.video for c in moving]), moving)
    if _VAE.value:
        from sora_jax.pipelines import vae as vae_pipeline

        vae = vae_pipeline.load(_VAE.value)
        recon = vae_pipeline.reconstruct(vae, truth)
        report["vae"] = _VAE.value
        report["probes"]["vae"] = world.score(recon, clips)
        report["psnr_db"] = float(np.mean([compare_psnr(a, b) for a, b in zip(truth, recon)]))
    report["camera_moves"] = move_table(clips)
    columns = [c for c in ("truth", "vae", "truth_moving", "doctored_drift", "doctored_warp", "doctored_mirror")
               if c in report["probes"]]
    lines = ["| probe | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for probe in world.shown:
        lines.append(f"| {probe} | " + " | ".join(compare.cell(report["probes"][c].get(probe)) for c in columns) + " |")
    lines += ["", "| camera move | n | recovered from truth | confused with |", "|---|---|---|---|"]
    lines += [f"| {move} | {row['n']} | {row['accuracy']:.2f} | {row['confused_with'] or ''} |"
              for move, row in report["camera_moves"].items()]
    if "psnr_db" in report:
        lines.append(f"\nVAE `{report['vae']}`: {report['psnr_db']:.2f} dB PSNR on these clips.")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if _RESULTS.value:
        out = pathlib.Path(_RESULTS.value)
        out.mkdir(parents=True, exist_ok=True)
        (out / "physworld3d_probes.json").write_text(json.dumps(report, indent=1, default=compare.jsonable))
        (out / "physworld3d_probes.md").write_text(markdown)
        picture(clips, out)


def compare_psnr(a: np.ndarray, b: np.ndarray) -> float:
    from sora_jax.evaluation import metrics

    return metrics.psnr(a, b)


if __name__ == "__main__":
    app.run(main)
