"""Shared fixtures. Multi-device tests force 8 CPU devices in their own processes."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def run_cli(*args: str, timeout: float = 600, cwd: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    """Runs `sora-jax ARGS` in a fresh process; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "sora_jax.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def physworld_tiny(tmp_path_factory) -> pathlib.Path:
    """physworld/tiny prepared once per test session (per xdist worker) by the real CLI."""
    data_dir = tmp_path_factory.mktemp("tfds")
    result = run_cli("data", "prepare", "--dataset=physworld/tiny", f"--data_dir={data_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return data_dir
