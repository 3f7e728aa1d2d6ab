r"""Input-pipeline headroom: batches per second the Grain pipeline delivers, against the steps per
second a training run consumed (median of its logged `steps_per_s`). Goal: >= 5x.

    .venv/bin/python benchmarks/bench_input_pipeline.py --vae_run=runs/vae_tiny \
        --t2v_run=out/ladder_demo/32x --out=out/bench_input_pipeline.json

VAE: PhysWorld videos decoded from ArrayRecord, bucketed, cropped (the run's own data config).
T2V: the latent cache (memory-mapped latents + text embeddings) the run trained from. The
pipeline runs in the main process (num_workers=0, as the configs do); first batches are skipped.
"""

import json
import pathlib
import statistics
import time

import ml_collections
from absl import app, flags

from sora_jax.data import pipeline
from sora_jax.train import latent_cache


def consumed_steps_per_s(run_dir: pathlib.Path) -> float:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return statistics.median(line["steps_per_s"] for line in lines if "steps_per_s" in line)


def batches_per_s(data_config, source=None, batches: int = 50, skip: int = 5) -> float:
    iterator = iter(pipeline.make_dataset(data_config, seed=0, process_index=0, process_count=1, source=source)[0])
    for _ in range(skip):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - started)


flags.DEFINE_string("vae_run", "runs/vae_tiny", 'A trained VAE run for the input-pipeline measurement.')
flags.DEFINE_string("t2v_run", "out/ladder_demo/32x", 't2v run')
flags.DEFINE_integer("batches", 50, 'Batches to time.')
flags.DEFINE_string("out", "out/bench_input_pipeline.json", 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    rows = []
    for name, run in (("vae", args.vae_run), ("t2v", args.t2v_run)):
        run_dir = pathlib.Path(run)
        if not (run_dir / "config.json").exists():
            print(f"{name}: {run_dir} has no run; skipped")
            continue
        config = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
        source = None
        if name == "t2v":
            root = pathlib.Path(config.data.latent_cache_dir or run_dir / "latent_cache")
            source = latent_cache.LatentSource(root / config.data.train_split)
        delivered = batches_per_s(config.data, source, args.batches)
        consumed = consumed_steps_per_s(run_dir)
        rows.append({"task": name, "run": str(run_dir), "pipeline_batches_per_s": delivered,
                     "training_steps_per_s": consumed, "headroom": delivered / consumed})
        print(f"{name}: pipeline {delivered:.1f} batches/s, training consumed {consumed:.2f} steps/s -> "
              f"headroom {delivered / consumed:.1f}x")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    app.run(main)
