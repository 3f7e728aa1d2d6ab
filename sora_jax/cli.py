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

from sora_jax import cli_flags as F
from sora_jax.checkpoint_integrity import CheckpointDamaged
from sora_jax.scaling.engines import JobsFailed


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


def _data(subverb: str | None) -> None:
    if subverb == "prepare":
        from sora_jax.data import prepare

        try:
            path = prepare.prepare(F.DATASET.value, F.DATA_DIR.value, F.BEAM_OPTIONS.value, F.BUCKETS.value)
        except (ValueError, FileNotFoundError) as error:
            raise UserError(str(error)) from None
        print(f"prepared {F.DATASET.value} in {path}")
        if (path / "report.json").exists():
            report = json.loads((path / "report.json").read_text())
            print(f"{report['dataset']}: usable clips {report['usable']}, {report['skipped']} files skipped "
                  f"(reasons in {path / 'report.json'}); train on it with --config.data.dataset={report['dataset']} "
                  f"--config.data.data_dir={F.DATA_DIR.value}")
    elif subverb == "preview":
        if not F.OUT.value:
            raise UserError("data preview needs --out=DIR")
        from sora_jax.data import prepare, preview

        examples = prepare.first_examples(F.DATASET.value, F.DATA_DIR.value, F.SPLIT.value, F.COUNT.value)
        page = preview.write_gallery(examples, F.OUT.value)
        print(f"wrote {F.COUNT.value} clips, contact_sheet.png and {page}")
    else:
        raise UserError(f"data needs a subverb: prepare or preview (got {subverb!r})")


def _require(flag, name: str):
    if flag.value is None:
        raise UserError(f"this verb needs --{name}")
    return flag.value


def _join_processes() -> None:
    """With --distributed or --coordinator: joins the multi-process run before JAX touches a device."""
    manual = (F.COORDINATOR.value, F.NUM_PROCESSES.value, F.PROCESS_ID.value)
    if not F.DISTRIBUTED.value and all(value is None for value in manual):
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
    config = _require(F.CONFIG, "config")
    workdir = _require(F.WORKDIR, "workdir")
    import jax

    from sora_jax.data import prepare, worlds
    from sora_jax.train import trainer, validate

    validate.check(config, jax.device_count())  # before preparing data or compiling anything
    if worlds.is_world(config.data.dataset):
        prepare.prepare(config.data.dataset, config.data.data_dir)  # procedural: a no-op once built
    results = trainer.train(config, workdir)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, indent=1))


def _sample() -> None:
    workdir = _require(F.WORKDIR, "workdir")
    out = _require(F.OUT, "out")
    from sora_jax import generate, request_checks

    try:
        if F.PROMPTS_FILE.value:
            try:
                lines = pathlib.Path(F.PROMPTS_FILE.value).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise UserError(f"--prompts_file: cannot read it ({error})") from None
            texts = [line.strip() for line in lines if line.strip()]
        else:
            texts = [F.PROMPT.value]
        requests = [generate.Request(
            prompt=text, mode=F.MODE.value, frames=F.FRAMES.value, height=F.HEIGHT.value, width=F.WIDTH.value,
            image=F.IMAGE.value, video=F.VIDEO.value, video2=F.VIDEO2.value, strength=F.STRENGTH.value,
            seed=F.SEED.value, steps=F.STEPS.value, guidance=F.GUIDANCE.value, shift=F.SHIFT.value,
            sampler=F.SAMPLER.value,
            enrich=not F.NO_ENRICH.value, allow_long=F.ALLOW_LONG.value)
            for text in texts]
        for request in requests:  # before the model loads: a bad value costs nothing
            request_checks.check_request(request)
        request_checks.check_output(out)
        generator = generate.Generator(workdir, F.ADAPTER.value)
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
    workdir = _require(F.WORKDIR, "workdir")
    out = _require(F.OUT, "out")
    from sora_jax import checkpoints
    from sora_jax.pipelines import adapters

    try:
        path = adapters.export_merged(workdir, out) if F.MERGE.value else checkpoints.export(workdir, out)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    what = "adapters merged into their base" if F.MERGE.value else "EMA parameters"
    print(f"exported the {what} of {workdir} to {path} ({size / 1e6:.1f} MB)")


def _verify() -> None:
    workdir = _require(F.WORKDIR, "workdir")
    from sora_jax import checkpoints

    verdicts = checkpoints.verify_run(workdir)
    for name, verdict in verdicts.items():
        print(f"{name}: {verdict.describe()}")
    damaged = [name for name, verdict in verdicts.items() if verdict.status == "damaged"]
    if damaged:
        raise UserError(f"{len(damaged)} of {len(verdicts)} damaged in {workdir}: {', '.join(damaged)}")
    print(f"{workdir}: {len(verdicts)} checked, none damaged")


