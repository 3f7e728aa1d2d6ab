"""A finished VAE run's validation scores with its EMA weights and with its raw (last) weights.

    .venv/bin/python experiments/vae_ema_vs_raw.py runs/vae_tiny [runs/other ...] \
        --out=experiments/results/cpu/vae_ema_vs_raw.json

Both weight sets come from the run's latest checkpoint and are scored by the task's own
`evaluate` on the same validation clips as training (PSNR / SSIM / palette fidelity). After a
linear cooldown to zero the raw weights are already an average of sorts; this measures whether
the EMA on top helps or lags.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import ml_collections

from sora_jax.train import checkpoint as checkpoint_lib
from sora_jax.train.vae_task import VaeTask


def score_run(workdir: str) -> dict:
    checkpointer = checkpoint_lib.Checkpointer(workdir)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"{workdir} has no checkpoint")
        meta = checkpointer.read_meta(step)
        if meta.get("task") != "vae":
            raise ValueError(f"{workdir} holds a {meta.get('task')!r} run, not a VAE")
        config = ml_collections.ConfigDict(meta["config"])
        task = VaeTask(config)
        clips = task.validation_clips(config.eval.num_clips)
        result = {"workdir": str(workdir), "step": int(step), "ema_decay": config.optimizer.ema_decay}
        for name, ema in (("ema", True), ("raw", False)):
            params, _ = checkpointer.restore_params(step, ema=ema)
            result[name] = task.evaluate(params, clips)
        result["raw_minus_ema_psnr"] = result["raw"]["val_psnr"] - result["ema"]["val_psnr"]
        return result
    finally:
        checkpointer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    results = []
    print(f"{'run':<32} {'step':>6} {'EMA PSNR':>9} {'raw PSNR':>9} {'raw-EMA':>8} {'EMA pal.':>9} {'raw pal.':>9}")
    for workdir in args.workdirs:
        r = score_run(workdir)
        results.append(r)
        print(f"{workdir:<32} {r['step']:>6} {r['ema']['val_psnr']:>9.2f} {r['raw']['val_psnr']:>9.2f} "
              f"{r['raw_minus_ema_psnr']:>+8.2f} {r['ema']['val_palette_fidelity']:>9.3f} "
              f"{r['raw']['val_palette_fidelity']:>9.3f}", flush=True)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
