r"""LoRA against full fine-tuning: memory and step time of the trainer's own compiled step.

    .venv/bin/python benchmarks/bench_lora.py --out=benchmarks/results/cpu/bench_lora.json

Both runs are built by `trainer.build` from `sora_jax/configs/t2v.py` exactly as `sora-jax train`
builds them, on one batch of `--batch` clips of the ladder's 17x32x56 clip (5x8x14 latents) with
MiniLM text: full fine-tuning trains every parameter (AdamW moments and an EMA for each); a LoRA
run (`t2v.py:lora`, rank `--ranks`) trains the adapters only, the base held frozen (no gradient,
moments or EMA). Reported per run: trained parameters; the train state's bytes (parameters,
optimizer state, EMA; frozen base apart); XLA's temporaries for the compiled step; the median
step time over `--repeats` steps, runs interleaved in one process (ratios are what to read on a
shared machine). The LoRA runs' base is a fresh initialization of the same DiT (what it holds
does not change memory or time). Nothing here is a test: numbers depend on the machine.
"""

import json
import pathlib
import statistics
import time

import flax.linen as nn
import jax
import numpy as np
from absl import app, flags

from sora_jax.configs import t2v
from sora_jax.models import lora
from sora_jax.pipelines import adapters
from sora_jax.train import sharding, trainer
from sora_jax.train.t2v_task import T2VTask

FLAGS = flags.FLAGS
flags.DEFINE_integer("width", 192, "DiT width (the cpu ladder's 32x rung: 192).")
flags.DEFINE_integer("depth", 5, "DiT depth (the cpu ladder's 32x rung: 5).")
flags.DEFINE_integer("heads", 6, "Attention heads.")
flags.DEFINE_integer("batch", 8, "Clips per step.")
flags.DEFINE_list("ranks", ["4", "16", "64"], "LoRA ranks to measure.")
flags.DEFINE_string("dtype", "mixed", "model.dtype of every run.")
flags.DEFINE_integer("repeats", 20, "Timed steps per run (after 3 warm-up steps).")
flags.DEFINE_string("out", "", "JSON output (optional).")

LATENT = (5, 8, 14)


def _config(rank: int):
    config = t2v.get_config("lora" if rank else "tiny")
    config.model.width, config.model.depth, config.model.heads = FLAGS.width, FLAGS.depth, FLAGS.heads
    config.model.dtype, config.model.attention_implementation = FLAGS.dtype, "flash"
    config.data.batch_size = FLAGS.batch
    config.lora.rank, config.lora.alpha = rank, float(max(rank, 1))
    return config


def _bytes(tree) -> int:
    return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def build(rank: int, base_params=None):
    config = _config(rank)
    base = None
    if rank:
        base = adapters.Base("(fresh init)", base_params, {}, 0, lora.fingerprint(base_params))
    task = T2VTask(config, "/tmp/bench_lora", base)
    setup = trainer.build(config, task)
    prepared = {"latent": np.random.default_rng(0).normal(size=(FLAGS.batch, *LATENT, 16)).astype(np.float32),
                **task.pipeline.encode_prompts(["a big red ball bounces"] * FLAGS.batch)}
    batch = sharding.global_batch(prepared, setup.mesh)
    compiled = setup.train_step.lower(setup.state, batch).compile()
    memory = compiled.memory_analysis()
    state = setup.state
    trained = {"params": state.params, "opt_state": state.opt_state, "ema_params": state.ema_params}
    facts = {"rank": rank, "trained_parameters": lora.count(state.params), "train_state_bytes": _bytes(trained),
             "optimizer_state_bytes": _bytes(state.opt_state), "frozen_bytes": _bytes(state.frozen),
             "step_temp_bytes": int(memory.temp_size_in_bytes) if memory else None}
    return compiled, state, batch, facts, task


def main(argv):
    del argv
    runs = {}
    compiled, state, batch, facts, task = build(0)
    full_params = jax.device_get(nn.unbox(state.params))
    runs["full"] = [compiled, state, batch, facts]
    for rank in map(int, FLAGS.ranks):
        compiled, state, batch, facts, _ = build(rank, full_params)
        runs[f"lora_r{rank}"] = [compiled, state, batch, facts]
    times = {name: [] for name in runs}
    for repeat in range(FLAGS.repeats + 3):
        for name, run in runs.items():
            compiled, state, batch, _ = run
            start = time.perf_counter()
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
            if repeat >= 3:
                times[name].append(time.perf_counter() - start)
            run[1] = state
    full = runs["full"][3]
    report = {"model": {"width": FLAGS.width, "depth": FLAGS.depth, "heads": FLAGS.heads, "dtype": FLAGS.dtype},
              "batch": FLAGS.batch, "latent": LATENT, "device": str(jax.devices()[0].device_kind),
              "repeats": FLAGS.repeats, "runs": {}}
    print(f"{'run':>10} {'trained':>10} {'state MB':>9} {'temp MB':>8} {'step ms':>8} {'state/full':>10} "
          f"{'temp/full':>9} {'time/full':>9}")
    full_ms = statistics.median(times["full"]) * 1e3
    for name, run in runs.items():
        facts = run[3]
        ms = statistics.median(times[name]) * 1e3
        facts.update(step_ms=ms, state_vs_full=facts["train_state_bytes"] / full["train_state_bytes"],
                     temp_vs_full=(facts["step_temp_bytes"] / full["step_temp_bytes"]
                                   if facts["step_temp_bytes"] and full["step_temp_bytes"] else None),
                     time_vs_full=ms / full_ms)
        report["runs"][name] = facts
        temp = facts["step_temp_bytes"] / 1e6 if facts["step_temp_bytes"] else float("nan")
        print(f"{name:>10} {facts['trained_parameters']:>10,} {facts['train_state_bytes'] / 1e6:>9.2f} {temp:>8.1f} "
              f"{ms:>8.1f} {facts['state_vs_full']:>10.3f} {facts['temp_vs_full'] or float('nan'):>9.2f} "
              f"{facts['time_vs_full']:>9.2f}")
    if FLAGS.out:
        pathlib.Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(FLAGS.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
