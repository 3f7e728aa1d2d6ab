"""bf16 matmuls on AMX tiles with f32 accumulation: a C++ XLA FFI kernel (`amx_matmul.cc`) for the
dense layers of mixed precision on x86 CPUs that have AMX.

    matmul(a, b, bias=None, transpose_a=False, transpose_b=False)  # 2D bf16 operands -> f32 [M, N]
    available() -> bool; unavailable_reason() -> str | None
    supports(m, k, n) -> bool       # shapes worth it here (N a multiple of 16, enough rows)
    serves(dtype, (m, k, n), ...)   # ... and bf16 operands on a CPU backend: callers' one test

Why: XLA's CPU backend computes a bf16-operand dot with AVX-512 (YNNPACK or Eigen), not with the
AMX tile unit: on this project's 2-core Xeon it ran 110–180 GFLOP/s, below its own f32 dots,
while the same cores' AMX tiles — what PyTorch's oneDNN uses under bf16 autocast — run several
times that (`benchmarks/bench_matmul.py` measures all three side by side). Mixed precision was
therefore barely faster than f32 (`docs/performance.md`). Here each call repacks both operands
into 1 KiB tiles (transposing where asked, which is how the two gradient matmuls are served
without an XLA transpose), and tasks of 32 rows × 64 columns accumulate 2 × 2 tiles over all of
K, adding the bias as the tiles are stored. Work is spread over XLA's own intra-op threads.

Numerics: bf16 products accumulated in f32, as XLA's bf16-operand dots with
`preferred_element_type=f32` (the order of the additions differs: tests bound the difference).

Build and load: `cpu_ffi.py` (compiled with g++ on first use, cached). `available()` is False —
and callers use XLA's dot — when the CPU lacks AMX, the compiler is missing or fails, or
SORA_JAX_AMX_MATMUL=0.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp

from sora_jax.kernels import cpu_ffi

SOURCE = pathlib.Path(__file__).with_name("amx_matmul.cc")
_TARGET = "sora_amx_matmul"
MIN_ROWS = 64  # below this the repacking of B costs more than the tiles save (bench_matmul.py)


@functools.cache
def _load() -> str | None:
    """Registers the FFI target; returns None when ready, else why the kernel is unavailable."""
    return cpu_ffi.load(SOURCE, {_TARGET: "SoraAmxMatmul"}, "SORA_JAX_AMX_MATMUL", "AMX matmul")


def available() -> bool:
    return _load() is None


def unavailable_reason() -> str | None:
    return _load()


def supports(m: int, k: int, n: int) -> bool:
    """Whether `matmul` takes an [m, k] · [k, n] product here and is worth it: N a multiple of 16,
    at least MIN_ROWS rows, on a CPU where the kernel loaded."""
    return n % 16 == 0 and m >= MIN_ROWS and k >= 1 and available()


def serves(operand_dtype, *products: tuple[int, int, int]) -> bool:
    """Whether products of these (m, k, n) shapes with `operand_dtype` operands run on the kernel
    here: bf16 operands, the default backend a CPU, and `supports` for each."""
    return (jnp.dtype(operand_dtype) == jnp.bfloat16 and jax.default_backend() == "cpu"
            and all(supports(*shape) for shape in products))


def matmul(a, b, bias=None, transpose_a: bool = False, transpose_b: bool = False):
    """A · B (+ bias) in f32 for 2D bf16 operands: A = a, or aᵀ with `transpose_a`; B likewise."""
    if a.ndim != 2 or b.ndim != 2 or a.dtype != jnp.bfloat16 or b.dtype != jnp.bfloat16:
        raise ValueError(f"amx matmul takes 2D bf16 operands; got {a.dtype}{list(a.shape)}, {b.dtype}{list(b.shape)}")
    m, k = a.shape[::-1] if transpose_a else a.shape
    k2, n = b.shape[::-1] if transpose_b else b.shape
    if k != k2 or n % 16:
        raise ValueError(f"amx matmul cannot take A {m}x{k} · B {k2}x{n}: contracted sizes must match, N be a "
                         f"multiple of 16")
    if not available():
        raise ValueError(f"amx matmul is unavailable: {_load()}")
    bias = jnp.zeros((0,), jnp.float32) if bias is None else bias.astype(jnp.float32).reshape(n)
    return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct((m, n), jnp.float32))(
        a, b, bias, transpose_a=transpose_a, transpose_b=transpose_b)
