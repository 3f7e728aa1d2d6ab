"""Orbax checkpoints: one composite per step holding the train state and a JSON `meta` item
(config, data-iterator state, and anything a task adds, such as the VAE's latent statistics).

A run restarted on the same workdir resumes from its latest *complete* checkpoint (Orbax writes
into a temporary directory and renames it when done, so a save killed midway is never listed).
Restoring takes abstract targets with shardings, so a checkpoint lands on any mesh.
"""

from __future__ import annotations

import json
import pathlib

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, workdir: str | pathlib.Path, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        args = ocp.args.Composite(state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
                                  meta=ocp.args.JsonSave(meta))
        return self.manager.save(int(step), args=args, force=force)

    def restore(self, step: int, target_state, target_shardings) -> tuple[object, dict]:
        """Restores `step` into the structure of `target_state`, placed by `target_shardings`."""
        state_dict = flax.serialization.to_state_dict(target_state)
        shardings = flax.serialization.to_state_dict(target_shardings)
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), state_dict, shardings)
        restored = self.manager.restore(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return flax.serialization.from_state_dict(target_state, restored["state"]), dict(restored["meta"])

    def restore_params(self, step: int | None = None, ema: bool = True) -> tuple[dict, dict]:
        """(params, meta) of a finished run, without knowing its shapes: replicated on this host."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        metadata = self.manager.item_metadata(step)["state"]
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), metadata)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        return restored["state"]["ema_params" if ema else "params"], dict(restored["meta"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


EXPORT_META = "export.json"


def export(workdir: str | pathlib.Path, out: str | pathlib.Path, ema: bool = True) -> pathlib.Path:
    """Writes a finished run's (EMA) parameters and meta, without optimizer state, to `out`:
    small enough to commit or ship, and read by `load_params` like a workdir."""
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        step = checkpointer.latest_step()
        params, meta = checkpointer.restore_params(step, ema=ema)
    finally:
        checkpointer.close()
    out = pathlib.Path(out).absolute()
    if out.exists():
        raise FileExistsError(f"{out} exists: remove it or pick another --out")
    saver = ocp.StandardCheckpointer()
    saver.save(out / "params", params)
    saver.wait_until_finished()
    meta = {key: value for key, value in meta.items() if key != "data_state"}
    (out / EXPORT_META).write_text(json.dumps({**meta, "step": int(step), "ema": ema}, indent=1))
    return out


def run_step(workdir: str | pathlib.Path) -> int | None:
    """The step `load_params` would read: an export's, or a workdir's latest complete one."""
    path = pathlib.Path(workdir).absolute()
    if (path / EXPORT_META).exists():
        return int(json.loads((path / EXPORT_META).read_text())["step"])
    if not (path / "checkpoints").exists():
        return None
    checkpointer = Checkpointer(path, async_save=False)
    try:
        return checkpointer.latest_step()
    finally:
        checkpointer.close()


def load_params(workdir: str | pathlib.Path) -> tuple[dict, dict, int]:
    """(params, meta, step) from a training workdir (EMA parameters of its latest checkpoint) or
    from a directory written by `export`."""
    path = pathlib.Path(workdir).absolute()
    if (path / EXPORT_META).exists():
        meta = json.loads((path / EXPORT_META).read_text())
        reader = ocp.StandardCheckpointer()
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                              reader.metadata(path / "params").item_metadata.tree)
        return reader.restore(path / "params", target), meta, int(meta["step"])
    if not path.exists():
        raise FileNotFoundError(f"{workdir} does not exist")
    checkpointer = Checkpointer(path, async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"{workdir} holds no complete checkpoint")
        params, meta = checkpointer.restore_params(step, ema=True)
    finally:
        checkpointer.close()
    return params, meta, step
