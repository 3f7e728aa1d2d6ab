"""One example of every prompting mode, as GIFs for the README, from a trained T2V run.

    .venv/bin/python docs/make_examples.py --workdir=runs/t2v_tiny --out=docs/images/modes

Inputs are PhysWorld clips rendered from fixed seeds (the validation distribution); each output
GIF has a JSON sidecar with the request (prompt, enriched prompt, seed, sampler, steps, timing).
"""

import pathlib

from absl import app, flags

from sora_jax import generate
from sora_jax.data import physworld

flags.DEFINE_string("workdir", "runs/t2v_tiny", "A trained run's workdir or export.")
flags.DEFINE_string("out", "docs/images/modes", 'Where to write the output.')
flags.DEFINE_integer("seed", 0, 'Random seed.')


def main(argv: list[str]) -> None:
    del argv  # flags only
    args = flags.FLAGS
    out = pathlib.Path(args.out)
    generator = generate.Generator(args.workdir)
    a = physworld.render_clip([11, 0], 17, 32, 56)
    b = physworld.render_clip([12, 0], 17, 32, 56)
    image = physworld.render_clip([13, 0], 1, 32, 56)
    requests = {
        "t2v": generate.Request(prompt="a red ball bounces and a blue square falls", frames=17),
        "t2i": generate.Request(prompt="a yellow triangle and a cyan circle", mode="t2i", height=32, width=56),
        "t2i_portrait": generate.Request(prompt="a magenta box", mode="t2i", height=56, width=32),
        "long": generate.Request(prompt="a green ball bounces off the walls", frames=33),
        "i2v": generate.Request(prompt=image.caption, mode="i2v", image=image.video, frames=17, enrich=False),
        "extend_forward": generate.Request(prompt=a.caption, mode="extend_forward", video=a.video, frames=8,
                                           enrich=False),
        "extend_backward": generate.Request(prompt=a.caption, mode="extend_backward", video=a.video, frames=8,
                                            enrich=False),
        "loop": generate.Request(prompt=a.caption, mode="loop", video=a.video, frames=8, enrich=False),
        "connect": generate.Request(prompt=b.caption, mode="connect", video=a.video, video2=b.video, frames=8,
                                    enrich=False),
        "edit": generate.Request(prompt="a yellow ball bounces off the walls", mode="edit", video=a.video,
                                 strength=0.6),
    }
    for name, request in requests.items():
        request.seed = args.seed
        result = generator.generate(request)
        paths = generate.write(result, out / name)
        print(f"{name:16s} {result.meta['frames']:3d} frames {result.meta['seconds']:5.1f} s  {paths[1]}")
    for name, clip in (("input_a", a), ("input_b", b), ("input_image", image)):
        generate.write(generate.Result(clip.video, {"caption": clip.caption}), out / name)


if __name__ == "__main__":
    app.run(main)
