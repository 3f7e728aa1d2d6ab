"""The one trainer, in big_vision's sections: Mesh, Input, Model, Shard, Update, Checkpoint,
Evals, Loop. A task (`vae_task.VaeTask`, ...) supplies the model, loss and evaluations.

    sora-jax train --config=configs/vae.py:tiny --workdir=runs/vae_tiny

A run restarted on the same workdir resumes from its latest complete checkpoint, data order
included. SIGTERM / SIGINT write a checkpoint and exit cleanly.
"""

from __future__ import annotations

import json
import pathlib
import signal
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from absl import logging

from sora_jax.data import pipeline
from sora_jax.train import checkpoint as checkpoint_lib
from sora_jax.train import metrics as metrics_lib
from sora_jax.train import sharding, state as state_lib, throughput


def make_task(config):
    if config.task == "vae":
        from sora_jax.train.vae_task import VaeTask

        return VaeTask(config)
    raise ValueError(f"config.task={config.task!r} has no trainer task yet; valid: vae")


class _Preemption:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = None
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum, frame):
        del frame
        self.requested = signal.Signals(signum).name

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _ema_decay(config, step: jax.Array) -> jax.Array:
    """EMA with warmup: averages over the steps taken so far early on, `ema_decay` later."""
    step = step.astype(jnp.float32)
    return jnp.minimum(config.optimizer.ema_decay, (1.0 + step) / (10.0 + step))


def make_train_step(task, optimizer, config):
    def train_step(state: state_lib.TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        (loss, aux), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, rng)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state_lib.ema_update(state.ema_params, params, _ema_decay(config, state.step))

        def keep_if_finite(new, old):  # a non-finite step changes nothing but the counters
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep_if_finite(params, state.params),
            opt_state=keep_if_finite(opt_state, state.opt_state),
            ema_params=keep_if_finite(ema, state.ema_params),
            skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
        )
        return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite, **aux}

    return train_step