def _eval() -> None:
    workdir = _require(F.WORKDIR, "workdir")
    from sora_jax.evaluation import vae_suite

    report = vae_suite.run(workdir)
    summary = {"physworld_validation": report["physworld_validation"],
               "real_footage_psnr": report["real_footage"]["psnr"], "compression_ratio": report["compression_ratio"],
               "throughput": report["throughput"]}
    print(json.dumps(summary, indent=1))
    print(f"wrote {workdir}/eval_vae.json")


def _scaling_config(verb: str):
    """A compute-ladder config with --engine and --ray_address applied."""
    config = _require(F.CONFIG, "config")
    if "ladder" not in config:
        raise UserError(f"{verb} needs a compute-ladder config, e.g. --config=sora_jax/configs/scaling.py:demo")
    if F.ENGINE.value is not None:
        config.engine.name = F.ENGINE.value
    if F.RAY_ADDRESS.value is not None:
        config.engine.ray_address = F.RAY_ADDRESS.value
    if config.engine.name == "ray" and any(flags.FLAGS[name].present for name in F.MULTI_PROCESS_FLAGS):
        raise UserError("--engine=ray runs each run as a Ray task; --distributed and its flags are for one run over "
                        "several processes (use --engine=local with them)")
    return config


def _ladder() -> None:
    config = _scaling_config("ladder")
    from sora_jax.scaling import ladder
    from sora_jax.train import validate

    validate.check_ladder_settings(config.ladder)  # they act after training: refused before it
    print(ladder.format_table(ladder.table(config)))
    if F.PRINT.value:
        return
    workdir = _require(F.WORKDIR, "workdir")
    ladder.run(config, workdir, F.BUDGETS.value)  # checks every rung's config before any runs
    if F.PUBLISH.value:
        copied = ladder.publish(workdir, F.PUBLISH.value)
        print(f"ladder: published {len(copied)} files to {F.PUBLISH.value}")


def _sweep() -> None:
    config = _scaling_config("sweep")
    budgets = _require(F.BUDGETS, "budgets")
    sizes = int(F.SIZES.value[0]) if len(F.SIZES.value) == 1 and F.SIZES.value[0].isdigit() else F.SIZES.value
    workdir = pathlib.Path(_require(F.WORKDIR, "workdir"))
    from sora_jax.scaling import isoflop
    from sora_jax.train import validate

    validate.check_ladder_settings(config.ladder)  # before the plan is made or a record restored
    try:
        runs = isoflop.plan(config, budgets, sizes)
    except ValueError as error:
        raise UserError(str(error)) from None
    print(f"sweep: {len(runs)} runs ({len(budgets)} budgets x {len(runs) // len(budgets)} sizes) in {workdir}, "
          f"engine {config.engine.name}", flush=True)
    report = isoflop.sweep(config, workdir, budgets, sizes, bootstrap=config.ladder.bootstrap,
                           results=F.PUBLISH.value or None)  # a record of another run: RecordMismatch
    isoflop.write_report(report, workdir)
    print(isoflop.summary_line(report))
    if F.PUBLISH.value:
        copied = isoflop.publish(workdir, report, F.PUBLISH.value)
        print(f"sweep: published {len(copied)} files to {F.PUBLISH.value}")


def main(argv: list[str]) -> None:
    args = argv[1:]
    verb = args[0] if args else None
    if verb not in F.VERBS:
        raise UserError(f"unknown verb {verb!r}; {F.USAGE}")
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

    options = {"seed": F.SEED.value, **({"steps": F.STEPS.value} if F.STEPS.value else {}),
               **({"guidance": F.GUIDANCE.value} if F.GUIDANCE.value is not None else {})}
    play.run(_require(F.WORKDIR, "workdir"), F.PORT.value, **options)


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
    asked = [a for a in argv[1:] if a in F.HELP_FLAGS]
    if not words and not asked and len(argv) > 1:
        return None  # flags without a verb: the verb check reports it
    verb = words[0] if words else None
    if verb in F.VERBS and asked:
        return F.verb_help(verb, full="--helpfull" in asked)
    if verb is None:
        return F.usage()
    if asked:
        raise UserError(f"unknown verb {verb!r}; {F.USAGE}")
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
        argv = flags.FLAGS(F.resolve_config_paths(F.verbose_flag(sys.argv)))
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
