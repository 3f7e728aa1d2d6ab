"""Prompt adherence of a T2V run on more validation prompts than training evaluates.

    .venv/bin/python experiments/eval_prompt_adherence.py --workdir=runs/t2v_tiny --prompts=32

Samples one clip per validation caption (the clip's own shape, seed = its index, the run's
sampler settings), decodes it, and scores it with `evaluation/prompt_adherence.py`: the share of
prompted colors present, the share of present colors that were prompted, and the share of found
prompted colors whose centroid moves. Writes the samples and `prompt_adherence.json` under --out.
"""

import json
import pathlib

from absl import app, flags

from sora_jax import generate
from sora_jax.train.t2v_task import T2VTask

flags.DEFINE_string("workdir", "runs/t2v_tiny", "A trained run's workdir or export.")
flags.DEFINE_integer("prompts", 32, 'Validation prompts to sample.')
flags.DEFINE_string("out", None, 'Where to write the output.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "prompt_adherence")
    generator = generate.Generator(args.workdir)
    task = T2VTask(generator.config, args.workdir)
    clips = task.validation_clips(args.prompts)
    summary = task.write_samples(generator.params, clips, out)
    summary.update(prompts=len(clips), checkpoint_step=generator.step)
    (out / "prompt_adherence.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    app.run(main)
