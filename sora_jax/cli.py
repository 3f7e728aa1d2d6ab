"""`sora-jax VERB [SUBVERB] --flags`: the command line of the project.

    sora-jax data prepare --dataset=physworld/tiny --data_dir=data/tfds
    sora-jax data preview --dataset=physworld/tiny --data_dir=data/tfds --out=out/preview
    sora-jax train --config=configs/vae.py:tiny --workdir=runs/vae_tiny
    sora-jax export --workdir=runs/vae_tiny --out=assets/vae_tiny
    sora-jax sample --workdir=runs/t2v_tiny --prompt="a red ball" --out=out/red_ball.mp4
    sora-jax ladder --config=configs/scaling.py:demo --workdir=out/ladder   # 1x, 4x, 32x + comparison

Flags are few on purpose: `--config` (with `--config.a.b=v` overrides), `--workdir`, and a handful
per verb. A user mistake ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags


_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file, e.g. configs/vae.py:tiny.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of a run: checkpoints, metrics, samples.")
_DATASET = flags.DEFINE_string("dataset", "physworld/tiny", "physworld/<tiny|small|base> or folder:<path>.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data/tfds", "Where prepared datasets live.")
_SPLIT = flags.DEFINE_string("split", "validation", "Split to preview.")
_OUT = flags.DEFINE_string("out", None, "Output directory (preview, export) or file (sample).")
_COUNT = flags.DEFINE_integer("count", 12, "How many clips to preview.")
_SUITE = flags.DEFINE_enum("suite", "vae", ["vae"], "Evaluation suite (eval).")
# sample
_PROMPT = flags.DEFINE_string("prompt", "", "Text prompt (sample); enriched into a training-style caption.")
_MODE = flags.DEFINE_string("mode", "t2v", "t2v, t2i, i2v, extend_forward, extend_backward, loop, connect, edit.")
_FRAMES = flags.DEFINE_integer("frames", 17, "Output frames (t2v, i2v) or new frames (extend, loop, connect).")
_HEIGHT = flags.DEFINE_integer("height", None, "Output height; default: the input's, or the training size.")
_WIDTH = flags.DEFINE_integer("width", None, "Output width.")
_IMAGE = flags.DEFINE_string("image", None, "First frame for image->video.")
_VIDEO = flags.DEFINE_string("video", None, "Input video (extend, loop, connect, edit).")
_VIDEO2 = flags.DEFINE_string("video2", None, "Second video (connect).")
_STRENGTH = flags.DEFINE_float("strength", 0.6, "Edit strength: 0 keeps the input, 1 ignores it.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_STEPS = flags.DEFINE_integer("steps", None, "Sampling steps; default: the run's config.sample.steps.")
_GUIDANCE = flags.DEFINE_float("guidance", None, "Classifier-free guidance; default: config.sample.guidance.")
_SAMPLER = flags.DEFINE_string("sampler", "euler", "euler, heun or ab2.")
_NO_ENRICH = flags.DEFINE_bool("no_enrich", False, "Use the prompt as given, without enrichment.")
# ladder
_PRINT = flags.DEFINE_bool("print", False, "ladder: print the plan (params, steps, expected time) and stop.")
_BUDGETS = flags.DEFINE_list("budgets", None, "ladder: the rungs to run (default: the config's 1x, 4x, 32x).")
_PROMPTS_FILE = flags.DEFINE_string("prompts_file", None, "One prompt per line, sampled in batches; outputs "
                                    "are --out with _000, _001, ... appended.")

USAGE = "usage: sora-jax {train|sample|eval|data|export|ladder} ... (data: prepare|preview; eval --suite=vae)"
VERBS = ("train", "sample", "eval", "data", "export", "ladder")


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


def _data(subverb: str | None) -> None:
    if subverb == "prepare":
        from sora_jax.data import prepare

        path = prepare.prepare(_DATASET.value, _DATA_DIR.value)
        print(f"prepared {_DATASET.value} in {path}")
    elif subverb == "preview":
        if not _OUT.value:
            raise UserError("data preview needs --out=DIR")
        from sora_jax.data import prepare, preview

        examples = prepare.first_examples(_DATASET.value, _DATA_DIR.value, _SPLIT.value, _COUNT.value)
        page = preview.write_gallery(examples, _OUT.value)
        print(f"wrote {_COUNT.value} clips, contact_sheet.png and {page}")
    else:
        raise UserError(f"data needs a subverb: prepare or preview (got {subverb!r})")


def _require(flag, name: str):
    if flag.value is None:
        raise UserError(f"this verb needs --{name}")
    return flag.value


def _train() -> None:
    config = _require(_CONFIG, "config")
    workdir = _require(_WORKDIR, "workdir")
    import jax

    from sora_jax.data import prepare
    from sora_jax.train import trainer, validate

    validate.check(config, jax.device_count())  # before preparing data or compiling anything
    if config.data.dataset.startswith("physworld/"):
        prepare.prepare(config.data.dataset, config.data.data_dir)  # procedural: a no-op once built
    results = trainer.train(config, workdir)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, indent=1))


def _sample() -> None:
    workdir = _require(_WORKDIR, "workdir")
    out = _require(_OUT, "out")
    from sora_jax import generate

    try:
        generator = generate.Generator(workdir)
        if _PROMPTS_FILE.value:
            try:
                lines = pathlib.Path(_PROMPTS_FILE.value).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise UserError(f"--prompts_file: cannot read it ({error})") from None
            texts = [line.strip() for line in lines if line.strip()]
        else:
            texts = [_PROMPT.value]
        requests = [generate.Request(
            prompt=text, mode=_MODE.value, frames=_FRAMES.value, height=_HEIGHT.value, width=_WIDTH.value,
            image=_IMAGE.value, video=_VIDEO.value, video2=_VIDEO2.value, strength=_STRENGTH.value, seed=_SEED.value,
            steps=_STEPS.value, guidance=_GUIDANCE.value, sampler=_SAMPLER.value, enrich=not _NO_ENRICH.value)
            for text in texts]
        results = generate.generate_batch(generator, requests)
    except generate.UserInputError as error:
        raise UserError(str(error)) from None
    base = pathlib.Path(out)
    for number, result in enumerate(results):
        if result.meta["enriched_prompt"] != result.meta["prompt"]:
            print(f"prompt:   {result.meta['prompt']}\nenriched: {result.meta['enriched_prompt']}")
        target = base if len(results) == 1 else base.with_name(f"{base.stem}_{number:03d}{base.suffix}")
        paths = generate.write(result, target)
        print(f"{result.meta['mode']}: {result.meta['frames']} frames of {result.meta['height']}x"
              f"{result.meta['width']} in {result.meta['seconds']:.1f} s -> {', '.join(str(p) for p in paths)}")


def _export() -> None:
    workdir = _require(_WORKDIR, "workdir")
    out = _require(_OUT, "out")
    from sora_jax.train import checkpoint

    try:
        path = checkpoint.export(workdir, out)
    except FileExistsError as error:
        raise UserError(str(error)) from None
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"exported the EMA parameters of {workdir} to {path} ({size / 1e6:.1f} MB)")


def _eval() -> None:
    workdir = _require(_WORKDIR, "workdir")
    from sora_jax.evaluation import vae_suite

    report = vae_suite.run(workdir)
    summary = {"physworld_validation": report["physworld_validation"],
               "real_footage_psnr": report["real_footage"]["psnr"], "compression_ratio": report["compression_ratio"],
               "throughput": report["throughput"]}
    print(json.dumps(summary, indent=1))
    print(f"wrote {workdir}/eval_vae.json")


def _ladder() -> None:
    config = _require(_CONFIG, "config")
    if "ladder" not in config:
        raise UserError("ladder needs a compute-ladder config, e.g. --config=configs/scaling.py:demo")
    from sora_jax.scaling import ladder

    print(ladder.format_table(ladder.table(config)))
    if _PRINT.value:
        return
    workdir = _require(_WORKDIR, "workdir")
    import jax

    from sora_jax.train import validate

    for budget in _BUDGETS.value or config.ladder.rungs:
        validate.check(ladder.rung_config(config, budget), jax.device_count())  # every rung, before any runs
    ladder.run(config, workdir, _BUDGETS.value)


def main(argv: list[str]) -> None:
    args = argv[1:]
    verb = args[0] if args else None
    if verb not in VERBS:
        raise UserError(f"unknown verb {verb!r}; {USAGE}")
    if verb == "data":
        return _data(args[1] if len(args) > 1 else None)
    if verb == "train":
        return _train()
    if verb == "eval":
        return _eval()
    if verb == "export":
        return _export()
    if verb == "sample":
        return _sample()
    return _ladder()


def _one_line(error: BaseException) -> str:
    """Flag and config errors arrive as repr'd, multi-line or traceback-laden text: one line."""
    while isinstance(error, BaseException) and error.args:
        error = error.args[0]  # an AttributeError may wrap the KeyError that holds the text
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        lines = lines[-1:]  # the config file raised: its own message is the last line
    return "; ".join(line.strip("'") if line.count("'") == 2 and line[0] == "'" else line for line in lines)


def run() -> None:
    """Console entry point."""
    try:
        argv = flags.FLAGS(sys.argv)
    except (flags.Error, KeyError, AttributeError, ValueError) as error:
        key = f"bad flag or config key ({type(error).__name__})"
        print(f"sora-jax: {key}: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    logging.set_verbosity(logging.WARNING)
    try:
        app.run(main, argv=argv, flags_parser=lambda a: a)
    except UserError as error:
        print(f"sora-jax: {error}", file=sys.stderr)
        sys.exit(2)
    except (FileNotFoundError, ValueError) as error:
        print(f"sora-jax: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
