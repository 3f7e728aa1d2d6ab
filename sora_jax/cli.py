"""`sora-jax VERB [SUBVERB] --flags`: the command line of the project.

    sora-jax data prepare --dataset=physworld/tiny --data_dir=data/tfds
    sora-jax data preview --dataset=physworld/tiny --data_dir=data/tfds --out=out/preview
    sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir=runs/vae_tiny
    sora-jax export --workdir=runs/vae_tiny --out=assets/vae_tiny
    sora-jax sample --workdir=runs/t2v_tiny --prompt="a red ball" --out=out/red_ball.mp4
    sora-jax ladder --config=sora_jax/configs/scaling.py:demo --workdir=out/ladder   # 1x, 4x, 32x
    sora-jax sweep --config=sora_jax/configs/scaling.py:demo --workdir=out/sweep --budgets=0.25x,0.5x,1x --sizes=5
    sora-jax ladder ... --engine=ray [--ray_address=auto]  # runs side by side as Ray tasks
    sora-jax VERB --help                                   # the verb's flags, one line each

Flags are few on purpose: `--config` (with `--config.a.b=v` overrides), `--workdir`, and a handful
per verb. A user mistake ends with a one-line message and exit code 2, never a traceback.
`--config=configs/NAME.py:ARG` (the layout before configs moved into the package) still works:
a config path that does not exist is looked up among the package's configs.
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from sora_jax.checkpoint_integrity import CheckpointDamaged
from sora_jax.scaling.engines import JobsFailed

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config file and its argument, e.g. "
                                          "sora_jax/configs/vae.py:tiny; override fields with --config.a.b=v.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of a run: checkpoints, metrics, samples.")
_DATASET = flags.DEFINE_string("dataset", "physworld/tiny", "physworld/<tiny|small|base>, "
                               "physworld3d/<tiny|small|base>, blockworld/<tiny|small>, folder:<path> (prepare: "
                               "imported as video_folder/<name>) or video_folder/<name>.")
_BEAM_OPTIONS = flags.DEFINE_string("beam_pipeline_options", "", "data prepare: run as an Apache Beam pipeline with "
                                    "these options, key=value,... (runner=DirectRunner,direct_num_workers=4; "
                                    "runner=DataflowRunner,project=...,region=...,temp_location=gs://...).")
_BUCKETS = flags.DEFINE_string("buckets", "physworld/tiny", "data prepare folder:<path>: cut clips to this PhysWorld "
                               "variant's sizes and durations.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data/tfds", "Where prepared datasets live.")
_SPLIT = flags.DEFINE_string("split", "validation", "Split to preview.")
_OUT = flags.DEFINE_string("out", None, "Output directory (preview, export) or file (sample).")
_COUNT = flags.DEFINE_integer("count", 12, "How many clips to preview.")
_SUITE = flags.DEFINE_enum("suite", "vae", ["vae"], "Evaluation suite (eval).")
# sample
_PROMPT = flags.DEFINE_string("prompt", "", "Text prompt (sample); enriched into a training-style caption.")
_MODE = flags.DEFINE_string("mode", "t2v", "The prompting mode (listed below).")
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
_ADAPTER = flags.DEFINE_string("adapter", None, "sample: a LoRA run (workdir or export) whose adapters apply to "
                               "--workdir's DiT, the base it was trained on.")
_MERGE = flags.DEFINE_bool("merge", False, "export: --workdir is a LoRA run; write its adapters folded into its base "
                           "as one plain model.")
_ALLOW_LONG = flags.DEFINE_bool("allow_long", False, "Go ahead with a generation estimated past 10 minutes or half "
                                "the machine's memory (the estimate is printed first).")
# ladder
_PRINT = flags.DEFINE_bool("print", False, "ladder: print the plan (params, steps, expected time) and stop.")
_BUDGETS = flags.DEFINE_list("budgets", None, "ladder: the rungs to run (default: the config's 1x, 4x, 32x); sweep: "
                              "the budgets, smallest first (the last is predicted before it runs when >= 3).")
_SIZES = flags.DEFINE_list("sizes", ["5"], "sweep: a count of model sizes per budget centred on the rule's choice, or "
                           "the sizes themselves (L4d128,L6d192,...) at every budget.")
_ENGINE = flags.DEFINE_enum("engine", None, ["local", "ray"], "ladder, sweep: where the runs execute: local (one "
                            "after another) or ray (side by side as Ray tasks; default: config.engine.name).")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", None, "ladder, sweep: the Ray cluster (auto, ray://host:10001); "
                                   "empty: a local Ray instance (default: config.engine.ray_address).")
_PROMPTS_FILE = flags.DEFINE_string("prompts_file", None, "One prompt per line, sampled in batches; outputs "
                                    "are --out with _000, _001, ... appended.")
_PUBLISH = flags.DEFINE_string("publish", None, "ladder: copy the small results (JSON, tables, figures) to this "
                               "directory for committing, e.g. experiments/results/ladder_demo.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "train, ladder: one process of a multi-process run (every TPU "
                                  "pod worker, every GPU node): jax.distributed.initialize() finds its peers on Cloud "
                                  "TPU, SLURM, Open MPI and Kubernetes; elsewhere add --coordinator, --num_processes "
                                  "and --process_id.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "train, ladder: host:port of process 0 (a multi-process run "
                                   "where the cluster is not detected).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "train, ladder: processes in all (with --coordinator).")
_PORT = flags.DEFINE_integer("port", 8808, "play: the local port the page is served on.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "train, ladder: this process's index, 0 .. num_processes - 1.")
MULTI_PROCESS_FLAGS = ("distributed", "coordinator", "num_processes", "process_id")

# Each verb: what it does, and the flags it reads (`sora-jax VERB --help` lists them, one line each).
VERBS = {
    "train": ("train a model from a config; rerun to resume", ("config", "workdir", *MULTI_PROCESS_FLAGS)),
    "sample": ("generate videos or images from a trained text-to-video run",
               ("workdir", "out", "prompt", "prompts_file", "mode", "frames", "height", "width", "image", "video",
                "video2", "strength", "seed", "steps", "guidance", "sampler", "no_enrich", "allow_long", "adapter")),
    "eval": ("evaluate a trained VAE (reconstruction in and out of domain, throughput)", ("workdir", "suite")),
    "data": ("data prepare: build a tfds dataset (PhysWorld, or import a folder; Beam with --beam_pipeline_options); "
             "data preview: a gallery of clips",
             ("dataset", "data_dir", "split", "out", "count", "beam_pipeline_options", "buckets")),
    "export": ("write a run's EMA parameters without optimizer state (small enough to commit)",
               ("workdir", "out", "merge")),
    "verify": ("check every checkpoint of a run (or an export) against its manifest of checksums", ("workdir",)),
    "ladder": ("train the compute ladder's rungs (1x, 4x, 32x) and compare them",
               ("config", "workdir", "print", "budgets", "publish", "engine", "ray_address", *MULTI_PROCESS_FLAGS)),
    "sweep": ("an IsoFLOP sweep: model sizes at each budget, the fits (N*, L*, Chinchilla) and plots; resumable",
              ("config", "workdir", "budgets", "sizes", "publish", "engine", "ray_address")),
    "play": ("play a BlockWorld run in the browser: each key press is an action the model renders",
             ("workdir", "port", "seed", "steps", "guidance")),
}
USAGE = "usage: sora-jax {" + "|".join(VERBS) + "} ... (data: prepare|preview); sora-jax VERB --help"
HELP_FLAGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")
CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


def _data(subverb: str | None) -> None:
    if subverb == "prepare":
        from sora_jax.data import prepare

        try:
            path = prepare.prepare(_DATASET.value, _DATA_DIR.value, _BEAM_OPTIONS.value, _BUCKETS.value)
        except (ValueError, FileNotFoundError) as error:
            raise UserError(str(error)) from None
        print(f"prepared {_DATASET.value} in {path}")
        if (path / "report.json").exists():
            report = json.loads((path / "report.json").read_text())
            print(f"{report['dataset']}: usable clips {report['usable']}, {report['skipped']} files skipped "
                  f"(reasons in {path / 'report.json'}); train on it with --config.data.dataset={report['dataset']} "
                  f"--config.data.data_dir={_DATA_DIR.value}")
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


def _join_processes() -> None:
    """With --distributed or --coordinator: joins the multi-process run before JAX touches a device."""
    manual = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if not _DISTRIBUTED.value and all(value is None for value in manual):
        return
    if any(value is not None for value in manual) and any(value is None for value in manual):
        raise UserError("--coordinator, --num_processes and --process_id go together (or --distributed alone, "
                        "where the cluster is detected: Cloud TPU, SLURM, Open MPI, Kubernetes)")
    import jax

    if manual[0] is not None:
        if not 0 <= manual[2] < manual[1]:
            raise UserError(f"--process_id={manual[2]} must be in [0, --num_processes={manual[1]})")
        jax.distributed.initialize(coordinator_address=manual[0], num_processes=manual[1], process_id=manual[2])
    else:
        jax.distributed.initialize()
    print(f"process {jax.process_index()} of {jax.process_count()}: {jax.local_device_count()} local devices, "
          f"{jax.device_count()} in all", flush=True)


def _train() -> None:
    config = _require(_CONFIG, "config")
    workdir = _require(_WORKDIR, "workdir")
    import jax

    from sora_jax.data import prepare, worlds
    from sora_jax.train import trainer, validate

    validate.check(config, jax.device_count())  # before preparing data or compiling anything
    if worlds.is_world(config.data.dataset):
        prepare.prepare(config.data.dataset, config.data.data_dir)  # procedural: a no-op once built
    results = trainer.train(config, workdir)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, indent=1))


def _sample() -> None:
    workdir = _require(_WORKDIR, "workdir")
    out = _require(_OUT, "out")
    from sora_jax import generate, request_checks

    try:
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
            steps=_STEPS.value, guidance=_GUIDANCE.value, sampler=_SAMPLER.value, enrich=not _NO_ENRICH.value,
            allow_long=_ALLOW_LONG.value)
            for text in texts]
        for request in requests:  # before the model loads: a bad value costs nothing
            request_checks.check_request(request)
        request_checks.check_output(out)
        generator = generate.Generator(workdir, _ADAPTER.value)
        results = generate.generate_batch(generator, requests)
    except generate.UserInputError as error:
        raise UserError(str(error)) from None
    base = pathlib.Path(out)
    for number, result in enumerate(results):
        enrichment = result.meta.get("enrichment") or {}
        if logging.get_verbosity() >= logging.INFO and result.meta["enriched_prompt"] != result.meta["prompt"]:
            print(f"prompt:   {result.meta['prompt']}\nenriched: {result.meta['enriched_prompt']}")
        for note in enrichment.get("unhonoured", []):
            print(f"not honoured: {note}")
        target = base if len(results) == 1 else base.with_name(f"{base.stem}_{number:03d}{base.suffix}")
        paths = generate.write(result, target)
        print(f"{result.meta['mode']}: {result.meta['frames']} frames of {result.meta['height']}x"
              f"{result.meta['width']} in {result.meta['seconds']:.1f} s -> {', '.join(str(p) for p in paths)}")


def _export() -> None:
    workdir = _require(_WORKDIR, "workdir")
    out = _require(_OUT, "out")
    from sora_jax import checkpoints
    from sora_jax.pipelines import adapters

    try:
        path = adapters.export_merged(workdir, out) if _MERGE.value else checkpoints.export(workdir, out)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    what = "adapters merged into their base" if _MERGE.value else "EMA parameters"
    print(f"exported the {what} of {workdir} to {path} ({size / 1e6:.1f} MB)")


def _verify() -> None:
    workdir = _require(_WORKDIR, "workdir")
    from sora_jax import checkpoints

    verdicts = checkpoints.verify_run(workdir)
    for name, verdict in verdicts.items():
        print(f"{name}: {verdict.describe()}")
    damaged = [name for name, verdict in verdicts.items() if verdict.status == "damaged"]
    if damaged:
        raise UserError(f"{len(damaged)} of {len(verdicts)} damaged in {workdir}: {', '.join(damaged)}")
    print(f"{workdir}: {len(verdicts)} checked, none damaged")


def _eval() -> None:
    workdir = _require(_WORKDIR, "workdir")
    from sora_jax.evaluation import vae_suite

    report = vae_suite.run(workdir)
    summary = {"physworld_validation": report["physworld_validation"],
               "real_footage_psnr": report["real_footage"]["psnr"], "compression_ratio": report["compression_ratio"],
               "throughput": report["throughput"]}
    print(json.dumps(summary, indent=1))
    print(f"wrote {workdir}/eval_vae.json")


def _scaling_config(verb: str):
    """A compute-ladder config with --engine and --ray_address applied."""
    config = _require(_CONFIG, "config")
    if "ladder" not in config:
        raise UserError(f"{verb} needs a compute-ladder config, e.g. --config=sora_jax/configs/scaling.py:demo")
    if _ENGINE.value is not None:
        config.engine.name = _ENGINE.value
    if _RAY_ADDRESS.value is not None:
        config.engine.ray_address = _RAY_ADDRESS.value
    if config.engine.name == "ray" and any(flags.FLAGS[name].present for name in MULTI_PROCESS_FLAGS):
        raise UserError("--engine=ray runs each run as a Ray task; --distributed and its flags are for one run over "
                        "several processes (use --engine=local with them)")
    return config


def _ladder() -> None:
    config = _scaling_config("ladder")
    from sora_jax.scaling import ladder

    print(ladder.format_table(ladder.table(config)))
    if _PRINT.value:
        return
    workdir = _require(_WORKDIR, "workdir")
    ladder.run(config, workdir, _BUDGETS.value)  # checks every rung's config before any runs
    if _PUBLISH.value:
        copied = ladder.publish(workdir, _PUBLISH.value)
        print(f"ladder: published {len(copied)} files to {_PUBLISH.value}")


def _sweep() -> None:
    config = _scaling_config("sweep")
    budgets = _require(_BUDGETS, "budgets")
    sizes = int(_SIZES.value[0]) if len(_SIZES.value) == 1 and _SIZES.value[0].isdigit() else _SIZES.value
    workdir = pathlib.Path(_require(_WORKDIR, "workdir"))
    from sora_jax.scaling import isoflop

    try:
        runs = isoflop.plan(config, budgets, sizes)
    except ValueError as error:
        raise UserError(str(error)) from None
    print(f"sweep: {len(runs)} runs ({len(budgets)} budgets x {len(runs) // len(budgets)} sizes) in {workdir}, "
          f"engine {config.engine.name}", flush=True)
    report = isoflop.sweep(config, workdir, budgets, sizes)
    isoflop.write_report(report, workdir)
    print(isoflop.summary_line(report))
    if _PUBLISH.value:
        copied = isoflop.publish(workdir, report, _PUBLISH.value)
        print(f"sweep: published {len(copied)} files to {_PUBLISH.value}")


def usage() -> str:
    """Bare `sora-jax` and `sora-jax --help`: the verbs, one line each."""
    lines = ["sora-jax: reproduce Sora's recipe in JAX and measure what compute buys.", "", USAGE, "", "verbs:"]
    lines += [f"  {verb:<8} {summary}" for verb, (summary, _) in VERBS.items()]
    lines += ["", "e.g. sora-jax train --config=sora_jax/configs/t2v.py:tiny --workdir=runs/t2v_tiny"]
    return "\n".join(lines)


def verb_help(verb: str, full: bool = False) -> str:
    """`sora-jax VERB --help`: the verb's flags with one line each (`--helpfull`: every flag)."""
    summary, names = VERBS[verb]
    lines = [f"sora-jax {verb}: {summary}", "", "flags:"]
    for name in (sorted(VERB_FLAG_NAMES) if full else names):
        flag = flags.FLAGS[name]
        default = "" if flag.default in (None, "", False) or name == "config" else f" (default: {flag.default})"
        lines.append(f"  --{name:<14} {flag.help}{default}")
    if verb == "sample":
        from sora_jax.generate import MODE_NEEDS

        lines += ["", "modes (--mode):"] + [f"  {mode:<16} {needs}" for mode, needs in MODE_NEEDS.items()]
    if "config" in names:
        lines += ["", "configs: " + ", ".join(f"sora_jax/configs/{p.name}" for p in sorted(CONFIG_DIR.glob("[!_]*.py"))
                                              if p.name != "common.py"),
                  "any config field: --config.a.b=v (a mistyped field fails, naming the closest)"]
    return "\n".join(lines)


