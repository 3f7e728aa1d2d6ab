r"""Few-step sampling by reflow: a teacher's (noise, sample) pairs, a student trained on them, and
the world probes of the student's 4-step samples against the teacher's 30-step ones.

    .venv/bin/python experiments/distill.py --teacher=runs/ladder_demo/32x --workdir=runs/reflow \
        --logit_std=3 --out=experiments/results/reflow_demo/std3_p2048_s2000

Stages (`--stages`, in order):
  pairs     `--pairs` captions of the teacher's training cache, each sampled from its own noise with
            the teacher's 30 Euler steps at guidance 4 (`train/reflow_pairs.make`) into <workdir>/pairs
  train     `sora_jax/configs/t2v.py:reflow` on them: the teacher's model and weights, its noise from
            the pair, no caption dropout; `--steps` steps at `--lr`
  evaluate  the ladder's probe scenes (seeds 90000+, same noise per prompt for every sampler):
            teacher at 30 steps with guidance 4 (what it was trained to do); teacher (guidance 4) and
            student (no guidance) at each of `--compare_steps` (what few steps give without and with
            distillation); each probe's mean and 95 % CI, whether the student's CI at `--few` steps
            overlaps the 30-step teacher's, and seconds: the DiT alone (16 samples) and per sample
            with decoding. Writes reflow.json, reflow.md and
            side_by_side.png under --out.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
from absl import app, flags

from sora_jax.scaling import compare

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "The teacher run (a finished text-to-video workdir).")
flags.DEFINE_string("workdir", "runs/reflow", "Where the pairs and the student go.")
flags.DEFINE_string("out", "out/reflow_demo", "Where the small results go (reflow.json, reflow.md, side_by_side.png).")
flags.DEFINE_list("stages", ["pairs", "train", "evaluate"], "Stages to run, in order.")
flags.DEFINE_integer("pairs", 2048, "(noise, sample) pairs the teacher makes.")
flags.DEFINE_integer("steps", 2000, "Student training steps.")
flags.DEFINE_float("lr", 1e-4, "Student learning rate.")
flags.DEFINE_float("logit_std", None, "The student's logit-normal timestep spread (default: the teacher config's, "
                   "1.0, which puts 1.4 % of training t above 0.9, where a few-step sampler's first step starts).")
flags.DEFINE_boolean("grid", False, "Train the student only at the t its `--few`-step sampler evaluates "
                     "(flow.grid_steps) instead of logit-normal t.")
flags.DEFINE_float("student_shift", None, "Sample the student on a grid shifted by this (more of its steps at high t, "
                   "where the layout is decided; default: as it trained, the teacher's shift).")
flags.DEFINE_integer("few", 4, "The student's sampling steps (its config's sample.steps).")
flags.DEFINE_list("compare_steps", ["1", "2", "4"], "Step counts at which teacher and student are both scored.")
flags.DEFINE_integer("probe_samples", 64, "Probe scenes.")

KEPT = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity", "color_constancy",
        "trail_persistence")


def train(pairs: pathlib.Path, workdir: pathlib.Path) -> dict:
    from sora_jax.configs import t2v
    from sora_jax.train import trainer

    config = t2v.get_config("reflow")
    config.distill.pairs = str(pairs)
    config.total_steps = FLAGS.steps
    config.optimizer.learning_rate = FLAGS.lr
    config.sample.steps = FLAGS.few
    if FLAGS.logit_std is not None:
        config.flow.logit_std = FLAGS.logit_std
    if FLAGS.grid:
        config.flow.grid_steps = FLAGS.few
    config.eval.num_samples = 2
    config.log.eval_every_steps = FLAGS.steps + 1
    config.checkpoint.every_steps = max(100, FLAGS.steps // 5)
    start = time.time()
    results = trainer.train(config, workdir)
    results["wall_seconds"] = time.time() - start
    (workdir / "reflow_training.json").write_text(json.dumps(results, indent=1, default=compare.jsonable))
    return results


def _latent_seconds(pipeline, params, scenes, sampling, repeats: int = 3) -> float:
    """Median seconds of the DiT's part alone (latents for 16 captions; compiled and warm)."""
    from sora_jax.train import throughput

    latent_shape = pipeline.vae.model.latent_shape((1, *compare.PROBE_CLIP, 3))[1:]
    captions = [s.caption for s in scenes]
    return float(throughput.seconds_per_call(
        lambda: pipeline.sample_latents(params, captions, latent_shape, **sampling), (), repeats))


