"""Keep freed host memory in the process, so XLA's CPU buffers do not page-fault on every step.

XLA's CPU runtime allocates each step's temporaries (hundreds of MiB for a DiT step) with
malloc and frees them when the step ends. glibc serves such large blocks with a fresh `mmap` —
from worker threads always, since a thread's arena cannot hold them — and returns them with
`munmap`, so every step faults its whole working set back in, page by page, with the kernel
zeroing each page: on the 2-core CPU this was 77k minor faults and 23 % of the CPU time of a
width-192 DiT training step (`benchmarks/bench_host_memory.py`; `bench_dit_step.py` prints the
faults per step too).

`retain_freed_memory()` asks glibc for one arena, no `mmap` for large blocks and no trimming,
so a freed step's buffers are reused by the next one: no faults, and that step 1.23x as fast.
The cost is that the resident size stays at its high-water mark, as with tcmalloc or jemalloc.
The entry points call it before XLA's threads allocate anything (`sora-jax`, the tests' conftest,
the benchmarks), never a library import; on Linux with glibc; `SORA_JAX_HOST_MALLOC=default`
leaves the allocator alone.

The high-water mark is not bounded when steps of many shapes each need gigabytes: freed blocks
that do not fit the next request stay resident, and the `small` VAE (4 GiB of temporaries a
step, crops of 1, 9 and 17 frames) reached 24 GiB and was killed, where glibc's defaults stayed
under 7 GiB. So `release_excess()`, called by the trainer after every step, hands the freed
pages back to the kernel (`malloc_trim`) once malloc holds more than `excess_limit()` bytes free:
an eighth of physical memory, at least 1 GiB. A DiT step's few hundred MiB stay below it and
keep their zero faults; above it, steps fault their temporaries back in as without this module.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource

ENV = "SORA_JAX_HOST_MALLOC"
# (glibc tunable, mallopt(3) parameter from glibc's malloc.h, value). The trim threshold is "never":
# mallopt takes an int, and glibc stores -1 as SIZE_MAX (its do_set_trim_threshold takes a size_t).
# The int maximum, 2³¹ − 1, was not enough: a step whose temporaries leave more than 2 GiB free at
# the heap's top (DiT-S/2: 1.9 GiB) had them trimmed after every step and faulted back in — 486k
# minor faults a step (`bench_dit_step.py`). `release_excess` bounds what is kept instead.
SETTINGS = (("arena_max", -8, 1), ("mmap_max", -4, 0), ("trim_threshold", -1, -1))
# The same settings for a process started from scratch (a child that is not Python, or PyTorch);
# tunables take the size_t itself.
GLIBC_TUNABLES = ":".join(f"glibc.malloc.{name}={value if value >= 0 else 2**63}" for name, _, value in SETTINGS)

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Configure glibc's malloc as above, once; True when it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "retain") == "default" or not _is_glibc():
        return False
    _applied = all(libc().mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for _, option, value in SETTINGS)
    return _applied


class _MallInfo2(ctypes.Structure):  # glibc >= 2.33, malloc.h
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def free_bytes_held() -> int:
    """Bytes malloc holds free (in the heap, resident or not): mallinfo2's `fordblks`; 0 unless
    `retain_freed_memory` is in effect."""
    if not _applied or not hasattr(libc(), "mallinfo2"):  # mallinfo2: glibc >= 2.33
        return 0
    return int(libc().mallinfo2().fordblks)


@functools.cache
def excess_limit() -> int:
    """Free bytes malloc may keep before `release_excess` trims: 1/8 of physical memory, ≥ 1 GiB."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(2**30, physical // 8)


def release_excess(limit: int | None = None) -> bool:
    """`malloc_trim(0)` — free pages back to the kernel — when malloc holds more than `limit`
    (default `excess_limit()`) bytes free. True when it trimmed."""
    if not _applied or free_bytes_held() <= (excess_limit() if limit is None else limit):
        return False
    libc().malloc_trim(ctypes.c_size_t(0))
    return True


@functools.cache
def libc():
    """The symbols already loaded into this process, glibc's among them (opened once; also used
    by `sora_jax.kernels` for a syscall)."""
    loaded = ctypes.CDLL(None)
    if hasattr(loaded, "mallinfo2"):
        loaded.mallinfo2.restype = _MallInfo2
    return loaded


def _is_glibc() -> bool:  # without platform.libc_ver (reads the interpreter's binary) or find_library (runs ldconfig)
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name here
        return False


def minor_faults() -> int:
    """Minor page faults of this process so far (a counter benchmarks read before and after)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def resident_bytes() -> int:
    """This process's resident memory now (Linux: /proc/self/statm; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
