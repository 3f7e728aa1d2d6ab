"""Kill training at random moments, resume, and compare with an uninterrupted run.

    .venv/bin/python experiments/crash_harness.py --trials=20 --out=out/crash_harness.json

One reference run of the micro T2V config logs every step's loss. Each trial starts the same run
in a fresh workdir, SIGKILLs it after a random delay (any moment: compiling, stepping, writing a
checkpoint, evaluating), restarts it, and repeats until it finishes; then every step's loss must
equal the reference bitwise (data order included), and every restart must have resumed from a
complete checkpoint (or from scratch when none was complete).
"""

import json
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]


def train_args(workdir, data_dir, vae_workdir, steps):
    return [sys.executable, "-m", "sora_jax.cli", "train", "--config=sora_jax/configs/t2v.py:micro",
            f"--workdir={workdir}",
            f"--config.vae_workdir={vae_workdir}", f"--config.data.data_dir={data_dir}",
            "--config.data.cache_limit=48", "--config.data.batch_size=2", "--config.data.max_batch_size=4",
            f"--config.total_steps={steps}", "--config.log.every_steps=1", "--config.checkpoint.every_steps=2",
            "--config.log.eval_every_steps=1000", "--config.eval.num_clips=4", "--config.eval.num_samples=1",
            "--config.sample.steps=2"]


def losses(workdir) -> dict[int, float]:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def write_summary(args, trials: list[dict], max_delay: float) -> dict:
    summary = {"trials": len(trials), "trials_asked": args.trials, "kills": sum(t["kills"] for t in trials),
               "max_delay_s": max_delay, "bitwise_equal": sum(t["bitwise_equal"] for t in trials),
               "steps": args.steps, "runs": trials}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    return summary


flags.DEFINE_integer("trials", 20, 'Kill-and-resume trials.')
flags.DEFINE_integer("steps", 10, 'Steps (sampling or training) to run.')
flags.DEFINE_float("max_delay", None, "seconds; default: the reference run's duration, so kills land anywhere in a run")
flags.DEFINE_string("data_dir", "data/tfds", 'Where prepared datasets live.')
flags.DEFINE_string("vae_workdir", "assets/vae_tiny", 'The VAE the micro T2V run trains on.')
flags.DEFINE_integer("seed", 0, 'Random seed.')
flags.DEFINE_string("out", "out/crash_harness.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rng = random.Random(args.seed)
    root = pathlib.Path(tempfile.mkdtemp(prefix="crash_harness_"))
    reference = root / "reference"
    started = time.time()
    subprocess.run(train_args(reference, args.data_dir, args.vae_workdir, args.steps), cwd=REPO, check=True,
                   capture_output=True)
    max_delay = args.max_delay or (time.time() - started)
    expected = losses(reference)
    trials = []
    for trial in range(args.trials):
        workdir = root / f"trial_{trial:02d}"
        kills, started = 0, time.time()
        while True:
            process = subprocess.Popen(train_args(workdir, args.data_dir, args.vae_workdir, args.steps), cwd=REPO,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            delay = rng.uniform(0.5, max_delay) if kills == 0 else None
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
            if process.returncode != 0:
                raise SystemExit(f"trial {trial}: resume failed:\n{process.stderr.read()[-3000:]}")
            break
        got = losses(workdir)
        equal = set(got) == set(expected) and all(got[s] == expected[s] for s in expected)
        trials.append({"trial": trial, "kills": kills, "bitwise_equal": equal, "seconds": time.time() - started})
        print(f"trial {trial:2d}: killed {kills}x, losses bitwise equal: {equal}", flush=True)
        summary = write_summary(args, trials, max_delay)  # after every trial: a cut-short run still reports
    print(f"{summary['bitwise_equal']}/{summary['trials']} trials bitwise equal after {summary['kills']} kills; "
          f"wrote {args.out}")
    if summary["bitwise_equal"] != summary["trials"]:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
