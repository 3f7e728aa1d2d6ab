"""Figures of a finished T2V run for the README: loss curves and a strip of sample frames.

    .venv/bin/python docs/plot_t2v_run.py --workdir=runs/t2v_tiny --out=docs/images

Writes `<name>_loss.png` (training loss, and validation loss on the fixed triples) and
`<name>_samples.png` (for each validation prompt of the last evaluation: the VAE's reconstruction
of the real clip above, the sample below, frames left to right, with the prompt).
"""

import json
import pathlib
import textwrap

import matplotlib
from absl import app, flags

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sora_jax.data import video_io  # noqa: E402

flags.DEFINE_string("workdir", None, "A trained run's workdir or export.")
flags.DEFINE_string("out", "docs/images", 'Where to write the output.')
flags.DEFINE_integer("frames", 6, 'Frames (or latent frames) per clip to measure.')
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    workdir, out = pathlib.Path(args.workdir), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = workdir.name
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [(m["step"], m["loss"]) for m in lines if "loss" in m]
    val = [(m["step"], m["val_loss"]) for m in lines if "val_loss" in m]

    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=120)
    axis.plot(*zip(*train), lw=0.8, alpha=0.6, label="training loss (10-step means)")
    axis.plot(*zip(*val), "o-", label="validation loss (fixed clip, t, noise)")
    axis.set_xlabel("step")
    axis.set_ylabel("flow-matching MSE")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / f"{name}_loss.png")

    last = sorted((workdir / "samples").glob("step_*"))[-1]
    samples = sorted(last.glob("sample_*.gif"))
    figure, axes = plt.subplots(len(samples), 1, figsize=(8, 2.3 * len(samples)), dpi=120, squeeze=False)
    for axis, path in zip(axes[:, 0], samples):
        pair, _ = video_io.read_frames(path.with_suffix(".gif"))  # reference | white bar | sample
        bar = np.flatnonzero(pair.min(axis=(0, 1, 3)) >= 250)
        bar = bar[(bar > pair.shape[2] // 3) & (bar < 2 * pair.shape[2] // 3)]
        picks = np.linspace(0, len(pair) - 1, min(args.frames, len(pair))).round().astype(int)
        reference = np.concatenate([pair[i, :, : bar[0]] for i in picks], axis=1)
        sample = np.concatenate([pair[i, :, bar[-1] + 1 :] for i in picks], axis=1)
        axis.imshow(np.concatenate([reference, np.full_like(reference[:4], 255), sample], axis=0))
        axis.set_title(textwrap.fill(path.with_suffix(".txt").read_text().strip(), 100), fontsize=7)
        axis.axis("off")
    figure.suptitle(f"{name}, {last.name}: VAE reconstruction of the real clip (top), sample (bottom)", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / f"{name}_samples.png")
    print(f"wrote {out / f'{name}_loss.png'} and {out / f'{name}_samples.png'} ({last.name})")


if __name__ == "__main__":
    app.run(main)
