"""Shared fixtures. Multi-device tests force 8 CPU devices in their own processes."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from sora_jax import host_memory

host_memory.retain_freed_memory()  # as the CLI does, before JAX allocates in the test processes
REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Ray and Beam run gRPC in the test processes; its fork handlers break ffmpeg children (video_io).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
_owned_cache_dir = None  # set in the controlling process when it made the cache itself


# LLVM's optimization of XLA:CPU code, off for the tests: their micro models run a few steps, so
# compiling is most of their time. One test that trains a run alone took 80 s, 45 s with this
# (the full suite: docs/architecture.md, Tests). XLA's HLO passes are unchanged.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    """One persistent XLA compilation cache per test session, shared by the xdist workers and the
    CLI subprocesses (they inherit the environment): the same micro models are compiled by many
    tests, and on 2 cores compiling is most of their time. A cache set by the caller is kept.
    Also `FAST_COMPILE`, unless the caller's XLA_FLAGS set an optimization level."""
    global _owned_cache_dir
    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    _owned_cache_dir = tempfile.mkdtemp(prefix="sora_jax_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _owned_cache_dir
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_unconfigure(config):
    if _owned_cache_dir:
        shutil.rmtree(_owned_cache_dir, ignore_errors=True)


def run_cli(*args: str, timeout: float = 600, cwd: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    """Runs `sora-jax ARGS` in a fresh process; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "sora_jax.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    """A TCP port nothing listens on now: the coordinator of a multi-process test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def micro_vae_config(data_dir, total_steps: int = 2):
    """sora_jax/configs/vae.py:micro cut down for tests: evaluation and latent statistics on a clip or two,
    synchronous checkpoints, no evaluation before the end."""
    from sora_jax.configs import vae

    config = vae.get_config("micro")
    config.data.data_dir = str(data_dir)
    config.total_steps = total_steps
    config.log.eval_every_steps = 1000
    config.eval.num_clips = 1
    config.eval.num_samples = 1
    config.eval.latent_stat_clips = 4
    config.checkpoint.async_save = False
    return config


def micro_t2v_config(variant: str, data_dir, total_steps: int, cache_limit: int = 48):
    """sora_jax/configs/t2v.py:`variant` cut down for tests: the first `cache_limit` clips, batches of
    2 (4 at most), evaluation on two clips at the end only, no samples, synchronous checkpoints."""
    from sora_jax.configs import t2v

    config = t2v.get_config(variant)
    config.data.data_dir = str(data_dir)
    config.data.cache_limit = cache_limit
    config.data.batch_size, config.data.max_batch_size = 2, 4
    config.total_steps = total_steps
    config.log.eval_every_steps = 1000
    config.eval.num_clips = 2
    config.eval.num_samples = 0
    config.checkpoint.async_save = False
    return config


@pytest.fixture(scope="session")
def physworld_tiny(tmp_path_factory) -> pathlib.Path:
    """physworld/tiny prepared once per test session (per xdist worker) by the real CLI."""
    data_dir = tmp_path_factory.mktemp("tfds")
    result = run_cli("data", "prepare", "--dataset=physworld/tiny", f"--data_dir={data_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return data_dir


@pytest.fixture(scope="session")
def micro_vae(physworld_tiny, tmp_path_factory) -> pathlib.Path:
    """A finished (2-step) micro VAE run: the latent space the T2V tests train in."""
    from sora_jax.train import trainer

    config = micro_vae_config(physworld_tiny)
    config.eval.num_clips = 2
    workdir = tmp_path_factory.mktemp("vae_micro")
    trainer.train(config, workdir, quiet=True)
    return workdir


@pytest.fixture(scope="session")
def micro_t2v(physworld_tiny, tmp_path_factory) -> pathlib.Path:
    """A few-step micro DiT on the committed tiny VAE (assets/vae_tiny): generation tests need a
    real latent space (given frames must come back through a real decoder), not a good model."""
    from sora_jax.train import trainer

    config = micro_t2v_config("micro", physworld_tiny, total_steps=3)
    config.vae_workdir = str(REPO / "assets" / "vae_tiny")
    config.sample.steps = 4
    workdir = tmp_path_factory.mktemp("t2v_micro")
    trainer.train(config, workdir, quiet=True)
    return workdir


@pytest.fixture(scope="session")
def blockworld_tiny(tmp_path_factory) -> pathlib.Path:
    """blockworld/tiny prepared once per test session."""
    from sora_jax.data import prepare

    data_dir = tmp_path_factory.mktemp("blockworld")
    prepare.prepare("blockworld/tiny", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def micro_blockworld(blockworld_tiny, tmp_path_factory) -> pathlib.Path:
    """A 3-step micro DiT with actions on blockworld/tiny in the committed tiny VAE's latent:
    the mechanics of action conditioning and play, not a good model."""
    from sora_jax.train import trainer

    config = micro_t2v_config("micro", blockworld_tiny, total_steps=3, cache_limit=24)
    config.vae_workdir = str(REPO / "assets" / "vae_tiny")
    config.data.dataset = "blockworld/tiny"
    config.model.num_actions = 7
    config.sample.steps = 2
    workdir = tmp_path_factory.mktemp("blockworld_micro")
    trainer.train(config, workdir, quiet=True)
    return workdir
