"""The device mesh and the shardings of parameters and batches, from the config.

Mesh axes are `data, fsdp, tensor, context`; a size of -1 takes the devices left over.
Parameters carry logical axis names (`nn.with_logical_partitioning`); `config.sharding.rules`
maps them onto mesh axes. Batches are split over `data` and `fsdp` on their leading axis.
"""

from __future__ import annotations

import json
import math

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor", "context")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(mesh_config, device_count: int) -> dict[str, int]:
    """Resolves -1 and checks the product; raises a one-line ValueError naming the fields."""
    sizes = {axis: int(mesh_config[axis]) for axis in MESH_AXES}
    unknown = [axis for axis, size in sizes.items() if size == -1]
    if len(unknown) > 1:
        raise ValueError(f"mesh: only one axis may be -1, got {unknown}")
    if any(size == 0 or size < -1 for size in sizes.values()):
        raise ValueError(f"mesh sizes must be positive or -1, got {sizes}")
    known = math.prod(size for size in sizes.values() if size != -1)
    if unknown:
        if device_count % known:
            raise ValueError(f"mesh {sizes}: {device_count} devices do not divide by {known}")
        sizes[unknown[0]] = device_count // known
    if math.prod(sizes.values()) != device_count:
        raise ValueError(f"mesh {sizes} has {math.prod(sizes.values())} slots but there are {device_count} devices")
    return sizes


def make_mesh(mesh_config, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    sizes = mesh_shape(mesh_config, len(devices))
    # Auto axis types: GSPMD propagation with Linen's logical partitioning (Explicit is the default).
    return jax.make_mesh(tuple(sizes.values()), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                         devices=devices)


def logical_rules(config) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
    return tuple((name, tuple(axes) if isinstance(axes, (list, tuple)) else axes) for name,
                 axes in config.sharding.rules)


def tree_shardings(abstract_tree, mesh: Mesh, rules) -> object:
    """NamedShardings for a (boxed) pytree of logically partitioned arrays."""
    specs = nn.get_partition_spec(abstract_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Process-local numpy batch -> global jax.Arrays sharded over (data, fsdp)."""
    sharding = batch_sharding(mesh)
    return {key: jax.make_array_from_process_local_data(sharding, value) for key, value in local.items()}


def broadcast_json(value: dict) -> dict:
    """Process 0's JSON-able `value` on every process. (`broadcast_one_to_all` takes arrays of one
    shape on every process: strings, ragged lists and a dict only process 0 has are not that.)"""
    if jax.process_count() == 1:
        return value
    data = np.frombuffer(json.dumps(value).encode(), np.uint8) if jax.process_index() == 0 else np.zeros(0, np.uint8)
    length = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
    padded = np.zeros(length, np.uint8)
    padded[: len(data)] = data
    return json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(padded))).decode())
