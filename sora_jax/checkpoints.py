"""The checkpoint format, written by the trainer and read by everything else: Orbax checkpoints,
one composite per step holding the train state and a JSON `meta` item (config, data-iterator
state, and anything a task adds, such as the VAE's latent statistics), and exports (EMA
parameters + meta, no optimizer state) that read like a workdir.

A run restarted on the same workdir resumes from its latest *complete* checkpoint (Orbax writes
into a temporary directory and renames it when done, so a save killed midway is never listed).
Restoring takes abstract targets with shardings, so a checkpoint lands on any mesh.
"""

from __future__ import annotations

import contextlib
import json
import pathlib

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp

from sora_jax import checkpoint_integrity as integrity

# Train-state fields a checkpoint leaves out: `frozen` (a LoRA run's base DiT) is the base run's,
# named by the run's config (`lora.base`, `lora.base_fingerprint`) and loaded from there.
NOT_SAVED = ("frozen",)


def _saved_part(state_dict: dict) -> dict:
    return {key: value for key, value in state_dict.items() if key not in NOT_SAVED}


class Checkpointer:
    """Orbax's manager with integrity around it: leftovers of unfinished saves cleared when it
    opens, a manifest written for every finalized step, free space checked before each save,
    and `resume_step` that verifies the latest step and falls back past damaged ones."""

    def __init__(self, workdir: str | pathlib.Path, keep: int = 3, async_save: bool = True):
        self.workdir = pathlib.Path(workdir).absolute()
        self.directory = self.workdir / "checkpoints"
        if jax.process_index() == 0:
            cleared = integrity.clear_leftovers(self.directory)
            if cleared:
                print(f"checkpoints: removed {len(cleared)} unfinished save(s) in {self.directory}: "
                      f"{', '.join(cleared)}", flush=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def step_directory(self, step: int) -> pathlib.Path:
        return self.directory / str(int(step))

    def write_manifests(self) -> None:
        """A manifest for every finished step that lacks one (process 0; call with no save running)."""
        if jax.process_index() != 0:
            return
        for step in self.manager.all_steps():
            directory = self.step_directory(step)
            if directory.exists() and not integrity.has_manifest(directory):
                integrity.write_manifest(directory)

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        """Saves `state` and `meta` at `step` (asynchronously). Raises DiskFull first when the
        checkpoint (the state's size, or the last checkpoint's if larger) will not fit."""
        self.manager.wait_until_finished()  # Orbax would wait here anyway: the last save is final now
        self.write_manifests()
        last = self.latest_step()
        last_bytes = integrity.checkpoint_bytes(self.step_directory(last)) if last is not None else 0
        saved = _saved_part(flax.serialization.to_state_dict(state))
        state_bytes = sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(saved))
        integrity.check_free_space(self.directory, last, max(last_bytes, state_bytes))
        args = ocp.args.Composite(state=ocp.args.StandardSave(saved), meta=ocp.args.JsonSave(meta))
        return self.manager.save(int(step), args=args, force=force)

    def resume_step(self, refuse_damaged: bool = False) -> int | None:
        """The newest step to resume from: the latest is verified against its manifest; a damaged
        one is named with why, moved to `damaged_checkpoints/`, and the next newest is tried
        (`refuse_damaged`: CheckpointDamaged instead)."""
        while (step := self.latest_step()) is not None:
            directory = self.step_directory(step)
            verdict = integrity.verify(directory)
            if verdict.status == "unverified":
                print(f"checkpoints: step {step} has no manifest (saved before manifests, or killed before "
                      f"it was written): resuming from it unverified", flush=True)
            if verdict.status != "damaged":
                return step
            message = f"checkpoint {step} in {directory} is damaged ({verdict.describe()})"
            if refuse_damaged:
                raise integrity.CheckpointDamaged(f"{message}: stopping (checkpoint.on_damage=refuse); move it "
                                                  f"aside to resume from the one before")
            if jax.process_index() == 0:
                moved = integrity.quarantine(directory, self.workdir)
                print(f"{message}: moved to {moved}; resuming from the newest intact checkpoint", flush=True)
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices(f"checkpoints:quarantine:{step}")
            self.manager.reload()
        return None

    def restore(self, step: int, target_state, target_shardings) -> tuple[object, dict]:
        """Restores `step` into the structure of `target_state`, placed by `target_shardings`."""
        state_dict = flax.serialization.to_state_dict(target_state)
        shardings = _saved_part(flax.serialization.to_state_dict(target_shardings))
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                                _saved_part(state_dict), shardings)
        restored = self.manager.restore(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        state = {**restored["state"], **{k: v for k, v in state_dict.items() if k in NOT_SAVED}}
        return flax.serialization.from_state_dict(target_state, state), dict(restored["meta"])

    def read_meta(self, step: int) -> dict:
        """The JSON meta of `step` alone (config, data state), without touching the arrays."""
        restored = self.manager.restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

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
        self.write_manifests()

    def close(self) -> None:
        self.wait()
        self.manager.close()


EXPORT_META = "export.json"
# Model fields that change how a step computes, never the parameters: free to differ on resume.
COMPUTE_ONLY = ("variant", "dtype", "remat", "attention_implementation")
# Model fields added after runs were saved without them, at the value those runs had in effect.
ADDED_MODEL_FIELDS = {"parametrization": "standard", "mup_base_width": 64, "num_actions": 0, "output_conv": 0}


def dotted_fields(config, prefix: str = "") -> dict:
    """{"model.width": 96, ...}: every leaf of a config (or of its JSON, nested dicts) by dotted name."""
    out = {}
    for key, value in config.items():
        if hasattr(value, "items"):
            out.update(dotted_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_fields(config_json: dict) -> dict:
    """`dotted_fields` of a saved or current config's JSON where a T2V config counts each model
    field added since it was written (`ADDED_MODEL_FIELDS`) at the value it had in effect."""
    added = {f"model.{key}": value for key, value in ADDED_MODEL_FIELDS.items()}
    return {**added, **dotted_fields(config_json)} if config_json.get("task") == "t2v" else dotted_fields(config_json)


def config_mismatch(saved: dict, config) -> list[str]:
    """`field: checkpoint A, config B` for each task / model / VAE field where a checkpoint's
    saved config and `config` disagree in a way that changes parameters or the latent space."""
    current = json.loads(config.to_json_best_effort())
    differences = []
    for key in ("task", "vae_workdir"):
        if key in current and saved.get(key) != current[key]:
            differences.append(f"{key}: checkpoint {saved.get(key)!r}, config {current[key]!r}")
    old, new = ({key: value for key, value in config_fields(fields).items() if key.startswith("model.")}
                for fields in (saved, current))
    for key in sorted(set(old) | set(new)):
        if key.removeprefix("model.") not in COMPUTE_ONLY and old.get(key) != new.get(key):
            differences.append(f"{key}: checkpoint {old.get(key)!r}, config {new.get(key)!r}")
    old, new = saved.get("lora", {}), current.get("lora", {})
    for key in ("rank", "targets", "base_fingerprint"):  # what the adapters' shapes and base depend on
        if (old.get(key) or new.get(key)) and old.get(key) != new.get(key):
            differences.append(f"lora.{key}: checkpoint {old.get(key)!r}, config {new.get(key)!r}")
    return differences


def partial_load(target: dict, source: dict) -> tuple[dict, dict]:
    """Parameters for fine-tuning: each array of `target` (a nested dict) taken from `source` where
    the same path exists with the same shape, else kept. Returns (params, report) where the report
    counts and names what was loaded, kept (fresh) and ignored (in source only)."""
    flat_target, flat_source = dotted_fields(target), dotted_fields(source)
    loaded, fresh = [], []
    merged = {}
    for path, value in flat_target.items():
        candidate = flat_source.get(path)
        if candidate is not None and tuple(np.shape(candidate)) == tuple(np.shape(value)):
            merged[path] = np.asarray(candidate, value.dtype)
            loaded.append(path)
        else:
            merged[path] = value
            fresh.append(path)
    ignored = sorted(set(flat_source) - set(flat_target))
    nested: dict = {}
    for path, value in merged.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested, {"loaded": len(loaded), "fresh": fresh, "ignored": ignored}


def export(workdir: str | pathlib.Path, out: str | pathlib.Path, ema: bool = True) -> pathlib.Path:
    """Writes a finished run's (EMA) parameters and meta, without optimizer state, to `out`:
    small enough to commit or ship, and read by `load_params` like a workdir."""
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        step = checkpointer.latest_step()
        params, meta = checkpointer.restore_params(step, ema=ema)
    finally:
        checkpointer.close()
    return write_export(params, meta, out, step, ema)


def write_export(params: dict, meta: dict, out: str | pathlib.Path, step: int, ema: bool = True) -> pathlib.Path:
    """Parameters and meta (less the data-iterator state) as an export directory at `out`."""
    out = pathlib.Path(out).absolute()
    if out.exists():
        raise FileExistsError(f"{out} exists: remove it or pick another --out")
    saver = ocp.StandardCheckpointer()
    saver.save(out / "params", params)
    saver.wait_until_finished()
    meta = {key: value for key, value in meta.items() if key != "data_state"}
    (out / EXPORT_META).write_text(json.dumps({**meta, "step": int(step), "ema": ema}, indent=1))
    integrity.write_manifest(out)
    return out


def verify_run(workdir: str | pathlib.Path) -> dict[str, integrity.Verdict]:
    """{name: verdict} for every checkpoint of a workdir, or for an export (`sora-jax verify`)."""
    path = pathlib.Path(workdir).absolute()
    if (path / EXPORT_META).exists():
        return {"export": integrity.verify(path)}
    checkpoints = path / "checkpoints"
    if not checkpoints.is_dir():
        raise FileNotFoundError(f"{workdir} holds no checkpoints/ and is not an export")
    steps = sorted((p for p in checkpoints.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return {f"step {p.name}": integrity.verify(p) for p in steps}


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


@contextlib.contextmanager
def _latest_checkpoint(workdir: str | pathlib.Path):
    """(checkpointer, its latest complete step) of a workdir, closed afterwards; raises
    FileNotFoundError when there is none."""
    checkpointer = Checkpointer(pathlib.Path(workdir).absolute(), async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise FileNotFoundError(f"{workdir} holds no complete checkpoint")
        yield checkpointer, step
    finally:
        checkpointer.close()


def read_run_meta(workdir: str | pathlib.Path) -> dict:
    """The meta `load_params` would return (config, task, latent statistics, ...), without reading
    any array: an export's JSON, or a workdir's latest complete checkpoint's meta item."""
    path = pathlib.Path(workdir).absolute()
    if (path / EXPORT_META).exists():
        return json.loads((path / EXPORT_META).read_text())
    if not (path / "checkpoints").exists():
        raise FileNotFoundError(f"{workdir} holds no checkpoint or export")
    with _latest_checkpoint(workdir) as (checkpointer, step):
        return checkpointer.read_meta(step)


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
    with _latest_checkpoint(workdir) as (checkpointer, step):
        params, meta = checkpointer.restore_params(step, ema=True)
    return params, meta, step
