"""Fused flash attention on x86 CPUs with AMX: a C++ XLA FFI kernel (`amx_attention.cc`).

    amx_attention(q, k, v)          # [B, N, H, D], bf16 matmul operands, f32 softmax
    available() -> bool             # AMX + AVX-512-bf16 CPU, a C++ compiler, Linux
    supports(q, k, v) -> bool       # ... and shapes it takes (head dim a multiple of 32)
    workspace_bytes(...)            # host memory it allocates outside XLA's buffers

Why: on CPU, XLA cannot fuse a matmul with the softmax that follows it, so the pure-JAX `flash`
kernel (sora_jax/models/attention.py) streams every block of N² scores through memory several
times (scores, weights, their gradients); at head dim 64 those passes, not the matmuls, are most
of the attention time. Here each task owns 16 rows and keeps their scores in cache (the forward's
16 × N in L2, the backward's 16 × 64 blocks in L1), computes them and the weighted sums with AMX
bf16 tile matmuls (f32 accumulation), and the exp and the gradient algebra with AVX-512 — the N²
scores never reach memory. Forward and backward follow
FlashAttention-2: the forward saves the output and each query's log-sum-exp; the backward
recomputes scores, once for dK/dV (tasks own 16 keys) and once for dQ (tasks own 16 queries).
Work is spread over XLA's own intra-op threads.

Numerics are those of the pure-JAX kernel under mixed precision (bf16 operands rounded to nearest,
f32 accumulation and softmax); tests compare the two and both against f32.

Build and load: `cpu_ffi.py` (compiled with g++ on first use, cached).
`available()` is False — and `attend` falls back to the pure-JAX kernel — when the CPU lacks AMX,
the compiler is missing or fails (a warning says why), or SORA_JAX_AMX_ATTENTION=0.
"""

from __future__ import annotations

import functools
import math
import pathlib

import jax
import jax.numpy as jnp

from sora_jax.kernels import cpu_ffi

SOURCE = pathlib.Path(__file__).with_name("amx_attention.cc")
TILE = 32  # tokens and head dims are padded to / must be multiples of this
_FORWARD, _BACKWARD = "sora_amx_attention_forward", "sora_amx_attention_backward"


def register(library: pathlib.Path, suffix: str = "") -> tuple[str, str]:
    """Registers a built library's forward and backward as XLA CPU custom-call targets (names
    suffixed, so that another build — e.g. an earlier commit's, for an A/B — can sit beside)."""
    names = (_FORWARD + suffix, _BACKWARD + suffix)
    cpu_ffi.register(library, dict(zip(names, ("SoraAmxAttentionForward", "SoraAmxAttentionBackward"))))
    return names


@functools.cache
def _load() -> str | None:
    """Registers the FFI targets; returns None when ready, else why the kernel is unavailable."""
    return cpu_ffi.load(SOURCE, {_FORWARD: "SoraAmxAttentionForward", _BACKWARD: "SoraAmxAttentionBackward"},
                        "SORA_JAX_AMX_ATTENTION", "AMX attention")


def available() -> bool:
    return _load() is None


def unavailable_reason() -> str | None:
    return _load()


def supports(q, k, v) -> bool:
    """Whether `amx_attention` takes these [B, N, H, D] operands on this machine: one head dim, a
    multiple of 32, for all three; keys and values alike; no mask (self- or cross-attention)."""
    if not q.ndim == k.ndim == v.ndim == 4:
        return False
    (b, _, h, d), (bk, nk, hk, dk) = q.shape, k.shape
    return d % TILE == 0 and (b, h, d) == (bk, hk, dk) and tuple(v.shape) == (b, nk, h, d) and available()


def workspace_bytes(batch: int, heads: int, queries: int, keys: int, head_dim: int, threads: int) -> int:
    """Host memory the kernel allocates itself, outside XLA's buffer assignment, at its peak (a
    backward call): seven repacked copies of B·H·N·D bf16 (Q and dO in two layouts each, K in
    two, V in one; amx_attention.cc), plus per thread the 16-row scratch kept between calls (f32
    scores and three bf16 weight rows, as long as the longest sequence seen)."""
    queries, keys = -(-queries // TILE) * TILE, -(-keys // TILE) * TILE
    repacked = 2 * batch * heads * head_dim * (4 * queries + 3 * keys)
    return repacked + threads * 16 * max(queries, keys) * (4 + 3 * 2)


def amx_attention(q, k, v):
    """softmax(q·kᵀ/√d)·v for [B, N, H, D] q and [B, Nk, H, D] k, v (one dtype), in q's dtype;
    bf16 matmul operands, f32 softmax. Needs `supports(q, k, v)`."""
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"amx attention takes one dtype for q, k, v; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not supports(q, k, v):
        raise ValueError(f"amx attention cannot take q {q.shape}, k {k.shape}, v {v.shape}: "
                         f"{_load() or 'needs one head dim, a multiple of 32, and keys shaped as values'}")
    return _attention(q, k, v, k.shape[1])


def _heads_first(x, scale=None):  # [B, N, H, D] -> [B, H, N', D] bf16, N' padded to a multiple of TILE
    if scale is not None:
        x = x.astype(jnp.float32) * scale
    x = x.astype(jnp.bfloat16).transpose(0, 2, 1, 3)
    return jnp.pad(x, ((0, 0), (0, 0), (0, -x.shape[2] % TILE), (0, 0)))


def attention_with(forward: str, backward: str):
    """f(q, k, v, keys) — the fused attention through the custom-call targets `forward` and
    `backward` (as `register` names them), differentiable; `keys` is k's token count (static)."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
    def attention(q, k, v, keys: int):
        return attention_forward(q, k, v, keys)[0]

    def attention_forward(q, k, v, keys: int):
        n, d = q.shape[1], q.shape[-1]
        qh, kh, vh = _heads_first(q, 1.0 / math.sqrt(d)), _heads_first(k), _heads_first(v)
        out_types = (jax.ShapeDtypeStruct(qh.shape, jnp.float32), jax.ShapeDtypeStruct(qh.shape[:-1], jnp.float32))
        out, lse = jax.ffi.ffi_call(forward, out_types, vmap_method="broadcast_all")(qh, kh, vh, keys=keys)
        return out[:, :, :n].transpose(0, 2, 1, 3).astype(q.dtype), (qh, kh, vh, out, lse)

    def attention_backward(keys: int, residuals, d_out):
        qh, kh, vh, out, lse = residuals
        n, d = d_out.shape[1], qh.shape[-1]
        doh = _heads_first(d_out)
        # rowsum(P ∘ dP) = dO·out, with dO rounded as the kernel's dP = dO·Vᵀ sees it
        delta = jnp.einsum("bhnd,bhnd->bhn", doh.astype(jnp.float32), out)
        out_types = tuple(jax.ShapeDtypeStruct(x.shape, jnp.float32) for x in (qh, kh, vh))
        dq, dk, dv = jax.ffi.ffi_call(backward, out_types, vmap_method="broadcast_all")(
            qh, kh, vh, doh, lse, delta, keys=keys)
        dq = dq * (1.0 / math.sqrt(d))  # the scale went into q's copy: undo it
        return tuple(x[:, :, :size].transpose(0, 2, 1, 3).astype(d_out.dtype)
                     for x, size in ((dq, n), (dk, keys), (dv, keys)))

    attention.defvjp(attention_forward, attention_backward)
    return attention


_attention = attention_with(_FORWARD, _BACKWARD)
