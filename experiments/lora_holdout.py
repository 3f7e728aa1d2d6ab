r"""LoRA on a folder of clips that shows what the base model never saw: PhysWorld holds the pair
(green, triangle) out of every training split, so a base DiT has learned green things and
triangles but never a green triangle. A user's folder of such clips, a LoRA run of minutes, and
the probes before and after. `--concept=rise` teaches a motion no split draws instead: objects
that float up against gravity (`palette.MOTION_NAMES` "rise"), scored by the `rise` probe.

    .venv/bin/python experiments/lora_holdout.py --base=runs/ladder_demo/32x --workdir=runs/lora_holdout \
        --out=experiments/results/lora_holdout
    .venv/bin/python experiments/lora_holdout.py --concept=rise --base=runs/ladder_cpu_v2/32x \
        --workdir=runs/lora_rise --out=experiments/results/lora_rise_cpu/r16

Stages (`--stages`, in order; each skips what is already there):
  folder    `--clips` held-out clips (17x32x56, seeds [7001, i]), written as a user would have them:
            clip_000.mp4 + clip_000.txt (the caption), ... in <workdir>/folder
  train     `sora_jax/configs/t2v.py:lora` on that folder (`folder:` dataset), rank `--rank`, alpha =
            rank, `--steps` steps at `--lr`; the base frozen (its fingerprint in the run's config)
  evaluate  base and base + adapters, same noise per prompt, on (a) `--probe_samples` *new* held-out
            scenes of one green triangle (or one riser) each (seeds [7002, i]; one object, so the shape
            probe decides its shape by majority): the probes on their captions, against the VAE ceiling on those
            scenes; (b) the ladder's standard probe scenes (seeds 90000+): the same probes, and the
            flow loss on their latents at 4 timestep quantiles, paired per triple, with a bootstrap CI
            of the difference. Writes lora_holdout.json, lora_holdout.md and side_by_side.png
            (held-out prompts: base | LoRA | truth) under --out.
  table     one row per recipe point: every */lora_holdout.json under --out, into --out/sweep.md
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np
from absl import app, flags

from sora_jax.data import physworld, video_io
from sora_jax.evaluation import probes
from sora_jax.scaling import compare

FLAGS = flags.FLAGS
flags.DEFINE_string("base", None, "The base run (a finished text-to-video workdir or export).")
flags.DEFINE_string("workdir", "runs/lora_holdout", "Where the folder and the LoRA run go.")
flags.DEFINE_string("out", "experiments/results/lora_holdout", "Where the small results go.")
flags.DEFINE_list("stages", ["folder", "train", "evaluate"], "Stages to run, in order.")
flags.DEFINE_integer("clips", 48, "Held-out clips in the folder.")
flags.DEFINE_integer("prior_clips", 0, "Standard-world clips added to the folder (prior preservation).")
flags.DEFINE_integer("steps", 400, "LoRA training steps.")
flags.DEFINE_integer("rank", 16, "LoRA rank (alpha = rank).")
flags.DEFINE_list("targets", None, "Layer patterns that get adapters (default: the lora config's, attention and "
                  "MLP); e.g. add '*modulation,pooled_proj' to adapt the caption's global (adaLN) path too.")
flags.DEFINE_float("lr", 1e-3, "LoRA learning rate.")
flags.DEFINE_integer("batch", 8, "LoRA batch size.")
flags.DEFINE_float("text_dropout", None, "Caption dropout while fine-tuning (default: the lora config's).")
flags.DEFINE_integer("probe_samples", 64, "Scenes per probe set (held-out and standard).")
flags.DEFINE_string("tag", "lora", "The LoRA run's directory under --workdir (one per recipe point).")
flags.DEFINE_enum("concept", "holdout", ["holdout", "rise"], "What the folder teaches: the held-out pair (green "
                  "triangles) or a motion no split draws (objects that float up).")

FOLDER_SEED, EVAL_SEED, PRIOR_SEED = 7001, 7002, 7005
KEPT = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity", "color_constancy",
        "trail_persistence")


@dataclasses.dataclass(frozen=True)
class Concept:
    """What the folder teaches: the world its clips come from, the world of the evaluation scenes
    (one object a scene), the probes the table leads with, and whether the `rise` probe applies."""
    what: str
    folder_world: physworld.WorldConfig
    eval_world: physworld.WorldConfig
    headline: tuple[str, ...]
    rise: bool = False


CONCEPTS = {
    # The attribute pair PhysWorld holds out of every split. Evaluated one object a scene: with
    # several green triangles the shape probe can only ask whether *some* green object is a
    # triangle; with one, its shape is decided by majority.
    "holdout": Concept("one green triangle each", physworld.WorldConfig(only_holdout=True),
                       physworld.WorldConfig(only_holdout=True, max_objects=1),
                       ("caption_colors", "caption_shapes", "permanence")),
    # A motion no split draws: gravity reversed (`palette.MOTION_NAMES` "rise"); captions say
    # "floats up", "rises to the top". Folder scenes hold one or two risers.
    "rise": Concept("one rising object each", physworld.WorldConfig(motion_probs=(0, 0, 0, 1), max_objects=2),
                    physworld.WorldConfig(motion_probs=(0, 0, 0, 1), max_objects=1),
                    ("rise", "caption_colors", "permanence"), rise=True),
}


def held_out_scenes(seed: int, count: int, world: physworld.WorldConfig) -> list[physworld.Clip]:
    return [physworld.render_clip([seed, i], *compare.PROBE_CLIP, world) for i in range(count)]


def write_folder(folder: pathlib.Path, count: int, concept: Concept, prior: int = 0) -> None:
    """`count` clips of the concept, plus `prior` clips of the standard world (prior preservation,
    as DreamBooth: the adapters also see what the base already draws, so they learn the concept
    rather than a new world)."""
    if folder.exists() and len(list(folder.glob("*.mp4"))) == count + prior:
        return
    folder.mkdir(parents=True, exist_ok=True)
    clips = held_out_scenes(FOLDER_SEED, count, concept.folder_world) + held_out_scenes(
        PRIOR_SEED, prior, physworld.WorldConfig())
    for i, clip in enumerate(clips):
        video_io.write_video(folder / f"clip_{i:03d}.mp4", clip.video)
        (folder / f"clip_{i:03d}.txt").write_text(clip.caption + "\n")
    print(f"folder: {count} clips ({concept.what.replace('one ', '').replace(' each', 's')}) and {prior} standard "
          f"ones in {folder}")


def _score(videos: np.ndarray, scenes, concept: Concept) -> dict:
    """The world probes, plus — for the rise concept — `rise` on each scene's one object."""
    scores = compare.score(videos, scenes)
    if concept.rise:
        scores["rise"] = probes.bootstrap_mean([
            probes.rise(probes.detect(probes.segment(video)), int(scene.truth["objects"][0][0]), video.shape[1])
            for video, scene in zip(videos, scenes)])
    return scores


