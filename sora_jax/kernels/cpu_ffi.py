"""Building and loading this package's C++ kernels for x86 CPUs with AMX (XLA FFI custom calls).

    build(compiler, source) -> library path   # compiled once, cached, shared by processes
    load(source, targets, switch, what)       # build + register; None when ready, else why not

A kernel is one `.cc` file in this folder (`amx_attention.cc`, `amx_matmul.cc`) that may include
`amx_common.h`. On first use it is compiled with the system `g++` (or $CXX) against jaxlib's FFI
headers into a cache directory ($SORA_JAX_KERNEL_CACHE, else ~/.cache/sora_jax), keyed by a hash
of the source, the shared header, the flags, the compiler and jaxlib's version; later processes
load the cached library. `load` returns a reason instead — and the caller falls back to XLA —
when its switch variable is "0", the machine is not Linux on x86_64, the CPU lacks AMX or
AVX-512-bf16, Linux refuses AMX tile state, or the compiler is missing or fails (with a warning).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import warnings

import jax
import jaxlib

from sora_jax import host_memory

FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-w", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
         "-mavx512bf16", "-mamx-tile", "-mamx-bf16", "-mfma")
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
HEADER = pathlib.Path(__file__).with_name("amx_common.h")


def cpu_flags() -> set[str]:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def request_amx_permission() -> bool:
    """Linux hands out AMX's 8 KiB of tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM)."""
    sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18
    return host_memory.libc().syscall(sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0


def compiler() -> str | None:
    """The C++ compiler kernels are built with: $CXX, else `g++` on the PATH (None: neither)."""
    return os.environ.get("CXX") or shutil.which("g++")


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("SORA_JAX_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sora_jax")
    return pathlib.Path(root)


def build(compiler: str, source: pathlib.Path) -> pathlib.Path:
    """The compiled library of `source`, built once per source (and shared header), flags, compiler
    and jaxlib version and shared by processes (written under a temporary name and renamed into
    place: concurrent builds are safe). An older commit's self-contained source builds too."""
    include = jax.ffi.include_dir()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(source.read_bytes() + HEADER.read_bytes() + " ".join(FLAGS).encode()
                         + jaxlib.__version__.encode() + f"{compiler}\n{version}".encode())
    library = _cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
        built = pathlib.Path(tmp) / library.name
        subprocess.run([compiler, *FLAGS, f"-I{include}", f"-I{HEADER.parent}", str(source), "-o", str(built)],
                       check=True, capture_output=True, text=True)
        os.replace(built, library)
    return library


def register(library: pathlib.Path, targets: dict[str, str]) -> None:
    """Registers a built library's handlers ({custom-call target: exported symbol}) for XLA's CPU."""
    loaded = ctypes.CDLL(str(library))
    for name, symbol in targets.items():
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(loaded, symbol)), platform="cpu")


def load(source: pathlib.Path, targets: dict[str, str], switch: str, what: str) -> str | None:
    """Builds and registers `source`'s `targets`; None when ready, else why `what` is unavailable
    (and a warning when compiling failed). `switch`: the environment variable that turns it off."""
    if os.environ.get(switch, "1") == "0":
        return f"disabled by {switch}=0"
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"needs Linux on x86_64, not {platform.system()} on {platform.machine()}"
    missing = [flag for flag in CPU_FLAGS if flag not in cpu_flags()]
    if missing:
        return f"the CPU lacks {', '.join(missing)}"
    if not request_amx_permission():
        return "the kernel refused AMX tile state (arch_prctl)"
    cxx = compiler()
    if not cxx:
        return "no C++ compiler (g++ or $CXX)"
    try:
        register(build(cxx, source), targets)
    except subprocess.CalledProcessError as error:
        reason = f"compiling {source.name} failed: {error.stderr.strip()[-500:]}"
        warnings.warn(f"{what} unavailable, using XLA's: {reason}", stacklevel=3)
        return reason
    except OSError as error:
        warnings.warn(f"{what} unavailable, using XLA's: {error}", stacklevel=3)
        return str(error)
    return None