VERB_FLAG_NAMES = sorted({name for _, names in VERBS.values() for name in names})


def verbose_flag(argv: list[str]) -> list[str]:
    """A bare `-v` (absl's verbosity flag wants a number) means `--verbosity=0`: INFO, which
    shows the enriched caption of `sample` and the trainer's log lines."""
    return ["--verbosity=0" if arg == "-v" else arg for arg in argv]


def resolve_config_paths(argv: list[str]) -> list[str]:
    """`--config=configs/t2v.py:tiny` (or any config path that does not exist as given) -> the
    package's `sora_jax/configs/t2v.py:tiny`, so commands written before the move keep working."""
    resolved = []
    for arg in argv:
        if arg.startswith("--config="):
            path, sep, rest = arg[len("--config="):].partition(":")
            candidate = CONFIG_DIR / pathlib.Path(path).name
            if not pathlib.Path(path).exists() and candidate.exists():
                arg = f"--config={candidate}{sep}{rest}"
        resolved.append(arg)
    return resolved


def main(argv: list[str]) -> None:
    args = argv[1:]
    verb = args[0] if args else None
    if verb not in VERBS:
        raise UserError(f"unknown verb {verb!r}; {USAGE}")
    if verb == "data":
        return _data(args[1] if len(args) > 1 else None)
    if verb in ("train", "ladder"):
        _join_processes()
    if verb == "train":
        return _train()
    if verb == "eval":
        return _eval()
    if verb == "export":
        return _export()
    if verb == "verify":
        return _verify()
    if verb == "sample":
        return _sample()
    if verb == "sweep":
        return _sweep()
    if verb == "play":
        return _play()
    return _ladder()


