"""Runs one T2V training step in a fresh process (device count and multi-process setup are fixed
when JAX starts). Prints one JSON line. Used by tests/test_train_t2v.py.

    python tests/t2v_step_worker.py MODE VAE_WORKDIR [WORKDIR] [PROCESS_ID PORT]

MODE: sharded (1 device vs a data2/fsdp2/tensor2 mesh), restore_mesh (save on data 8, restore
onto data2/fsdp2/tensor2), single (one device), multiprocess (2 processes, jax.distributed),
context (1 device vs data2 x context4, full attention over a sequence-sharded mesh), train (2
processes run the micro T2V trainer: `train VAE_WORKDIR WORKDIR PROCESS_ID PORT DATA_DIR`), topology
(the micro trainer in 1 or 2 processes to a step, resumable: `topology VAE_WORKDIR WORKDIR PROCESS_ID
PORT DATA_DIR PROCESSES TOTAL_STEPS`).
"""

import json
import sys

import jax
import numpy as np


def config_for(vae_workdir, mesh=None):
    from sora_jax.configs import t2v

    config = t2v.get_config("micro")
    config.vae_workdir = vae_workdir
    if mesh:
        config.mesh.update(mesh)
    return config


def batch_for(task, process_index=0, process_count=1):
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(8, 3, 4, 6, task.vae.latent_channels)).astype(np.float32)
    captions = [f"a {c} circle moves right" for c in ("red", "green", "blue", "yellow", "magenta", "cyan", "red",
                                                      "blue")]
    batch = {"latent": latent, **task.pipeline.encode_prompts(captions)}
    return {k: np.array_split(v, process_count)[process_index] for k, v in batch.items()}


def step(config, task, mesh, local_batch):
    from sora_jax.train import sharding, trainer

    setup = trainer.build(config, task, mesh)
    state, metrics = setup.train_step(setup.state, sharding.global_batch(local_batch, setup.mesh))
    return setup, state, metrics


