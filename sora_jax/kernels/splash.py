"""Pallas splash attention (TPU) for [B, N, H, D] queries, keys and values.

    out = splash.splash_attention(q, k, v, mask=None, operand_dtype=None)

JAX's splash attention kernel (`jax.experimental.pallas.ops.tpu.splash_attention`, the kernel
MaxText and MaxDiffusion train with on TPUs): flash attention in Pallas, forward and backward
(separate dQ and dK/dV kernels), scores never leave VMEM. This file adapts it to the DiT's
attention: queries are scaled by 1/sqrt(D) (the kernel does not scale), heads go first and the
batch is vmapped, and sequences that are not a multiple of the block are zero-padded — the padded
keys, and keys a mask [B, 1, 1, Nk] turns off (cross-attention to padded text), get segment id 1
while every query has id 0, so no query attends to them (segment ids are the kernel's own way to
express padded or packed sequences; without padding or mask none are passed, the fast path).
Queries and keys may differ in length (cross-attention; context parallelism's local queries
against all-gathered keys).

Off a TPU the kernel runs in Pallas' interpret mode (the same kernel, executed op by op on the
host backend): that is how this CPU tests it, exactly and slowly — on a CPU, use `flash`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

# Queries / keys per kernel block: the largest power of two up to 512 that the padded sequence
# needs (MaxText's and MaxDiffusion's splash defaults are 512); TPU blocks are multiples of 128.
MAX_BLOCK = 512
MIN_BLOCK = 128


def block_size(tokens: int) -> int:
    return min(MAX_BLOCK, max(MIN_BLOCK, 1 << math.ceil(math.log2(max(tokens, 1)))))


def _padded(tokens: int, block: int) -> int:
    return -(-tokens // block) * block


@functools.lru_cache(maxsize=64)
def _kernel(heads: int, q_len: int, kv_len: int, block_q: int, block_kv: int, interpret: bool):
    """The splash kernel for one example [H, N, D] (built from a static full mask: no block is
    skipped; segment ids do the masking). Pallas' TPU ops are imported here, when first used:
    they double `import jax`'s time (0.5 s)."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash_lib

    mask = splash_lib.MultiHeadMask([splash_lib.FullMask((q_len, kv_len)) for _ in range(heads)])
    blocks = splash_lib.BlockSizes(block_q=block_q, block_kv=block_kv, block_kv_compute=block_kv,
                                   block_q_dkv=block_q, block_kv_dkv=block_kv, block_kv_dkv_compute=block_kv,
                                   block_q_dq=block_q, block_kv_dq=block_kv)
    with jax.ensure_compile_time_eval():  # its mask tables are constants, not tracers of the first caller's jit
        return splash_lib.make_splash_mha_single_device(mask, block_sizes=blocks, interpret=interpret)


def splash_attention(q, k, v, mask=None, operand_dtype=None, interpret: bool | None = None):
    """[B, Nq, H, D] x [B, Nk, H, D] -> [B, Nq, H, D] in q's dtype. `mask`: None or a key mask
    [B, 1, 1, Nk] (True: attend). `operand_dtype`: the kernel's matmul operands (bf16 under mixed
    precision; its softmax and accumulation stay f32). `interpret`: None runs the compiled kernel
    on a TPU and interpret mode elsewhere."""
    if mask is not None and (mask.ndim != 4 or mask.shape[1:3] != (1, 1)):
        raise ValueError(f"splash attention takes a key mask [B, 1, 1, Nk], got {mask.shape}")
    interpret = jax.default_backend() != "tpu" if interpret is None else interpret
    batch, q_len, heads, dim = q.shape
    kv_len = k.shape[1]
    dtype, operand = q.dtype, jnp.dtype(operand_dtype or q.dtype)
    block_q, block_kv = block_size(q_len), block_size(kv_len)
    q_pad, kv_pad = _padded(q_len, block_q), _padded(kv_len, block_kv)

    def heads_first(x, length, scale=1.0):  # [B, N, H, D] -> [B, H, N_padded, D] operands
        x = (x.astype(jnp.float32) * scale if scale != 1.0 else x).astype(operand)
        return jnp.pad(x, ((0, 0), (0, length - x.shape[1]), (0, 0), (0, 0))).swapaxes(1, 2)

    qh = heads_first(q, q_pad, 1.0 / math.sqrt(dim))
    kh, vh = heads_first(k, kv_pad), heads_first(v, kv_pad)
    kernel = _kernel(heads, q_pad, kv_pad, block_q, block_kv, interpret)
    if mask is None and kv_pad == kv_len:
        out = jax.vmap(kernel)(qh, kh, vh)
    else:
        keep = jnp.ones((batch, kv_len), bool) if mask is None else jnp.broadcast_to(mask[:, 0, 0, :], (batch, kv_len))
        kv_ids = jnp.pad(jnp.where(keep, 0, 1).astype(jnp.int32), ((0, 0), (0, kv_pad - kv_len)), constant_values=1)
        q_ids = jnp.zeros((batch, q_pad), jnp.int32)
        from jax.experimental.pallas.ops.tpu.splash_attention import SegmentIds

        out = jax.vmap(lambda a, b, c, qi, ki: kernel(a, b, c, segment_ids=SegmentIds(q=qi, kv=ki)))(
            qh, kh, vh, q_ids, kv_ids)
    return out[:, :, :q_len].swapaxes(1, 2).astype(dtype)
