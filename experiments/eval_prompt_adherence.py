"""Prompt adherence of a T2V run on more validation prompts than training evaluates.

    .venv/bin/python experiments/eval_prompt_adherence.py --workdir=runs/t2v_tiny --prompts=32

Samples one clip per validation caption (the clip's own shape, seed = its index, the run's
sampler settings), decodes it, and scores it with `evaluation/prompt_adherence.py`: the share of
prompted colors present, the share of present colors that were prompted, and the share of found
prompted colors whose centroid moves. Writes the samples and `prompt_adherence.json` under --out.
"""

import argparse
import json
import pathlib

from sora_jax import generate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/t2v_tiny")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "prompt_adherence")
    generator = generate.Generator(args.workdir)
    clips = generator.task.validation_clips(args.prompts)
    summary = generator.task.write_samples(generator.params, clips, out)
    summary.update(prompts=len(clips), checkpoint_step=generator.step)
    (out / "prompt_adherence.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