def evaluate(teacher: str, student: pathlib.Path, out: pathlib.Path) -> dict:
    from sora_jax import generate

    scenes = compare.probe_scenes(FLAGS.probe_samples)
    teacher_generator, student_generator = generate.Generator(teacher), generate.Generator(student)
    samplers = {"teacher, 30 steps": (teacher_generator, dict(steps=30, guidance=4.0))}
    for steps in map(int, FLAGS.compare_steps):
        samplers[f"teacher, {steps} steps"] = (teacher_generator, dict(steps=steps, guidance=4.0))
        shift = {} if FLAGS.student_shift is None else {"shift": FLAGS.student_shift}
        samplers[f"student, {steps} steps"] = (student_generator, dict(steps=steps, guidance=1.0, **shift))
    report = {"teacher": teacher, "student": str(student), "probe_samples": FLAGS.probe_samples, "few": FLAGS.few,
              "student_shift": FLAGS.student_shift,
              "samplers": {},
              "ceilings": compare.ceilings(teacher_generator.pipeline, scenes)}
    columns = {}
    for name, (generator, sampling) in samplers.items():
        print(f"evaluate: {name}", flush=True)
        compare.sample_scenes(generator.pipeline, generator.params, scenes[:16], **sampling)  # compile, warm
        start = time.perf_counter()
        videos = compare.sample_scenes(generator.pipeline, generator.params, scenes, **sampling)
        seconds = time.perf_counter() - start
        report["samplers"][name] = {"probes": compare.score(videos, scenes), "sampling": sampling,
                                    "seconds_per_sample": seconds / len(scenes),
                                    "dit_seconds_per_batch": _latent_seconds(generator.pipeline, generator.params,
                                                                             scenes[:16], sampling)}
        if name in ("teacher, 30 steps", f"teacher, {FLAGS.few} steps", f"student, {FLAGS.few} steps"):
            columns[name.replace(", ", " ")] = videos[:4]
    reference = report["samplers"]["teacher, 30 steps"]
    few = report["samplers"][f"student, {FLAGS.few} steps"]
    report["student_within_teacher_ci"] = {
        probe: bool(few["probes"][probe]["low"] <= reference["probes"][probe]["high"]
                    and reference["probes"][probe]["low"] <= few["probes"][probe]["high"])
        for probe in KEPT if reference["probes"].get(probe, {}).get("mean") is not None
        and few["probes"].get(probe, {}).get("mean") is not None}
    report["speedup"] = reference["seconds_per_sample"] / few["seconds_per_sample"]
    report["dit_speedup"] = reference["dit_seconds_per_batch"] / few["dit_seconds_per_batch"]
    record = student / "reflow_training.json"
    if record.exists():
        training = json.loads(record.read_text())
        report["training"] = {k: training.get(k) for k in ("step", "wall_seconds", "val_loss")}
    columns["truth"] = np.stack([s.video for s in scenes[:4]])
    compare.write_experiment(out, "reflow", report, markdown(report), columns, [s.caption for s in scenes[:4]])
    return report


def markdown(report: dict) -> str:
    names = list(report["samplers"])
    lines = [f"{report['probe_samples']} probe scenes, mean [95 % CI]:", "",
             "| probe | " + " | ".join(names) + f" | VAE ceiling | student ({report['few']} steps) within the 30-step "
             "CI |",
             "|---|" + "---|" * (len(names) + 2)]
    for probe in KEPT:
        cells = [compare.cell(report["samplers"][name]["probes"].get(probe)) for name in names]
        within = report["student_within_teacher_ci"].get(probe)
        lines.append(f"| {probe} | " + " | ".join(cells) + f" | {compare.cell(report['ceilings']['vae'].get(probe))} "
                     f"| {'yes' if within else 'no' if within is not None else '—'} |")
    lines += ["", "| sampler | DiT seconds per 16 samples | seconds per sample, VAE decode included |", "|---|---|---|"]
    for name in names:
        entry = report["samplers"][name]
        lines.append(f"| {name} | {entry['dit_seconds_per_batch']:.3f} | {entry['seconds_per_sample']:.3f} |")
    lines += ["", f"The student at {report['few']} steps (one forward each, no guidance) against the teacher at 30 "
                  f"(two): {report['dit_speedup']:.1f}x faster in the DiT, {report['speedup']:.1f}x with decoding."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if not FLAGS.teacher:
        raise app.UsageError("--teacher is required: a finished text-to-video run")
    workdir, out = pathlib.Path(FLAGS.workdir), pathlib.Path(FLAGS.out)
    pairs, student = workdir / "pairs", workdir / "student"
    for stage in FLAGS.stages:
        if stage == "pairs":
            from sora_jax.train import reflow_pairs

            start = time.time()
            reflow_pairs.make(FLAGS.teacher, pairs, FLAGS.pairs)
            print(f"pairs: {FLAGS.pairs} in {time.time() - start:.0f} s")
        elif stage == "train":
            train(pairs, student)
        elif stage == "evaluate":
            evaluate(FLAGS.teacher, student, out)
        else:
            raise app.UsageError(f"unknown stage {stage!r}; valid: pairs, train, evaluate")


if __name__ == "__main__":
    app.run(main)
