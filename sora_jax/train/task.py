"""What the trainer asks of a task (`vae_task.VaeTask`, `t2v_task.T2VTask`): the contract as a
`typing.Protocol`, in the order the trainer uses it. A new kind of model is a new task.
"""

from __future__ import annotations

import pathlib
from typing import Any, Protocol

import jax
import numpy as np


class Task(Protocol):
    name: str  # "vae", "t2v": stored in every checkpoint's meta

    # --- Input --------------------------------------------------------------------------------
    def make_dataset(self, shard_multiple: int) -> tuple[Any, Any, Any]:
        """(Grain dataset of host-local batches, bucket plan, data source). Every global batch
        divides by `shard_multiple` (data x fsdp shards x gradient-accumulation steps)."""

    def prepare_batch(self, batch: dict) -> dict[str, np.ndarray]:
        """A host-local batch from the dataset -> the model's inputs (numpy, fixed keys)."""

    def tokens(self, batch: dict) -> int:
        """Tokens of a prepared batch (throughput logging)."""

    def step_flops(self, batch: dict) -> float:
        """Analytic model FLOPs of one training step on a (global) batch; 0.0 when not counted."""

    # --- Model --------------------------------------------------------------------------------
    def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
        """A small batch of the prepared batch's structure, for shape inference and init."""

    def init(self, rng: jax.Array, batch: dict) -> dict:
        """Fresh parameters (logically partitioned) for `batch`'s structure."""

    def partition(self, params: dict) -> tuple[dict, dict]:
        """(trained, frozen) parts of the initialized parameters: frozen ones get no gradient,
        optimizer state or EMA and are not checkpointed (a LoRA run's base); usually (params, {})."""

    # --- Update -------------------------------------------------------------------------------
    def loss(self, params, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
        """(scalar loss, auxiliary scalars to log) under jit; `rng` differs per step."""

    # --- Evals --------------------------------------------------------------------------------
    def validation_clips(self, count: int) -> list[dict]:
        """The held-out examples every evaluation uses (the same ones every time)."""

    def evaluate(self, params, clips: list[dict]) -> dict[str, float]:
        """Validation metrics of (EMA) parameters on `validation_clips`."""

    def write_samples(self, params, clips: list[dict], out_dir: pathlib.Path, writer=None,
                      step: int = 0) -> dict[str, float]:
        """Writes samples (or reconstructions) of `clips` under `out_dir`; returns their scores."""

    # --- Checkpoint ---------------------------------------------------------------------------
    def finalize(self, params) -> dict:
        """JSON-able meta stored with the final checkpoint (e.g. latent statistics)."""
