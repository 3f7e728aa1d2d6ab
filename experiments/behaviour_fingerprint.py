r"""Fingerprints of what the CLI makes on micro configs — training metrics, sampled frames, ladder
plans — to show that a refactor changed no behaviour: run it at two commits, compare the JSON.

    git worktree add /tmp/before <commit>
    (cd /tmp/before && /work/main/.venv/bin/python experiments/behaviour_fingerprint.py --out=/tmp/before.json)
    .venv/bin/python experiments/behaviour_fingerprint.py --out=/tmp/after.json \
        --compare=/tmp/before.json --results=experiments/results/redesign_fingerprint.json

Runs from the checkout it sits in (`python -m sora_jax.cli` with that directory first on the
path): prepares physworld/tiny, trains a micro VAE (3 steps) and a micro T2V DiT on the committed
VAE (4 steps, one evaluation), samples t2v / t2i / extend_forward from it, and prints the `demo`
and `cpu` ladder plans. Hashes cover every loss, gradient norm and validation metric per step
(not timings) and the decoded frames of each sample. About 3 minutes on 2 cores.
"""

import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile

import imageio.v3 as iio
import numpy as np
from absl import app, flags

flags.DEFINE_string("out", "out/behaviour_fingerprint.json", "Where to write this checkout's fingerprints.")
flags.DEFINE_string("compare", None, "Another checkout's fingerprints: print which entries differ.")
flags.DEFINE_string("results", None, "Write {before, after, same} here for committing (needs --compare).")

# The config paths of the layout before 2026-12-05; the CLI still resolves them after the move.
VAE, T2V, SCALING = "configs/vae.py", "configs/t2v.py", "configs/scaling.py"


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "sora_jax.cli", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"sora-jax {' '.join(args)}: {result.stderr[-3000:]}")
    return result.stdout


def metrics_hash(workdir: pathlib.Path) -> tuple[str, dict]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    kept = [{k: v for k, v in row.items() if "loss" in k or k.startswith("val_") or k in ("step", "grad_norm")}
            for row in rows]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16], kept[-1]


def fingerprints() -> dict:
    tmp = pathlib.Path(tempfile.mkdtemp())
    data = tmp / "tfds"
    cli("data", "prepare", "--dataset=physworld/tiny", f"--data_dir={data}")
    report = {}
    cli("train", f"--config={VAE}:micro", f"--workdir={tmp / 'vae'}", f"--config.data.data_dir={data}",
        "--config.total_steps=3", "--config.eval.num_clips=2", "--config.eval.latent_stat_clips=4",
        "--config.checkpoint.async_save=False")
    report["vae_micro"] = metrics_hash(tmp / "vae")
    cli("train", f"--config={T2V}:micro", f"--workdir={tmp / 't2v'}", f"--config.data.data_dir={data}",
        "--config.vae_workdir=assets/vae_tiny", "--config.data.cache_limit=48", "--config.data.batch_size=2",
        "--config.data.max_batch_size=4", "--config.total_steps=4", "--config.log.eval_every_steps=4",
        "--config.eval.num_clips=4", "--config.eval.num_samples=1", "--config.sample.steps=3",
        "--config.log.every_steps=1", "--config.checkpoint.async_save=False")
    report["t2v_micro"] = metrics_hash(tmp / "t2v")
    for mode, extra in (("t2v", []), ("t2i", []), ("extend_forward", [f"--video={tmp / 's_t2v.gif'}", "--frames=4"])):
        cli("sample", f"--workdir={tmp / 't2v'}", "--prompt=a red ball", f"--mode={mode}", "--steps=3",
            "--no_enrich", f"--out={tmp}/s_{mode}.gif", *extra)  # the model's path, not the enricher's
        frames = np.ascontiguousarray(iio.imread(tmp / f"s_{mode}.gif", index=None))
        report[f"sample_{mode}"] = hashlib.sha256(frames.tobytes()).hexdigest()[:16]
    for preset in ("demo", "cpu"):
        report[f"ladder_{preset}"] = cli("ladder", f"--config={SCALING}:{preset}", "--print").strip().splitlines()
    return report


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    report = json.loads(json.dumps(fingerprints()))  # tuples as lists, as a JSON file holds them
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if args.compare:
        before = json.loads(pathlib.Path(args.compare).read_text())
        same = {key: before.get(key) == value for key, value in report.items()}
        print("\n".join(f"{key}: {'same' if equal else 'DIFFERENT'}" for key, equal in same.items()))
        if args.results:
            pathlib.Path(args.results).write_text(json.dumps({"before": before, "after": report, "same": same},
                                                             indent=1))


if __name__ == "__main__":
    app.run(main)
