"""Multi-slice meshes: `mesh.<axis>` devices inside a slice (ICI) x `mesh.dcn_<axis>` slices
(DCN). The device layout is checked with stand-in devices — TPU chips with slice indices and torus
coordinates, GPUs grouped by process — since this CPU has one slice and one process."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from sora_jax.configs import t2v
from sora_jax.train import sharding, validate


@dataclasses.dataclass(frozen=True)
class StandIn:
    id: int
    slice_index: int
    process_index: int
    platform: str
    device_kind: str
    coords: tuple = (0, 0, 0)
    core_on_chip: int = 0


def _tpu_slices(slices: int, side: int = 2) -> list[StandIn]:
    """`slices` TPU v5e slices of side x side chips (one process per slice)."""
    return [StandIn(s * side * side + i, s, s, "tpu", "TPU v5 lite", (i % side, i // side, 0))
            for s in range(slices) for i in range(side * side)]


def _mesh(**sizes) -> ml_collections.ConfigDict:
    base = dict(data=1, fsdp=1, tensor=1, context=1, dcn_data=1, dcn_fsdp=1, dcn_tensor=1, dcn_context=1)
    return ml_collections.ConfigDict({**base, **sizes})


def _field(array: np.ndarray, name: str) -> np.ndarray:
    return np.vectorize(lambda d: getattr(d, name))(array)


def test_data_parallel_across_tpu_slices_keeps_each_slices_chips_together():
    """Two v5e slices of 4 chips, dcn_data=2 and fsdp filling each slice: the data axis crosses
    slices (DCN), fsdp stays on one slice's torus (ICI)."""
    config = _mesh(fsdp=-1, dcn_data=2)
    array = sharding.device_array(config, _tpu_slices(2))
    assert array.shape == (2, 4, 1, 1)
    assert sharding.mesh_shape(config, 8) == {"data": 2, "fsdp": 4, "tensor": 1, "context": 1}
    slices = _field(array, "slice_index")
    assert (slices[0] == 0).all() and (slices[1] == 1).all()
    assert sorted(_field(array, "id").ravel()) == list(range(8))


def test_an_axis_split_between_ici_and_dcn_puts_the_slice_outermost():
    """data = 2 inside a slice x 2 slices: data indices 0-1 on slice 0, 2-3 on slice 1."""
    array = sharding.device_array(_mesh(data=2, tensor=2, dcn_data=2), _tpu_slices(2))
    assert array.shape == (4, 1, 2, 1)
    assert _field(array, "slice_index")[:, 0, :, 0].tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]


def test_gpu_nodes_are_the_dcn_granules():
    """Off TPUs the granules are processes: 2 nodes x 4 GPUs, tensor parallel inside a node,
    data parallel across nodes."""
    gpus = [StandIn(p * 4 + i, 0, p, "gpu", "NVIDIA H100 80GB HBM3") for p in range(2) for i in range(4)]
    array = sharding.device_array(_mesh(tensor=4, dcn_data=2), gpus)
    assert array.shape == (2, 1, 4, 1)
    assert _field(array, "process_index")[:, 0, :, 0].tolist() == [[0] * 4, [1] * 4]


def test_wrong_slice_counts_are_refused_with_the_fields_named():
    with pytest.raises(ValueError, match=r"asks for 4 TPU slices; the devices come from 2"):
        sharding.device_array(_mesh(fsdp=-1, dcn_data=4), _tpu_slices(2))
    with pytest.raises(ValueError, match=r"3 slices, which do not divide 8 devices"):
        sharding.mesh_shape(_mesh(fsdp=-1, dcn_fsdp=3), 8)
    with pytest.raises(ValueError, match=r"dcn_\* sizes must be >= 1"):
        sharding.mesh_shape(_mesh(fsdp=-1, dcn_data=0), 8)
    # This machine: one process, so a 2-process DCN axis is refused before anything compiles.
    with pytest.raises(ValueError, match=r"asks for 2 processes; the devices come from 1"):
        sharding.make_mesh(_mesh(data=-1, dcn_data=2), devices=jax.devices() * 2)
    config = t2v.get_config("micro")
    config.mesh.dcn_data = 3
    with pytest.raises(validate.ConfigError, match="mesh: mesh.dcn_"):
        validate.check(config, device_count=4)


def test_one_slice_is_the_plain_mesh():
    mesh = sharding.make_mesh(_mesh(data=-1))
    assert dict(mesh.shape) == {"data": jax.device_count(), "fsdp": 1, "tensor": 1, "context": 1}


def test_cli_train_in_two_processes_over_a_dcn_axis(physworld_tiny, tmp_path):
    """`sora-jax train` as a cluster runs it: two processes of 2 CPU devices each, joined with
    --coordinator/--num_processes/--process_id, the data axis 2 devices inside a process x 2
    processes (`mesh.dcn_data=2`: processes are the DCN granules off TPUs)."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, free_port

    port = free_port()
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    args = ["train", "--config=sora_jax/configs/vae.py:micro", f"--workdir={tmp_path / 'run'}",
            f"--config.data.data_dir={physworld_tiny}", "--config.data.batch_size=4", "--config.total_steps=2",
            "--config.mesh.data=-1", "--config.mesh.dcn_data=2", "--config.log.eval_every_steps=1000",
            "--config.eval.num_clips=2", "--config.eval.num_samples=1", "--config.eval.latent_stat_clips=4",
            "--config.checkpoint.async_save=False", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
    workers = [subprocess.Popen([sys.executable, "-m", "sora_jax.cli", *args, f"--process_id={i}"], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert "process 0 of 2: 2 local devices, 4 in all" in outputs[0][0]
    assert json.loads(outputs[0][0][outputs[0][0].index("{"):])["step"] == 2
    with open(tmp_path / "run" / "config.json") as saved:
        assert json.load(saved)["mesh"]["dcn_data"] == 2
