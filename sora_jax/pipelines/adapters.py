"""A LoRA run and its base: the finished text-to-video run whose frozen DiT the adapters sit on.

    sora-jax train --config=sora_jax/configs/t2v.py:lora --config.lora.base=runs/ladder/32x \
        --config.data.dataset=folder:my_clips --workdir=runs/my_lora
    sora-jax sample --workdir=runs/ladder/32x --adapter=runs/my_lora --prompt="a green triangle"
    sora-jax export --workdir=runs/my_lora --merge --out=exports/my_model

A LoRA run takes its DiT's architecture and VAE from its base (`adopt_base`, before the config is
checked) and records the base's *fingerprint* — a hash of the base's EMA parameters — in its
config, so every checkpoint names the exact weights it adapts. Its checkpoints hold only the
adapters (and their optimizer state); whatever brings them back together with a base (resuming,
sampling with `--adapter`, `export --merge`) recomputes the base's fingerprint first and refuses
a base that differs, saying which weights were expected.
"""

from __future__ import annotations

import dataclasses
import pathlib

import ml_collections

from sora_jax import checkpoints
from sora_jax.models import lora


class BaseMismatch(ValueError):
    """An adapter brought to other base weights than it was trained on."""


@dataclasses.dataclass
class Base:
    path: str
    params: dict  # the base's EMA parameters (host numpy)
    meta: dict
    step: int
    fingerprint: str


def enabled(config) -> bool:
    return bool(config.get("lora") is not None and config.lora.get("rank", 0))


def read_base(path: str) -> Base:
    """The base run (a workdir or an export) of a LoRA run, with its fingerprint."""
    if not path:
        raise ValueError("lora.rank > 0 needs lora.base: the workdir (or export) of the finished text-to-video run "
                         "whose DiT the adapters adapt")
    if not pathlib.Path(path).exists():
        raise FileNotFoundError(f"lora.base={path!r} does not exist: give a finished text-to-video workdir or export")
    params, meta, step = checkpoints.load_params(path)
    if meta.get("task") != "t2v":
        raise ValueError(f"lora.base={path!r} holds a {meta.get('task')!r} run, not a text-to-video DiT")
    if meta.get("config", {}).get("lora", {}).get("rank", 0):
        raise ValueError(f"lora.base={path!r} is itself a LoRA run: merge it first (`sora-jax export --merge`) and "
                         "use the export as the base")
    return Base(str(path), params, meta, step, lora.fingerprint(params))


def adopt_model(config, saved_model: dict) -> None:
    """A derived run's DiT (LoRA on a base, a reflow student of a teacher) is its source's: every
    architecture field from `saved_model`, and the compute-only ones (dtype, attention kernel,
    remat) too where the config leaves them "" — the `lora` and `reflow` variants do, so a LoRA
    of a mixed-precision ladder rung trains and samples in mixed precision unless told otherwise."""
    for key, value in saved_model.items():
        if key not in config.model or (key in checkpoints.COMPUTE_ONLY and config.model[key] != ""):
            continue
        config.model[key] = tuple(value) if isinstance(value, list) else value


def adopt_base(config) -> Base:
    """Sets a LoRA run's model (`adopt_model`), VAE and `lora.base_fingerprint` from its base;
    returns the base. A fingerprint already in the config (a resumed run, or one pinned by hand)
    must match the base's."""
    base = read_base(config.lora.base)
    saved = base.meta["config"]
    adopt_model(config, saved["model"])
    config.vae_workdir = saved["vae_workdir"]
    check_fingerprint(config, base, "lora.base")
    config.lora.base_fingerprint = base.fingerprint
    return base


def check_fingerprint(config, base: Base, what: str) -> None:
    expected = config.lora.get("base_fingerprint", "")
    if expected and expected != base.fingerprint:
        raise BaseMismatch(
            f"{what}={base.path!r} (step {base.step}) holds other weights (fingerprint {base.fingerprint}) than the "
            f"base these adapters were trained on (fingerprint {expected}, lora.base={config.lora.base!r}): give that "
            f"base, or train new adapters on this one")


def load_adapted(base: str | Base, adapter_path: str) -> tuple[ml_collections.ConfigDict, dict, dict, int]:
    """(config, base + adapter parameters, the adapter run's meta, its step): a LoRA run applied
    to `base` (a path, or a `Base` already read: evaluating several adapters on one base reads it
    once), refused when that base is not the one it was trained on."""
    adapters, meta, step = checkpoints.load_params(adapter_path)
    config = ml_collections.ConfigDict(meta.get("config", {}))
    if meta.get("task") != "t2v" or not enabled(config):
        raise ValueError(f"--adapter={adapter_path!r} is not a LoRA run (its config has no lora.rank > 0)")
    base = base if isinstance(base, Base) else read_base(base)
    check_fingerprint(config, base, "--workdir")
    return config, lora.combine(base.params, adapters), meta, step


def export_merged(adapter_path: str, out: str | pathlib.Path) -> pathlib.Path:
    """A LoRA run's adapters folded into its base's kernels, written as an ordinary export: a plain
    DiT (lora.rank 0) that samples like base + adapters."""
    adapters, meta, step = checkpoints.load_params(adapter_path)
    config = ml_collections.ConfigDict(meta.get("config", {}))
    if meta.get("task") != "t2v" or not enabled(config):
        raise ValueError(f"{adapter_path!r} is not a LoRA run: `--merge` folds a LoRA run's adapters into its base")
    base = read_base(config.lora.base)
    check_fingerprint(config, base, "lora.base")
    spec = lora.LoraSpec.from_config(config.lora)
    merged = lora.merge(lora.combine(base.params, adapters), spec)
    config.lora.rank = 0
    meta = {key: value for key, value in meta.items() if key != "data_state"}
    meta["config"] = config.to_dict()
    meta["merged_from"] = {"adapter": str(adapter_path), "adapter_step": int(step), "base": base.path,
                           "base_step": base.step, "base_fingerprint": base.fingerprint}
    return checkpoints.write_export(merged, meta, out, step, ema=True)
