"""sora_jax keeps freed host memory: a jitted step that needs large temporaries does not page-fault
its working set back in on every call (glibc would otherwise mmap / munmap those buffers)."""

import json
import platform
import subprocess
import sys

import pytest

from sora_jax import host_memory

PROBE = r"""
import json
import sora_jax  # configures the allocator, before JAX allocates
import jax, jax.numpy as jnp
from sora_jax import host_memory

@jax.jit
def step(x):  # ~64 MiB of temporaries: an outer product and its transpose
    big = x[:, None] * x[None, :]
    return jnp.sum(jnp.tanh(big) @ big.T[:, :8])

x = jnp.linspace(0.0, 1.0, 4096)
for _ in range(10):  # the heap grows to its working size over the first few calls
    step(x).block_until_ready()
faults = []
for _ in range(9):
    before = host_memory.minor_faults()
    step(x).block_until_ready()
    faults.append(host_memory.minor_faults() - before)
print(json.dumps({"retained": host_memory.retain_freed_memory(), "faults_per_call": sorted(faults)[4]}))  # median
"""


def _probe(env_value: str | None) -> dict:
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env[host_memory.ENV] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_step_buffers_are_reused_not_faulted_back_in():
    retained, default = _probe(None), _probe("default")
    assert retained["retained"] and not default["retained"]
    # 64 MiB of fresh pages is ~16k faults; kept memory faults (almost) never once the heap has
    # grown to its working size (a call may still grow it now and then: hence the median).
    assert default["faults_per_call"] > 4000, default
    assert retained["faults_per_call"] < 200, retained