def main():
    mode, vae_workdir = sys.argv[1], sys.argv[2]
    processes = int(sys.argv[7]) if mode == "topology" else 2
    if mode in ("multiprocess", "train") or (mode == "topology" and processes > 1):
        process_id, port = int(sys.argv[4]), sys.argv[5]
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=processes,
                                   process_id=process_id)
    from sora_jax import checkpoints
    from sora_jax.train import sharding, t2v_task, trainer

    config = config_for(vae_workdir)
    if mode == "train":
        config.data.data_dir = sys.argv[6]
        config.data.cache_limit, config.data.batch_size, config.data.max_batch_size = 48, 4, 8
        config.total_steps, config.log.every_steps, config.checkpoint.every_steps = 100_000, 1, 100_000
        config.checkpoint.async_save = False
        print(json.dumps(trainer.train(config, sys.argv[3], quiet=True)), flush=True)
        return
    if mode == "topology":  # the micro trainer to TOTAL_STEPS on 4 devices in all, in PROCESSES processes
        config.data.data_dir = sys.argv[6]
        config.data.cache_limit, config.data.batch_size, config.data.max_batch_size = 48, 4, 8
        config.total_steps, config.log.every_steps, config.checkpoint.every_steps = int(sys.argv[8]), 1, 2
        config.optimizer.schedule, config.optimizer.warmup_steps = "constant", 1  # steps not tied to total_steps
        config.eval.num_clips, config.eval.num_samples = 2, 0
        config.checkpoint.async_save = False
        results = trainer.train(config, sys.argv[3], quiet=True)
        print(json.dumps({"step": results["step"], "processes": jax.process_count(), "devices": jax.device_count()}),
              flush=True)
        return
    task = t2v_task.T2VTask(config, sys.argv[3] if len(sys.argv) > 3 else "/tmp/unused")
    if mode in ("single", "multiprocess"):
        devices = jax.devices()[:1] if mode == "single" else jax.devices()
        mesh = sharding.make_mesh(config.mesh, devices)
        _, state, metrics = step(config, task, mesh, batch_for(task, jax.process_index(), jax.process_count()))
        params = trainer.gather_params(state.params)
        print(json.dumps({"loss": float(metrics["loss"]), "devices": jax.device_count(),
                          "processes": jax.process_count(),
                          "param_sum": float(sum(np.abs(p).sum() for p in jax.tree.leaves(params)))}))
    elif mode == "sharded":
        mesh_1 = sharding.make_mesh(config.mesh, jax.devices()[:1])
        split = config_for(vae_workdir, dict(data=2, fsdp=2, tensor=2, context=1))
        mesh_8 = sharding.make_mesh(split.mesh)
        _, one, metrics_one = step(config, task, mesh_1, batch_for(task))
        _, eight, metrics_eight = step(split, task, mesh_8, batch_for(task))
        qkv = eight.params["block_0"]["attention"]["qkv"]["kernel"]
        differences = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), one.params,
                                   eight.params)
        print(json.dumps({"loss_1": float(metrics_one["loss"]), "loss_8": float(metrics_eight["loss"]),
                          "max_param_difference": max(jax.tree.leaves(differences)),
                          "qkv_spec": [str(a) for a in qkv.sharding.spec]}))
    elif mode == "context":
        rng = np.random.default_rng(1)
        batch = batch_for(task)
        batch["latent"] = rng.normal(size=(8, 3, 4, 8, task.vae.latent_channels)).astype(np.float32)  # 24 tokens
        results = {}
        for name, mesh_axes, implementation in (("one", None, "xla"), ("context", dict(data=2, context=4), "xla"),
                                                ("context_chunked", dict(data=2, context=4), "chunked"),
                                                ("context_flash", dict(data=2, context=4), "flash")):
            run = config_for(vae_workdir, mesh_axes)
            run.model.attention_implementation = implementation
            devices = jax.devices()[:1] if mesh_axes is None else None
            mesh = sharding.make_mesh(run.mesh, devices) if devices else sharding.make_mesh(run.mesh)
            setup, state, metrics = step(run, task, mesh, batch)
            hlo = setup.train_step.lower(setup.state, sharding.global_batch(batch, setup.mesh)).as_text()
            results[name] = {"loss": float(metrics["loss"]), "all_gather": "all-gather" in hlo or "all_gather" in hlo,
                             "params": jax.device_get(state.params)}
        difference = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                                      results["one"]["params"], results["context"]["params"])))
        chunked, flash = (max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                                           results["one"]["params"], results[name]["params"])))
                          for name in ("context_chunked", "context_flash"))
        print(json.dumps({"loss_1": results["one"]["loss"], "loss_context": results["context"]["loss"],
                          "loss_context_chunked": results["context_chunked"]["loss"],
                          "loss_context_flash": results["context_flash"]["loss"],
                          "max_param_difference": difference, "max_param_difference_chunked": chunked,
                          "max_param_difference_flash": flash,
                          "all_gather": results["context"]["all_gather"]}))
    elif mode == "restore_mesh":
        workdir = sys.argv[3]
        data_8 = config_for(vae_workdir, dict(data=8, fsdp=1, tensor=1, context=1))
        setup, state, _ = step(data_8, task, sharding.make_mesh(data_8.mesh), batch_for(task))
        saver = checkpoints.Checkpointer(workdir, async_save=False)
        saver.save(1, state, {"task": "t2v"}, force=True)
        saver.close()
        split = config_for(vae_workdir, dict(data=2, fsdp=2, tensor=2, context=1))
        target = trainer.build(split, task)
        restored, meta = checkpoints.Checkpointer(workdir, async_save=False).restore(1, target.state,
                                                                                    target.state_shardings)
        same = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
                                            state.params, restored.params))
        qkv = restored.params["block_0"]["attention"]["qkv"]["kernel"]
        print(json.dumps({"all_equal": all(same), "step": int(restored.step), "task": meta["task"],
                          "qkv_spec": [str(a) for a in qkv.sharding.spec]}))


if __name__ == "__main__":
    main()
