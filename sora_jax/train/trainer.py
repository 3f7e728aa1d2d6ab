"""The one trainer, in big_vision's sections, in the order `train()` runs them: Checkpoint (opened
first, so a workdir of another model is refused before any work), Mesh, Model, Shard, Update
(`build`), Input, Restore, Evals, Loop. A task (`task.Task`: `vae_task.VaeTask`,
`t2v_task.T2VTask`) supplies the model, loss and evaluations.

    sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir=runs/vae_tiny

A run restarted on the same workdir resumes from its latest complete checkpoint, data order
included. SIGTERM / SIGINT write a checkpoint and exit cleanly.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from sora_jax import checkpoint_integrity as integrity
from sora_jax import checkpoints as checkpoint_lib
from sora_jax import host_memory
from sora_jax.models import lora, mup
from sora_jax.pipelines import adapters
from sora_jax.train import metrics as metrics_lib
from sora_jax.train import preemption as preemption_lib
from sora_jax.train import run_log, sharding, throughput, validate
from sora_jax.train import state as state_lib
from sora_jax.train import step as step_lib
from sora_jax.train.task import Task

# Steps dispatched but not finished, at most. JAX dispatches asynchronously, so the loop ran up to
# `log.every_steps` steps ahead, and every step in flight held memory: the `small` VAE (4 GiB of
# temporaries a step) grew ~1.5 GiB every few seconds past this machine's 23 GiB and was killed
# before its first log line. Two in flight keep the next batch's host work overlapped with the
# running step (t2v tiny: same steps/s); with `host_memory.release_excess` after each step the
# 20-step small run peaks at 10.9 GiB.
STEPS_IN_FLIGHT = 2


def make_task(config, workdir, base=None) -> Task:
    if config.task == "vae":
        from sora_jax.train.vae_task import VaeTask

        return VaeTask(config)
    if config.task == "t2v":
        from sora_jax.train.t2v_task import T2VTask

        return T2VTask(config, workdir, base)
    raise ValueError(f"config.task={config.task!r} has no trainer task; valid: vae, t2v")


@dataclasses.dataclass
class Setup:
    """What `build` makes: the sharded initial state and the jitted step, for one mesh."""

    mesh: jax.sharding.Mesh
    state: state_lib.TrainState
    state_shardings: object
    batch_sharding: jax.sharding.NamedSharding
    train_step: object  # jitted (state, batch) -> (state, metrics); donates the state
    param_count: int  # trained parameters
    shards: int  # data x fsdp: global batches divide by shards x grad_accum_steps


def build(config, task, mesh=None) -> Setup:
    """Mesh, sharded parameter init (each device creates only its shards) and the train step."""
    mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
    rules = sharding.logical_rules(config)
    shards = sharding.batch_shards(mesh)
    example = task.example_batch(shards)
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    abstract_params = jax.eval_shape(task.init, init_rng, example)
    param_shardings = sharding.tree_shardings(abstract_params, mesh, rules)
    init_params = jax.jit(lambda rng: nn.unbox(task.init(rng, example)), out_shardings=param_shardings)
    params, frozen = task.partition(init_params(init_rng))
    optimizer = state_lib.make_optimizer(config.optimizer, config.total_steps,
                                         _mup_multipliers(config, task, params, init_rng, example))
    create = jax.jit(lambda p, f, r: state_lib.TrainState.create(p, optimizer, r, f))
    state = create(params, frozen, state_rng)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    batch_sharding = sharding.batch_sharding(mesh)

    def step_under_rules(state, batch):
        # Activations' logical constraints resolve against this mesh under these rules.
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
            return step_lib.make_train_step(task, optimizer, config)(state, batch)

    train_step = jax.jit(step_under_rules, in_shardings=(state_shardings, batch_sharding),
                         out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)
    param_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    return Setup(mesh, state, state_shardings, batch_sharding, train_step, param_count, shards)


def _mup_multipliers(config, task, params, rng, example):
    """μP's per-parameter LR multipliers (`models/mup.py`), from the trained parameters' shapes
    against the same model's at `model.mup_base_width`; None under the standard parametrization."""
    if config.task != "t2v" or config.model.get("parametrization", "standard") != "mup":
        return None
    base = mup.base_model(task.model, config.model.mup_base_width)
    base_shapes = jax.eval_shape(lambda r: nn.unbox(task.init(r, example, model=base)), rng)
    multipliers = mup.lr_multipliers(params, base_shapes)
    scaled = sorted({m for m in jax.tree.leaves(multipliers) if m != 1.0})
    logging.info("muP: base width %d; hidden and output LRs x %s", config.model.mup_base_width, scaled or [1.0])
    return multipliers


