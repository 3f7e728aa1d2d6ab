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
from sora_jax import host_memory
host_memory.retain_freed_memory()  # what the entry points do, before JAX allocates
import jax, jax.numpy as jnp

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
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_step_buffers_are_reused_not_faulted_back_in():
    retained, default = _probe(None), _probe("default")
    assert retained["retained"] and not default["retained"]
    # 64 MiB of fresh pages is ~16k faults; kept memory faults (almost) never once the heap has
    # grown to its working size (a call may still grow it now and then: hence the median).
    assert default["faults_per_call"] > 4000, default
    assert retained["faults_per_call"] < 200, retained


FRAGMENTS = r"""
import ctypes, json
from sora_jax import host_memory
host_memory.retain_freed_memory()

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

# Three 200 MiB blocks, each pinned in place by a small block allocated after it: once freed they
# are holes inside the heap, which neither glibc's top trimming nor a smaller request gives back.
blocks, pins = [], []
for _ in range(3):
    blocks.append(ctypes.create_string_buffer(200 * 2**20))  # zero-filled: resident
    pins.append(ctypes.create_string_buffer(64))
blocks.clear()
held, before = host_memory.free_bytes_held(), resident_mib()
kept = host_memory.release_excess(limit=2**40)  # under the limit: nothing happens
trimmed = host_memory.release_excess(limit=100 * 2**20)
print(json.dumps({"held_mib": held / 2**20, "kept": kept, "trimmed": trimmed,
                  "resident_before": before, "resident_after": resident_mib()}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallinfo2")
def test_freed_memory_beyond_the_limit_goes_back_to_the_kernel():
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", FRAGMENTS], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["held_mib"] >= 590 and not result["kept"] and result["trimmed"], result
    assert result["resident_before"] - result["resident_after"] >= 550, result
