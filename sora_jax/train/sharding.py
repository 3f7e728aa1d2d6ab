"""The device mesh and the shardings of parameters and batches, from the config.

Mesh axes are `data, fsdp, tensor, context`; a size of -1 takes the devices left over. On
several TPU slices (or GPU nodes) `mesh.dcn_<axis>` says how many slices an axis spans: its size
is then `mesh.<axis>` (inside a slice, ICI) x `mesh.dcn_<axis>` (across slices, DCN), as MaxText's
`ici_*` / `dcn_*` parallelism.
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


def dcn_shape(mesh_config) -> dict[str, int]:
    """Per mesh axis, how many slices (TPU) or processes (elsewhere) it spans: `mesh.dcn_<axis>`,
    1 when absent. The axis's devices inside one slice are `mesh.<axis>` (ICI)."""
    sizes = {axis: int(mesh_config.get(f"dcn_{axis}", 1)) for axis in MESH_AXES}
    if any(size < 1 for size in sizes.values()):
        raise ValueError(f"mesh.dcn_* sizes must be >= 1, got {sizes}")
    return sizes


def ici_shape(mesh_config, devices_per_slice: int) -> dict[str, int]:
    """The axes' sizes inside one slice: resolves -1 and checks the product; raises a one-line
    ValueError naming the fields."""
    sizes = {axis: int(mesh_config[axis]) for axis in MESH_AXES}
    unknown = [axis for axis, size in sizes.items() if size == -1]
    if len(unknown) > 1:
        raise ValueError(f"mesh: only one axis may be -1, got {unknown}")
    if any(size == 0 or size < -1 for size in sizes.values()):
        raise ValueError(f"mesh sizes must be positive or -1, got {sizes}")
    known = math.prod(size for size in sizes.values() if size != -1)
    if unknown:
        if devices_per_slice % known:
            raise ValueError(f"mesh {sizes}: {devices_per_slice} devices do not divide by {known}")
        sizes[unknown[0]] = devices_per_slice // known
    if math.prod(sizes.values()) != devices_per_slice:
        raise ValueError(f"mesh {sizes} has {math.prod(sizes.values())} slots but there are {devices_per_slice} "
                         f"devices")
    return sizes


def mesh_shape(mesh_config, device_count: int) -> dict[str, int]:
    """Each axis's size over all devices: ICI x DCN (`ici_shape`, `dcn_shape`)."""
    dcn = dcn_shape(mesh_config)
    slices = math.prod(dcn.values())
    if device_count % slices:
        raise ValueError(f"mesh.dcn_* {dcn} asks for {slices} slices, which do not divide {device_count} devices")
    ici = ici_shape(mesh_config, device_count // slices)
    return {axis: ici[axis] * dcn[axis] for axis in MESH_AXES}


def make_mesh(mesh_config, devices=None) -> Mesh:
    """The mesh over `devices` (default: all). With `mesh.dcn_*` > 1 it is hybrid: on TPUs the DCN
    granules are slices (`mesh_utils.create_hybrid_device_mesh`, ICI axes laid out on each slice's
    torus); elsewhere processes (a multi-node GPU cluster: one process per node), so an axis that
    spans granules crosses the slow network only where `dcn_<axis>` says."""
    devices = jax.devices() if devices is None else devices
    sizes = mesh_shape(mesh_config, len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)  # GSPMD propagation with Linen's logical partitioning
    if math.prod(dcn_shape(mesh_config).values()) > 1:
        return Mesh(device_array(mesh_config, devices), MESH_AXES, axis_types=axis_types)
    return jax.make_mesh(tuple(sizes.values()), MESH_AXES, axis_types=axis_types, devices=devices)


def device_array(mesh_config, devices) -> np.ndarray:
    """The hybrid mesh's devices [data, fsdp, tensor, context] (ICI x DCN per axis)."""
    from jax.experimental import mesh_utils

    dcn = dcn_shape(mesh_config)
    slices = math.prod(dcn.values())
    granule = "slice_index" if devices[0].platform == "tpu" else "process_index"
    found = len({getattr(d, granule, 0) for d in devices})
    if found != slices:
        unit = "TPU slices" if granule == "slice_index" else "processes"
        raise ValueError(f"mesh.dcn_* {dcn} asks for {slices} {unit}; the devices come from {found}")
    ici = ici_shape(mesh_config, len(devices) // slices)
    return mesh_utils.create_hybrid_device_mesh(tuple(ici.values()), tuple(dcn.values()), devices,
                                                process_is_granule=granule == "process_index")


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