def _init_from(path: str, state: state_lib.TrainState) -> tuple[state_lib.TrainState, dict]:
    """Fine-tuning start: parameters (and their EMA) from another run's or export's EMA weights
    wherever path and shape match; the rest keep their fresh init; optimizer state starts anew."""
    source, _, _ = checkpoint_lib.load_params(path)
    params, report = checkpoint_lib.partial_load(state.params, jax.device_get(source))
    params = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding), params, state.params)
    return state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params)), report


def gather_params(params):
    """Parameters as host numpy on every process (collective when there are several processes)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(params, tiled=True)
    return jax.device_get(params)


def open_checkpoints(config, workdir: pathlib.Path) -> tuple[checkpoint_lib.Checkpointer, int | None]:
    """The run's checkpointer and its latest complete step; a workdir holding another model is
    refused before anything is built, and before its config.json is touched."""
    checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.checkpoint.keep,
                                               async_save=config.checkpoint.async_save)
    try:
        start_step = checkpointer.resume_step(refuse_damaged=config.checkpoint.get("on_damage") == "refuse")
    except integrity.CheckpointDamaged:
        checkpointer.close()
        raise
    if start_step is not None:
        differences = checkpoint_lib.config_mismatch(checkpointer.read_meta(start_step).get("config", {}), config)
        if differences:
            checkpointer.close()
            raise validate.ConfigError(
                f"{workdir} holds a checkpoint of a different model ({'; '.join(differences)}): use a new --workdir, "
                f"or start a new run from it with --config.init_from={workdir}")
    return checkpointer, start_step


def open_input(task: Task, setup: Setup, config, workdir: pathlib.Path):
    """(iterator over host-local batches, the data source's report or None); skipped user files
    are named with their reasons in `data_report.json`."""
    dataset, _, source = task.make_dataset(setup.shards * config.optimizer.grad_accum_steps)
    report = source.report() if hasattr(source, "report") else None  # tfds sources have none
    if report and report["skipped"] and jax.process_index() == 0:
        (workdir / "data_report.json").write_text(json.dumps(report, indent=1))
        print(f"data: {report['usable']} usable, {report['skipped']} skipped files "
              f"(each named with its reason in {workdir / 'data_report.json'})")
    return iter(dataset), report


class TrainingRun:
    """One run after its pieces are built: the loop, its logging, saves and evaluations. The
    state it carries across resumes: train state, data position, FLOPs spent (the scaling laws' C)."""

    def __init__(self, config, workdir: pathlib.Path, task: Task, setup: Setup,
                 checkpointer: checkpoint_lib.Checkpointer, data_iterator, quiet: bool):
        self.config, self.workdir, self.task, self.setup = config, workdir, task, setup
        self.checkpointer, self.data_iterator = checkpointer, data_iterator
        self.state = setup.state
        self.compute_flops = 0.0
        self.init_report = None
        self.mfu_basis = ""  # what the logged `mfu` is against (throughput.Peak.source), set by `loop`
        self.quiet = quiet
        self.warned_disk = False
        self.last_window_skipped = False

    # --- Restore or initialize
    def restore_or_init(self, start_step: int | None) -> None:
        if start_step is not None:
            self.state, meta = self.checkpointer.restore(start_step, self.state, self.setup.state_shardings)
            self.data_iterator.set_state(meta["data_state"])
            self.compute_flops = float(meta.get("compute_flops", 0.0))
            logging.info("resumed from step %d", start_step)
        elif self.config.init_from:
            self.state, self.init_report = _init_from(self.config.init_from, self.state)
            report = self.init_report
            print(f"init_from {self.config.init_from}: loaded {report['loaded']} arrays; fresh (new or reshaped): "
                  f"{len(report['fresh'])}; ignored (not in this model): {len(report['ignored'])}")

    def save(self, step: int, force: bool = False, extra: dict | None = None) -> None:
        meta = {"config": json.loads(self.config.to_json_best_effort()), "data_state": self.data_iterator.get_state(),
                "task": self.task.name, "param_count": self.setup.param_count, "compute_flops": self.compute_flops,
                **(extra or {})}
        try:
            self.checkpointer.save(step, self.state, meta, force=force)
        except integrity.DiskFull as error:
            if self.config.checkpoint.get("on_full_disk", "stop") != "continue" or extra is not None:
                raise  # stop cleanly (the final checkpoint is never skipped)
            if not self.warned_disk:
                print(f"{error}: training on without saving (checkpoint.on_full_disk=continue)", flush=True)
                self.warned_disk = True

    # --- Evals
    def open_evals(self) -> None:
        clips = self.task.validation_clips(self.config.eval.num_clips)  # every process: building a cache is collective
        self.eval_clips = clips if jax.process_index() == 0 else []
        self.sample_clips = self.eval_clips[: self.config.eval.num_samples]

    def evaluate(self, step: int) -> dict:
        ema = gather_params(self.state.model_params(ema=True))
        if jax.process_index() != 0:
            return {}
        results = self.task.evaluate(ema, self.eval_clips)
        if self.compute_flops:
            results["compute_flops"] = self.compute_flops
        out_dir = self.workdir / "samples" / f"step_{step:06d}"
        results.update(self.task.write_samples(ema, self.sample_clips, out_dir, self.writer, step))
        self.writer.write(step, results)
        return results

    # --- Loop
    def loop(self) -> dict:
        """Trains to `total_steps`; returns the final results, or {"preempted": True, "step"}. A
        signal that arrives during the final evaluation or save lets them finish, and the results
        say so (`stop_requested`), so whoever runs the next job stops instead."""
        config, task, setup = self.config, self.task, self.setup
        start_step = int(self.state.step)
        self.writer = metrics_lib.MetricWriter(self.workdir, config.total_steps, start_step, quiet=self.quiet)
        schedule = state_lib.learning_rate_schedule(config.optimizer, config.total_steps)  # for logging
        precision = throughput.precision_of(config.model.get("dtype", "float32"))
        measured = throughput.matmul_peak_flops(dtype=jnp.bfloat16 if precision == "bf16" else jnp.float32)
        peak = throughput.device_peak(precision, measured)
        self.mfu_basis = peak.source
        logging.info("MFU against %.1f TFLOP/s (%s); mfu_vs_matmul against the measured %.1f TFLOP/s",
                     peak.flops_per_s / 1e12, peak.source, measured * jax.device_count() / 1e12)
        compiled_by_shape: dict[tuple, tuple] = {}  # one compile per batch shape: (step, XLA FLOPs, model FLOPs)
        multihost = jax.process_count() > 1
        preemption = preemption_lib.Preemption(multihost)
        window, pending, consecutive_skips = throughput.Window(), [], 0
        step = start_step
        try:
            while step < config.total_steps:
                prepared = task.prepare_batch(next(self.data_iterator))
                batch = sharding.global_batch(prepared, setup.mesh)
                shape_key = tuple((key, value.shape) for key, value in sorted(batch.items()))
                if shape_key not in compiled_by_shape:
                    compiled = setup.train_step.lower(self.state, batch).compile()
                    compiled_by_shape[shape_key] = (compiled, throughput.compiled_flops(compiled),
                                                    task.step_flops(batch))
                compiled, step_flops, model_flops = compiled_by_shape[shape_key]
                self.state, step_metrics = compiled(self.state, batch)
                step += 1
                pending.append(step_metrics)
                if len(pending) >= STEPS_IN_FLIGHT:
                    jax.block_until_ready(pending[-STEPS_IN_FLIGHT])
                    host_memory.release_excess()  # freed step buffers beyond a bound go back to the OS
                window.tokens += task.tokens(prepared) * jax.process_count()
                window.flops += step_flops
                window.steps += 1
                self.compute_flops += model_flops
                if step % config.log.every_steps == 0 or step == config.total_steps:
                    fetched, pending = jax.device_get(pending), []
                    for item in fetched:
                        consecutive_skips = 0 if item["finite"] else consecutive_skips + 1
                    self.last_window_skipped = not any(item["finite"] for item in fetched)
                    self._log(step, fetched, window.rates(peak.flops_per_s, measured * jax.device_count()),
                              float(schedule(step)))
                    window.reset()
                    if consecutive_skips >= config.optimizer.max_consecutive_skips:
                        raise FloatingPointError(
                            f"{consecutive_skips} consecutive non-finite steps at step {step}: stopping; the last "
                            f"good checkpoint in {self.checkpointer.directory} is intact")
                if step % config.checkpoint.every_steps == 0 and step < config.total_steps:
                    self.save(step)
                if step % config.log.eval_every_steps == 0 and step < config.total_steps:
                    self.evaluate(step)
                if multihost and not preemption.requested and self.checkpointer.manager.reached_preemption(step):
                    preemption.requested = "SIGTERM (preemption sync point, all processes)"
                if preemption.requested:
                    self.save(step, force=True)
                    self.checkpointer.wait()
                    print(f"{preemption.requested}: saved step {step} to {self.checkpointer.directory}; rerun to "
                          f"resume", flush=True)
                    return {"preempted": True, "step": step}
            results = self.finish(step)
            if preemption.requested:  # arrived during the final evaluation or save: the run is whole
                results["stop_requested"] = preemption.requested
            return results
        finally:
            preemption.restore()
            self.writer.close()

    def _log(self, step: int, fetched: list[dict], rates: dict, learning_rate: float) -> None:
        logged = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[-1] if k != "finite"}
        logged.update(**rates, skipped_steps=int(self.state.skipped_steps), learning_rate=learning_rate,
                      resident_gib=host_memory.resident_bytes() / 2**30)
        if self.compute_flops:
            logged["compute_flops"] = self.compute_flops
        self.writer.write(step, logged)
        self.writer.progress(step, {"loss": logged["loss"], "tok/s": logged["tokens_per_s"],
                                    "TFLOP/s": logged["tflops_per_s"], "MFU": logged["mfu"]})

    # --- Checkpoint (final)
    def finish(self, step: int) -> dict:
        """The last evaluation, the final checkpoint with the task's meta, `final_metrics.json`."""
        if self.last_window_skipped:
            raise FloatingPointError(
                f"the last steps up to {step} were all non-finite and skipped, so the run did not train to its end; "
                f"no final checkpoint written; the last good one in {self.checkpointer.directory} is intact")
        results = self.evaluate(step)
        final_ema = gather_params(self.state.model_params(ema=True))
        final_meta = self.task.finalize(final_ema) if jax.process_index() == 0 else {}
        final_meta = sharding.broadcast_json(final_meta)
        self.save(step, force=True, extra=final_meta)
        self.checkpointer.wait()
        results = {**results, **final_meta, "step": step, "param_count": self.setup.param_count}
        if self.mfu_basis:
            results["mfu_basis"] = self.mfu_basis
        if self.init_report:
            results["init_from"] = self.init_report
        if self.compute_flops:
            results["compute_flops"] = self.compute_flops
        return results


def _adopt_sources(config) -> adapters.Base | None:
    """A LoRA run takes its base's model, VAE and precision; a reflow student its teacher's (and its
    weights, by `init_from`). Done first, so validation checks what will run. Returns the LoRA base."""
    sources = []
    if adapters.enabled(config):
        sources.append(("lora", adapters.adopt_base, lambda base: (
            f"rank {config.lora.rank} adapters on {base.path} (step {base.step}, fingerprint {base.fingerprint}, "
            f"{lora.count(base.params):,} frozen parameters)")))
    if config.get("distill") is not None and config.distill.pairs:
        from sora_jax.train import reflow_pairs

        sources.append(("reflow", reflow_pairs.adopt_teacher, lambda teacher: (
            f"student of {teacher['path']} (step {teacher['step']}; pairs sampled with {teacher['steps']} steps at "
            f"guidance {teacher['guidance']})")))
    adopted = {}
    for name, adopt, describe in sources:
        try:
            adopted[name] = adopt(config)
        except (ValueError, OSError) as error:
            raise validate.ConfigError(str(error)) from None
        print(f"{name}: {describe(adopted[name])}", flush=True)
    return adopted.get("lora")


def train(config, workdir: str | pathlib.Path, quiet: bool = False) -> dict:
    base = _adopt_sources(config)
    validate.check(config, jax.device_count())  # before anything is built or compiled
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = "train.log" if jax.process_index() == 0 else f"train.process_{jax.process_index()}.log"
    with run_log.to_workdir(workdir, name):  # logs and background threads' tracebacks: a file, not the terminal
        return _train(config, workdir, quiet, base)


def _train(config, workdir: pathlib.Path, quiet: bool, base=None) -> dict:
    # --- Checkpoint: opened first, so a workdir of another model is refused before any work
    checkpointer, start_step = open_checkpoints(config, workdir)
    finished = workdir / "final_metrics.json"
    if start_step is not None and start_step >= config.total_steps and finished.exists():  # finished: nothing to do
        checkpointer.close()
        print(f"{workdir}: already trained to step {start_step} (total_steps={config.total_steps}); its results: "
              f"{finished}", flush=True)
        return json.loads(finished.read_text())
    try:
        task: Task = make_task(config, workdir, base)
        if jax.process_index() == 0:
            (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))
        # --- Mesh, Model, Shard, Update
        setup = build(config, task)
        logging.info("mesh %s over %d devices, %d processes; %d parameters", dict(setup.mesh.shape),
                     jax.device_count(), jax.process_count(), setup.param_count)
        # --- Input
        data_iterator, data_report = open_input(task, setup, config, workdir)
        run = TrainingRun(config, workdir, task, setup, checkpointer, data_iterator, quiet)
        run.restore_or_init(start_step)
        # --- Evals
        run.open_evals()
        # --- Loop (and the final checkpoint)
        results = run.loop()
        if results.get("preempted"):
            return results
        if data_report:
            results.update(data_usable=data_report["usable"], data_skipped=data_report["skipped"])
        if jax.process_index() == 0:
            recorded = {key: value for key, value in results.items() if key != "stop_requested"}
            (workdir / "final_metrics.json").write_text(json.dumps(recorded, indent=1))
        return results
    finally:
        checkpointer.close()
