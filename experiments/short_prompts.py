r"""Short prompts as a new user types them, through the enricher, sampled by every rung of a ladder
and scored by the world probes against the scene the enricher wrote.

    .venv/bin/python experiments/short_prompts.py --ladder=out/ladder \
        --out=experiments/results/ladder_demo/short_prompts.json

Each prompt of `experiments/prompts/short_prompts.txt` (66 prompts written for this) becomes a
training-style caption with `prompts.enrichment` (seed = its line number, 17 frames); what the
prompt names is kept, the rest drawn from the training distribution. Every rung samples every
caption at the ladder's probe clip with the same noise (`scaling/compare.sample_videos`), and
`evaluation/probes.score_videos` scores each video against the enriched scene's object table:
caption colors (the named colors appear), shapes (large objects), count, and the rest of the
probes. Prints one line per rung and writes JSON (per rung: the probes with bootstrap CIs, and
per prompt its caption and scores).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import app, flags

from sora_jax import prompts as prompts_lib
from sora_jax.data import palette, physworld
from sora_jax.evaluation import probes
from sora_jax.scaling import compare

PROMPTS = pathlib.Path(__file__).resolve().parent / "prompts" / "short_prompts.txt"
FLAGS = flags.FLAGS
flags.DEFINE_string("ladder", "out/ladder", "A ladder workdir (its rungs: subdirectories with final metrics).")
flags.DEFINE_multi_string("rungs", [], "Rung names to score (default: every finished rung, in compute order).")
flags.DEFINE_string("prompts", str(PROMPTS), "Prompt file: one per line, # comments.")
flags.DEFINE_string("out", "", "JSON output (optional).")

KEPT = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity", "color_constancy")


def read_prompts(path: str | pathlib.Path) -> list[str]:
    lines = (line.strip() for line in pathlib.Path(path).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def enriched_scenes(prompts: list[str], frames: int) -> list[tuple[prompts_lib.Enrichment, np.ndarray, int]]:
    """(enrichment, object table as physworld.object_table writes it, camera index) per prompt."""
    scenes = []
    for seed, prompt in enumerate(prompts):
        enrichment = prompts_lib.enrichment(prompt, frames=frames, seed=seed)
        table = np.full((physworld.MAX_OBJECTS, 5), -1, np.int32)
        for index, obj in enumerate(enrichment.objects[:physworld.MAX_OBJECTS]):
            table[index] = (palette.COLOR_NAMES.index(obj["color"]), palette.SHAPE_NAMES.index(obj["shape"]),
                            palette.SIZE_NAMES.index(obj["size"]), palette.MOTION_NAMES.index(obj["motion"]),
                            int(obj["paints"]))
        scenes.append((enrichment, table, palette.CAMERA_NAMES.index(enrichment.camera)))
    return scenes


def finished_rungs(ladder: pathlib.Path) -> list[pathlib.Path]:
    runs = [d for d in ladder.iterdir() if (d / "final_metrics.json").exists()]
    return sorted(runs, key=lambda d: json.loads((d / "final_metrics.json").read_text()).get("compute_flops", 0))


def main(argv):
    del argv
    from sora_jax import generate

    ladder = pathlib.Path(FLAGS.ladder)
    runs = [ladder / r for r in FLAGS.rungs] if FLAGS.rungs else finished_rungs(ladder)
    if not runs:
        raise SystemExit(f"{ladder} holds no finished rung (a subdirectory with final_metrics.json)")
    prompts = read_prompts(FLAGS.prompts)
    scenes = enriched_scenes(prompts, compare.PROBE_CLIP[0])
    captions = [e.caption for e, _, _ in scenes]
    report = {"prompts": len(prompts), "prompt_file": str(FLAGS.prompts), "probe_clip": compare.PROBE_CLIP,
              "rungs": {}, "per_prompt": [{"prompt": e.prompt, "caption": e.caption, "unhonoured": e.unhonoured}
                                          for e, _, _ in scenes]}
    for run in runs:
        generator = generate.Generator(run)
        latent_shape = generator.vae.latent_shape((1, *compare.PROBE_CLIP, 3))[1:]
        videos = compare.sample_videos(generator.pipeline, generator.params, captions, latent_shape)
        tables, cameras = [t for _, t, _ in scenes], [c for _, _, c in scenes]
        report["rungs"][run.name] = probes.score_videos(videos, tables, cameras)
        for entry, video, table, camera in zip(report["per_prompt"], videos, tables, cameras):
            entry[run.name] = {k: probes.score_video(video, table, camera)[k] for k in KEPT}
        scores = report["rungs"][run.name]
        print(f"{run.name}: " + ", ".join(f"{k} {compare.cell(scores[k])}" for k in KEPT[:3]), flush=True)
    if FLAGS.out:
        pathlib.Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(FLAGS.out).write_text(json.dumps(report, indent=1, default=compare.jsonable))


if __name__ == "__main__":
    app.run(main)