def _play() -> None:
    from sora_jax import play

    options = {"seed": _SEED.value, **({"steps": _STEPS.value} if _STEPS.value else {}),
               **({"guidance": _GUIDANCE.value} if _GUIDANCE.value is not None else {})}
    play.run(_require(_WORKDIR, "workdir"), _PORT.value, **options)


def _one_line(error: BaseException) -> str:
    """Flag and config errors arrive as repr'd, multi-line or traceback-laden text: one line."""
    while isinstance(error, BaseException) and error.args:
        error = error.args[0]  # an AttributeError may wrap the KeyError that holds the text
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        lines = lines[-1:]  # the config file raised: its own message is the last line
    return "; ".join(line.strip("'") if line.count("'") == 2 and line[0] == "'" else line for line in lines)


def _help_request(argv: list[str]) -> str | None:
    """The help text when the command line asks for help (or names no verb), else None."""
    words = [a for a in argv[1:] if not a.startswith("-")]
    asked = [a for a in argv[1:] if a in HELP_FLAGS]
    if not words and not asked and len(argv) > 1:
        return None  # flags without a verb: the verb check reports it
    verb = words[0] if words else None
    if verb in VERBS and asked:
        return verb_help(verb, full="--helpfull" in asked)
    if verb is None:
        return usage()
    if asked:
        raise UserError(f"unknown verb {verb!r}; {USAGE}")
    return None


