"""Keep freed host memory in the process, so XLA's CPU buffers do not page-fault on every step.

XLA's CPU runtime allocates each step's temporaries (hundreds of MiB for a DiT step) with
malloc and frees them when the step ends. glibc serves such large blocks with a fresh `mmap` —
from worker threads always, since a thread's arena cannot hold them — and returns them with
`munmap`, so every step faults its whole working set back in, page by page, with the kernel
zeroing each page: on the 2-core CPU this was 77k minor faults and 23 % of the CPU time of a
width-192 DiT training step (`experiments/bench_host_memory.py`; `bench_dit_step.py` prints the
faults per step too).

`retain_freed_memory()` asks glibc for one arena, no `mmap` for large blocks and no trimming,
so a freed step's buffers are reused by the next one: no faults, and that step 1.23x as fast.
The cost is that the resident size stays at its high-water mark, as with tcmalloc or jemalloc.
It runs when `sora_jax` is imported — before XLA's threads allocate anything — on Linux with
glibc; `SORA_JAX_HOST_MALLOC=default` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import resource

ENV = "SORA_JAX_HOST_MALLOC"
# (glibc tunable, mallopt(3) parameter from glibc's malloc.h, value)
SETTINGS = (("arena_max", -8, 1), ("mmap_max", -4, 0), ("trim_threshold", -1, 2**31 - 1))
# The same settings for a process started from scratch (a child that is not Python, or PyTorch).
GLIBC_TUNABLES = ":".join(f"glibc.malloc.{name}={value}" for name, _, value in SETTINGS)

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Configure glibc's malloc as above, once; True when it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "retain") == "default" or not _is_glibc():
        return False
    libc = ctypes.CDLL(None)  # the symbols already loaded into this process, glibc's among them
    _applied = all(libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for _, option, value in SETTINGS)
    return _applied


def _is_glibc() -> bool:  # without platform.libc_ver (reads the interpreter's binary) or find_library (runs ldconfig)
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name here
        return False


def minor_faults() -> int:
    """Minor page faults of this process so far (a counter benchmarks read before and after)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