def train(config, workdir: str | pathlib.Path, quiet: bool = False) -> dict:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    task = make_task(config)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))

    # --- Mesh
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.logical_rules(config)
    shards = sharding.batch_shards(mesh)
    logging.info("mesh %s over %d devices, %d processes", dict(mesh.shape), jax.device_count(), jax.process_count())

    # --- Input
    dataset, plan, _ = pipeline.make_dataset(config.data, seed=config.seed, shard_multiple=shards)
    data_iterator = iter(dataset)

    # --- Model
    optimizer = state_lib.make_optimizer(config.optimizer, config.total_steps)
    schedule = state_lib.learning_rate_schedule(config.optimizer, config.total_steps)  # for logging
    example = task.example_batch(shards)
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    abstract_params = jax.eval_shape(task.init, init_rng, example)

    # --- Shard
    param_shardings = sharding.tree_shardings(abstract_params, mesh, rules)
    init_params = jax.jit(lambda rng: nn.unbox(task.init(rng, example)), out_shardings=param_shardings)
    params = init_params(init_rng)
    create = jax.jit(lambda p, r: state_lib.TrainState.create(p, optimizer, r))
    state = create(params, state_rng)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    batch_sharding = sharding.batch_sharding(mesh)
    param_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))

    # --- Update
    train_step = jax.jit(make_train_step(task, optimizer, config), in_shardings=(state_shardings, batch_sharding),
                         out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=0)

    # --- Checkpoint
    checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.checkpoint.keep,
                                               async_save=config.checkpoint.async_save)
    start_step = checkpointer.latest_step()
    if start_step is not None:
        state, meta = checkpointer.restore(start_step, state, state_shardings)
        data_iterator.set_state(meta["data_state"])
        logging.info("resumed from step %d", start_step)
    start_step = int(state.step)

    def save(step: int, force: bool = False, extra: dict | None = None):
        meta = {"config": json.loads(config.to_json_best_effort()), "data_state": data_iterator.get_state(),
                "task": task.name, "param_count": param_count, **(extra or {})}
        checkpointer.save(step, state, meta, force=force)

    # --- Evals
    eval_clips = task.validation_clips(config.eval.num_clips) if jax.process_index() == 0 else []
    sample_clips = eval_clips[: config.eval.num_samples]

    def evaluate(step: int) -> dict:
        if jax.process_index() != 0:
            return {}
        ema = jax.device_get(state.ema_params)
        results = task.evaluate(ema, eval_clips)
        task.write_samples(ema, sample_clips, workdir / "samples" / f"step_{step:06d}", writer, step)
        writer.write(step, results)
        return results

    # --- Loop
    writer = metrics_lib.MetricWriter(workdir, config.total_steps, start_step, quiet=quiet)
    peak = throughput.matmul_peak_flops() * jax.device_count()
    compiled_by_shape: dict[tuple, tuple] = {}  # one compile per batch shape, with its FLOPs
    preemption = _Preemption()
    results: dict = {}
    pending: list = []
    window_start, window_tokens, window_flops, window_steps = time.perf_counter(), 0, 0.0, 0
    consecutive_skips = 0
    step = start_step
    try:
        while step < config.total_steps:
            local = next(data_iterator)
            prepared = task.prepare_batch(local)
            batch = sharding.global_batch(prepared, mesh)
            shape_key = tuple(batch["video"].shape)
            if shape_key not in compiled_by_shape:
                compiled = train_step.lower(state, batch).compile()
                compiled_by_shape[shape_key] = (compiled, throughput.compiled_flops(compiled))
            compiled, step_flops = compiled_by_shape[shape_key]
            state, step_metrics = compiled(state, batch)
            step += 1
            pending.append(step_metrics)
            window_tokens += task.tokens(prepared) * jax.process_count()
            window_flops += step_flops
            window_steps += 1
            if step % config.log.every_steps == 0 or step == config.total_steps:
                fetched = jax.device_get(pending)
                pending = []
                for item in fetched:
                    consecutive_skips = 0 if item["finite"] else consecutive_skips + 1
                elapsed = time.perf_counter() - window_start
                logged = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[-1] if k != "finite"}
                logged.update(steps_per_s=window_steps / elapsed, tokens_per_s=window_tokens / elapsed,
                              tflops_per_s=window_flops / elapsed / 1e12, mfu=window_flops / elapsed / peak,
                              skipped_steps=int(state.skipped_steps), learning_rate=float(schedule(step)))
                writer.write(step, logged)
                writer.progress(step, {"loss": logged["loss"], "tok/s": logged["tokens_per_s"],
                                       "TFLOP/s": logged["tflops_per_s"], "MFU": logged["mfu"]})
                window_start, window_tokens, window_flops, window_steps = time.perf_counter(), 0, 0.0, 0
                if consecutive_skips >= config.optimizer.max_consecutive_skips:
                    raise FloatingPointError(
                        f"{consecutive_skips} consecutive non-finite steps at step {step}: stopping; the last "
                        f"good checkpoint in {checkpointer.directory} is intact")
            if step % config.checkpoint.every_steps == 0 and step < config.total_steps:
                save(step)
            if step % config.log.eval_every_steps == 0 and step < config.total_steps:
                results = evaluate(step)
            if preemption.requested:
                save(step, force=True)
                checkpointer.wait()
                print(f"{preemption.requested}: saved step {step} to {checkpointer.directory}; rerun to resume")
                return {"preempted": True, "step": step}
        results = evaluate(step)
        final_meta = task.finalize(jax.device_get(state.ema_params)) if jax.process_index() == 0 else {}
        final_meta = multihost_utils.broadcast_one_to_all(final_meta) if jax.process_count() > 1 else final_meta
        save(step, force=True, extra=final_meta)
        checkpointer.wait()
        results = {**results, **final_meta, "step": step, "param_count": param_count}
        if jax.process_index() == 0:
            (workdir / "final_metrics.json").write_text(json.dumps(results, indent=1))
        return results
    finally:
        preemption.restore()
        checkpointer.close()
        writer.close()