def run() -> None:
    """Console entry point."""
    from sora_jax import host_memory

    host_memory.retain_freed_memory()  # process-wide, before XLA allocates: see host_memory
    try:
        text = _help_request(sys.argv)
    except UserError as error:
        print(f"sora-jax: {error}", file=sys.stderr)
        sys.exit(2)
    if text is not None:
        print(text)
        sys.exit(0)
    try:
        argv = flags.FLAGS(resolve_config_paths(verbose_flag(sys.argv)))
    except (flags.Error, KeyError, AttributeError, ValueError) as error:
        key = f"bad flag or config key ({type(error).__name__})"
        print(f"sora-jax: {key}: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    if not any(a == "-v" or a.startswith(("--v=", "--verbosity", "-v=")) for a in sys.argv[1:]):
        logging.set_verbosity(logging.WARNING)
    try:
        app.run(main, argv=argv, flags_parser=lambda a: a)
    except UserError as error:
        print(f"sora-jax: {error}", file=sys.stderr)
        sys.exit(2)
    except (OSError, ValueError) as error:  # OSError: also a config file that failed to load, a full disk
        print(f"sora-jax: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except (FloatingPointError, CheckpointDamaged, JobsFailed) as error:  # a run that could not train (on any
        # engine); a damaged checkpoint
        print(f"sora-jax: {_one_line(error)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