def train(base: str, folder: pathlib.Path, workdir: pathlib.Path) -> dict:
    from sora_jax.configs import t2v
    from sora_jax.train import trainer

    config = t2v.get_config("lora")
    config.lora.base = base
    config.lora.rank, config.lora.alpha = FLAGS.rank, float(FLAGS.rank)
    if FLAGS.targets:
        config.lora.targets = tuple(FLAGS.targets)
    config.data.dataset = f"folder:{folder}"
    config.data.batch_size, config.data.max_batch_size = FLAGS.batch, 4 * FLAGS.batch
    config.total_steps = FLAGS.steps
    config.optimizer.learning_rate = FLAGS.lr
    if FLAGS.text_dropout is not None:
        config.flow.text_dropout = FLAGS.text_dropout
    config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, FLAGS.steps // 10)
    config.eval.num_clips = 16
    config.eval.num_samples = 2
    config.log.eval_every_steps = FLAGS.steps + 1
    config.checkpoint.every_steps = 100
    start = time.time()
    results = trainer.train(config, workdir)
    results["wall_seconds"] = time.time() - start
    (workdir / "lora_training.json").write_text(json.dumps(results, indent=1, default=compare.jsonable))
    return results


def _paired_difference(a: np.ndarray, b: np.ndarray, samples: int = 1000) -> dict:
    """Mean of b - a over paired values and its 95 % bootstrap CI."""
    return probes.bootstrap_mean(np.asarray(b) - np.asarray(a), samples)


def _measure(pipeline, params, held, standard, clips, concept: Concept) -> tuple[dict, np.ndarray, np.ndarray]:
    """(probe results and validation loss, per-triple losses, the first held-out videos)."""
    held_videos = compare.sample_scenes(pipeline, params, held)
    standard_videos = compare.sample_scenes(pipeline, params, standard)
    losses = pipeline.validation_losses(params, clips, quantiles=4)
    result = {"held_out": _score(held_videos, held, concept), "standard": compare.score(standard_videos, standard),
              "val_loss": float(np.mean(losses))}
    return result, losses, held_videos[:4]


