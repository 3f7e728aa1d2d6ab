"""A finished run's validation scores with its EMA weights and with its raw (last) weights.

    .venv/bin/python experiments/ema_vs_raw.py --workdirs=runs/vae_tiny_ema999 --workdirs=runs/vae_tiny_silu5700 \
        --out=experiments/results/cpu/vae_ema_vs_raw.json
    .venv/bin/python experiments/ema_vs_raw.py --workdirs=runs/ladder_cpu/1x --workdirs=runs/ladder_cpu/4x \
        --workdirs=runs/ladder_cpu/32x \
        --out=experiments/results/cpu/ladder_ema_vs_raw.json

    # and the world probes of a ladder's rungs with either weight set (256 scenes, the ladder's noise)
    .venv/bin/python experiments/ema_vs_raw.py --workdirs=runs/ladder_demo/1x --workdirs=runs/ladder_demo/4x \
        --workdirs=runs/ladder_demo/32x --probe_samples=256 --out=experiments/results/ladder_demo/ema_vs_raw.json

Both weight sets come from the run's latest checkpoint and are scored by the run's own task
(`evaluate`: PSNR / SSIM / palette fidelity for a VAE, the fixed-noise validation flow loss for
a DiT) on the same validation clips as training; with `--probe_samples`, a DiT's samples of the
ladder's held-out probe scenes too (`scaling/world_evals.py`, same noise for both). After a linear
cooldown to zero the raw weights are already an average of sorts; this measures whether the EMA
on top helps or lags — an EMA of decay d averages the last ~1/(1-d) steps, most of a short run.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections
from absl import app, flags

from sora_jax import checkpoints as checkpoint_lib
from sora_jax.scaling import world_evals
from sora_jax.train import trainer

# The headline metric per task, and whether higher is better.
HEADLINE = {"vae": ("val_psnr", True), "t2v": ("val_loss", False)}


def score_run(workdir: str, probe_samples: int = 0) -> dict:
    checkpointer = checkpoint_lib.Checkpointer(workdir)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"{workdir} has no checkpoint")
        meta = checkpointer.read_meta(step)
        if meta.get("task") not in HEADLINE:
            raise ValueError(f"{workdir} holds a {meta.get('task')!r} run; scored tasks: {sorted(HEADLINE)}")
        config = ml_collections.ConfigDict(meta["config"])
        task = trainer.make_task(config, workdir)
        clips = task.validation_clips(config.eval.num_clips)
        metric, higher_is_better = HEADLINE[meta["task"]]
        result = {"workdir": str(workdir), "task": meta["task"], "step": int(step), "total_steps": config.total_steps,
                  "ema_decay": config.optimizer.ema_decay, "cooldown_fraction": config.optimizer.cooldown_fraction,
                  "metric": metric, "higher_is_better": higher_is_better}
        if probe_samples and meta["task"] != "t2v":
            raise ValueError(f"--probe_samples scores text-to-video runs; {workdir} is a {meta['task']!r} run")
        scenes = world_evals.probe_scenes(probe_samples) if probe_samples else None
        for name, ema in (("ema", True), ("raw", False)):
            params, _ = checkpointer.restore_params(step, ema=ema)
            result[name] = task.evaluate(params, clips)
            if probe_samples:  # the task's own pipeline (its VAE and text encoder, loaded once)
                videos = world_evals.sample_scenes(task.pipeline, params, scenes)
                result[name]["probes"] = world_evals.score(videos, scenes)
        result["raw_minus_ema"] = result["raw"][metric] - result["ema"][metric]
        return result
    finally:
        checkpointer.close()


# The ladder's PhysWorld probes that are scores (higher is better), in its order.
PROBES = tuple(k for k in world_evals.PhysworldEval.shown if k not in world_evals.PhysworldEval.lower_is_better)

flags.DEFINE_multi_string("workdirs", None, 'Finished runs to score (repeat for several).')
flags.DEFINE_string("out", None, "JSON file for the results")
flags.DEFINE_integer("probe_samples", 0, "Text-to-video runs: also score the world probes on this many held-out "
                     "probe scenes with each weight set (0: validation loss only).")
flags.mark_flag_as_required("workdirs")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    results = []
    print(f"{'run':<28} {'step':>6} {'metric':>9} {'EMA':>9} {'raw':>9} {'raw-EMA':>9}")
    for workdir in args.workdirs:
        r = score_run(workdir, args.probe_samples)
        results.append(r)
        print(f"{workdir:<28} {r['step']:>6} {r['metric']:>9} {r['ema'][r['metric']]:>9.4f} "
              f"{r['raw'][r['metric']]:>9.4f} {r['raw_minus_ema']:>+9.4f}", flush=True)
        for probe in PROBES if args.probe_samples else ():
            ema, raw = r["ema"]["probes"][probe], r["raw"]["probes"][probe]
            if ema["mean"] is not None and raw["mean"] is not None:
                print(f"    {probe:<20} EMA {ema['mean']:.3f} [{ema['low']:.3f}, {ema['high']:.3f}]  "
                      f"raw {raw['mean']:.3f} [{raw['low']:.3f}, {raw['high']:.3f}]", flush=True)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    app.run(main)
