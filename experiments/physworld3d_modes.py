r"""Prompting modes on PhysWorld 3D: extend an orbit (the first 9 frames of held-out orbiting
clips given, 8 new ones made) and connect two views (a clip's first frames, then the same scene
from another view: 8 frames made between them), scored by the 3D probes on what the model made.

    .venv/bin/python experiments/physworld3d_modes.py --workdir=runs/ladder_physworld3d/32x \
        --results=experiments/results/physworld3d_modes

Extension: `camera_move` (does the orbit go on, the same way?), `smooth_view` and `anchoring`
over the last given frame and the 8 made, beside the same probes on the true continuation. Connection:
`smooth_view` over the made frames and the share of the scene's colors they keep.
"""

import json
import pathlib

import numpy as np
from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A T2V run on physworld3d/<variant>.")
_RESULTS = flags.DEFINE_string("results", None, "Write physworld3d_modes.json / .md and side_by_side.png here.")
_CLIPS = flags.DEFINE_integer("clips", 24, "Held-out orbiting clips per mode.")


def main(argv):
    del argv
    from sora_jax import generate
    from sora_jax.data import physworld3d
    from sora_jax.evaluation import probes3d
    from sora_jax.evaluation.probes import bootstrap_mean
    from sora_jax.scaling import compare

    generator = generate.Generator(_WORKDIR.value)
    orbit = physworld3d.WorldConfig(cut_prob=0.0, camera_probs=(0, 0.5, 0.5, 0, 0, 0, 0, 0, 0))
    clips = [physworld3d.render_clip([95_000, i], 17, 32, 56, orbit) for i in range(_CLIPS.value)]
    scores = {"extend": [], "extend_truth": [], "connect": []}
    shown = {"given 9 frames + truth": [], "given 9 frames + made": [], "connect: made between two views": []}
    for number, clip in enumerate(clips):
        objects, camera = clip.truth["objects"], clip.scene.camera
        made = generator.generate(generate.Request(prompt=clip.caption, mode="extend_forward", video=clip.video[:9],
                                                   frames=8, seed=number, enrich=False)).video
        for key, video in (("extend", made), ("extend_truth", clip.video)):
            result = probes3d.score_video(video[8:], objects, camera, -1)  # the last given frame and the 8 new
            scores[key].append({k: result[k] for k in ("camera_move", "smooth_view", "anchoring")})
        other_view = physworld3d.render(_second_view(clip.scene))[0]
        connected = generator.generate(generate.Request(prompt=clip.caption, mode="connect", video=clip.video[:5],
                                                        video2=other_view[:5], frames=8, seed=number,
                                                        enrich=False)).video
        middle = connected[5:13]
        labels = probes3d.segment(middle)
        seen = {c for c in range(probes3d.COLORS) if (labels == c).sum((1, 2)).max() >= probes3d.MIN_AREA}
        wanted = {o.color for o in clip.scene.objects}
        scores["connect"].append({"smooth_view": probes3d.smooth_view(connected, [slice(0, len(connected))]),
                                  "colors_kept": len(seen & wanted) / len(wanted)})
        if number < 4:
            shown["given 9 frames + truth"].append(clip.video)
            shown["given 9 frames + made"].append(made[:17])
            shown["connect: made between two views"].append(connected[:17])
    report = {key: {probe: bootstrap_mean([row[probe] for row in rows]) for probe in rows[0]}
              for key, rows in scores.items()}
    report["run"], report["clips"] = _WORKDIR.value, len(clips)
    lines = ["| mode | probe | made by the model | truth |", "|---|---|---|---|"]
    for probe in ("camera_move", "smooth_view", "anchoring"):
        lines.append(f"| extend an orbit | {probe} | {compare.cell(report['extend'][probe])} | "
                     f"{compare.cell(report['extend_truth'][probe])} |")
    for probe in ("smooth_view", "colors_kept"):
        lines.append(f"| connect two views | {probe} | {compare.cell(report['connect'][probe])} | |")
    markdown = "\n".join(lines) + "\n"
    if _RESULTS.value:
        columns = {k: np.stack(v) for k, v in shown.items()}
        compare.write_experiment(pathlib.Path(_RESULTS.value), "physworld3d_modes", report, markdown, columns,
                                 [c.caption for c in clips[:4]])
    else:
        print(markdown)
        print(json.dumps(report["extend"]))


def _second_view(scene):
    """The same scene seen from the other side, the camera still (the objects keep moving)."""
    import dataclasses

    from sora_jax.data import camera3d

    azimuth, elevation, distance = (float(v) for v in camera3d.orbit_pose(scene.path.position[0]))
    path = camera3d.shot_path(np.random.default_rng(0), "static", scene.frames, azimuth + np.pi, elevation, distance)
    return dataclasses.replace(scene, path=path, camera=0, cut=-1, cut_frame=scene.frames)


if __name__ == "__main__":
    app.run(main)