def evaluate(base: str, lora_run: pathlib.Path, out: pathlib.Path) -> dict:
    """Base (measured once per workdir and probe count, then read back) and base + adapters."""
    from sora_jax.models import lora
    from sora_jax.pipelines import adapters
    from sora_jax.pipelines import t2v as t2v_pipeline

    concept = CONCEPTS[FLAGS.concept]
    count = FLAGS.probe_samples
    held, standard = held_out_scenes(EVAL_SEED, count, concept.eval_world), compare.probe_scenes(count)
    pipeline, base_params, base_meta, base_step = t2v_pipeline.load(base)  # read once, for both models
    clips = [{"latent": latent, "caption": scene.caption}
             for scene, latent in zip(standard, pipeline.encode(np.stack([s.video for s in standard])))]
    report = {"base": base, "lora_run": str(lora_run), "concept": FLAGS.concept, "what": concept.what,
              "probe_samples": count, "held_out_seeds": [EVAL_SEED, "0.." + str(count - 1)], "models": {},
              "ceilings": {"held_out": compare.ceilings(pipeline, held, lambda v, s: _score(v, s, concept)),
                           "standard": compare.ceilings(pipeline, standard)}}
    cached = lora_run.parent / (f"base_eval_{count}_single.npz" if FLAGS.concept == "holdout"
                                else f"base_eval_{FLAGS.concept}_{count}.npz")
    if cached.exists():
        stored = np.load(cached, allow_pickle=False)
        report["models"]["base"] = json.loads(str(stored["result"]))
        base_losses, base_videos = stored["losses"], stored["videos"]
    else:
        print(f"evaluate: base: {count} held-out and {count} standard scenes", flush=True)
        report["models"]["base"], base_losses, base_videos = _measure(pipeline, base_params, held, standard, clips,
                                                                      concept)
        np.savez(cached, result=json.dumps(report["models"]["base"], default=compare.jsonable), losses=base_losses,
                 videos=base_videos)
    print(f"evaluate: LoRA ({lora_run.name}): {count} held-out and {count} standard scenes", flush=True)
    config, params, _, _ = adapters.load_adapted(
        adapters.Base(base, base_params, base_meta, base_step, lora.fingerprint(base_params)), str(lora_run))
    report["models"]["LoRA"], losses, videos = _measure(t2v_pipeline.T2VPipeline(config), params, held, standard,
                                                        clips, concept)
    columns = {"base": base_videos, "LoRA": videos}
    report["val_loss_difference"] = _paired_difference(base_losses, losses)
    record = lora_run / "lora_training.json"
    meta = json.loads(record.read_text()) if record.exists() else {}
    report["training"] = {key: meta.get(key) for key in ("step", "param_count", "wall_seconds") if key in meta}
    run_config = json.loads((lora_run / "config.json").read_text())
    report["recipe"] = {"rank": run_config["lora"]["rank"], "alpha": run_config["lora"]["alpha"],
                        "learning_rate": run_config["optimizer"]["learning_rate"], "steps": run_config["total_steps"],
                        "batch": run_config["data"]["batch_size"], "clips": FLAGS.clips,
                        "prior_clips": FLAGS.prior_clips,
                        "text_dropout": run_config["flow"]["text_dropout"], "targets": run_config["lora"]["targets"]}
    columns["truth"] = np.stack([s.video for s in held[:4]])
    compare.write_experiment(out, "lora_holdout", report, markdown(report), columns, [s.caption for s in held[:4]])
    return report


