r"""Mixed precision against float32 on the same run: validation loss (fixed clips, timesteps and
noise) at every evaluation, and median training throughput, read from the runs' metrics.

    for d in float32 mixed; do
      sora-jax train --config=sora_jax/configs/t2v.py:tiny --workdir=runs/prec_$d --config.total_steps=600 \
          --config.model.dtype=$d --config.vae_workdir=assets/vae_tiny   # measured in the 4x-temporal latent
    done
    .venv/bin/python experiments/compare_precision.py --reference=runs/prec_float32 --candidate=runs/prec_mixed \
        --out=experiments/results/precision_tiny.json
"""

import json
import pathlib
import statistics

from absl import app, flags


def summary(workdir: pathlib.Path) -> dict:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((workdir / "config.json").read_text())
    final = json.loads((workdir / "final_metrics.json").read_text())
    return {"workdir": str(workdir), "dtype": config["model"]["dtype"],
            "attention": config["model"]["attention_implementation"], "steps": final["step"],
            "val_loss": final["val_loss"],
            "val_loss_by_step": {r["step"]: r["val_loss"] for r in rows if "val_loss" in r},
            "median_steps_per_s": statistics.median(r["steps_per_s"] for r in rows if "steps_per_s" in r),
            "median_mfu": statistics.median(r["mfu"] for r in rows if "mfu" in r)}


flags.DEFINE_string("reference", None, "The float32 run's workdir.")
flags.DEFINE_string("candidate", None, "The mixed-precision run's workdir.")
flags.DEFINE_string("out", "out/compare_precision.json", 'Where to write the output.')
flags.mark_flag_as_required("reference")
flags.mark_flag_as_required("candidate")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    reference, candidate = summary(pathlib.Path(args.reference)), summary(pathlib.Path(args.candidate))
    result = {"reference": reference, "candidate": candidate,
              "val_loss_relative_difference": candidate["val_loss"] / reference["val_loss"] - 1,
              "speedup": candidate["median_steps_per_s"] / reference["median_steps_per_s"]}
    print(f"{reference['dtype']}: val loss {reference['val_loss']:.5f}, {reference['median_steps_per_s']:.2f} steps/s; "
          f"{candidate['dtype']}: val loss {candidate['val_loss']:.5f} "
          f"({result['val_loss_relative_difference']:+.3%}), "
          f"{candidate['median_steps_per_s']:.2f} steps/s ({result['speedup']:.2f}x)")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