def markdown(report: dict) -> str:
    lines = []
    concept = CONCEPTS[report.get("concept", "holdout")]
    for part, title, kept in (("held_out", f"held-out scenes ({concept.what})", (("rise",) if concept.rise else ())
                               + KEPT), ("standard", "standard probe scenes", KEPT)):
        ceiling = report["ceilings"][part]
        lines += [f"**{title}**, {report['probe_samples']} scenes, mean [95 % CI]:", "",
                  "| probe | base | LoRA | VAE ceiling | truth | LoRA / ceiling |", "|---|---|---|---|---|---|"]
        for probe in kept:
            base, tuned = report["models"]["base"][part].get(probe), report["models"]["LoRA"][part].get(probe)
            vae = ceiling["vae"].get(probe, {}).get("mean")
            ratio = f"{tuned['mean'] / vae:.2f}" if tuned and tuned["mean"] is not None and vae else "—"
            vae_cell, truth_cell = compare.cell(ceiling["vae"].get(probe)), compare.cell(ceiling["truth"].get(probe))
            lines.append(f"| {probe} | {compare.cell(base)} | {compare.cell(tuned)} | {vae_cell} | {truth_cell} "
                         f"| {ratio} |")
        lines.append("")
    difference = report["val_loss_difference"]
    lines.append(f"Validation flow loss on the standard scenes: base {report['models']['base']['val_loss']:.4f}, "
                 f"LoRA {report['models']['LoRA']['val_loss']:.4f} (paired difference {difference['mean']:+.4f} "
                 f"[{difference['low']:+.4f}, {difference['high']:+.4f}]).")
    return "\n".join(lines) + "\n"


def table(root: pathlib.Path) -> str:
    """One row per recipe point (every `*/lora_holdout.json` under `root`): what changed against
    the base on the held-out and the standard scenes; one table per base run."""
    from sora_jax.models import lora

    reports = [json.loads(path.read_text()) for path in sorted(root.glob("*/lora_holdout.json"))]
    headline = CONCEPTS[reports[0].get("concept", "holdout") if reports else "holdout"].headline
    names = [probe.replace("caption_", "") for probe in headline]
    out = []
    for base_run in dict.fromkeys(report["base"] for report in reports):
        group = [report for report in reports if report["base"] == base_run]
        base = group[0]["models"]["base"]
        shown = "/".join(pathlib.Path(base_run).parts[-2:])  # e.g. ladder_cpu_t2/32x, not this machine's path
        out += [f"base `{shown}`: held-out {' / '.join(names)} " + " / ".join(
                    compare.cell(base["held_out"][p]) for p in headline)
                + "; standard " + " / ".join(compare.cell(base["standard"][p])
                                              for p in ("caption_colors", "caption_shapes", "permanence")), "",
                "| rank | layers | LR | steps | caption dropout | clips (+ standard) | "
                + " | ".join(f"held-out {n}" for n in names)
                + " | standard colors | standard shapes | standard permanence | val loss change |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for report in sorted(group, key=lambda r: (r["recipe"]["text_dropout"], r["recipe"]["learning_rate"],
                                                   r["recipe"]["steps"], r["recipe"].get("prior_clips", 0))):
            recipe, tuned, d = report["recipe"], report["models"]["LoRA"], report["val_loss_difference"]
            cells = [compare.cell(tuned["held_out"][probe]) for probe in headline] + [
                compare.cell(tuned["standard"][probe]) for probe in ("caption_colors", "caption_shapes", "permanence")]
            clips = f"{recipe.get('clips', 48)}" + (f" + {recipe['prior_clips']}" if recipe.get("prior_clips") else "")
            extra = [t for t in recipe.get("targets", lora.DEFAULT_TARGETS) if t not in lora.DEFAULT_TARGETS]
            layers = "attention, MLP" + "".join(f" + `{t}`" for t in extra)
            head = (f"| {recipe['rank']} | {layers} | {recipe['learning_rate']:g} | {recipe['steps']} | "
                    f"{recipe['text_dropout']:g} | {clips} | ")
            out.append(head + " | ".join(cells) + f" | {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] |")
        out.append("")
    return "\n".join(out)


def main(argv):
    del argv
    if not FLAGS.base:
        raise app.UsageError("--base is required: a finished text-to-video run")
    workdir, out = pathlib.Path(FLAGS.workdir), pathlib.Path(FLAGS.out)
    folder, lora_run = workdir / "folder", workdir / FLAGS.tag
    for stage in FLAGS.stages:
        if stage == "folder":
            write_folder(folder, FLAGS.clips, CONCEPTS[FLAGS.concept], FLAGS.prior_clips)
        elif stage == "train":
            print(json.dumps({k: v for k, v in train(FLAGS.base, folder, lora_run).items()
                              if isinstance(v, (int, float, str))}, indent=1))
        elif stage == "evaluate":
            evaluate(FLAGS.base, lora_run, out)
        elif stage == "table":
            text = table(out)
            (out / "sweep.md").write_text(text)
            print(text)
        else:
            raise app.UsageError(f"unknown stage {stage!r}; valid: folder, train, evaluate, table")


if __name__ == "__main__":
    app.run(main)
