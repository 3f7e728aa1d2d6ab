"""Attention kernels for [B, N, H, D] queries, keys and values.

    attend(q, k, v, mask=None, implementation="xla", operand_dtype=None)

- `xla`: `jax.nn.dot_product_attention` (XLA's fused softmax(QKᵀ)V; N² scores in memory).
- `cudnn`: cuDNN's flash kernel (GPU; bf16 operands).
- `flash`: FlashAttention-2's forward and backward, with a custom VJP (only the output and
  log-sum-exp are saved): memory linear in tokens, bf16 matmul operands under mixed precision.
  The fastest kernel on CPU. With bf16 operands on a CPU with AMX it runs the fused C++ kernel
  of `sora_jax/kernels/amx_attention.py` (scores never leave the cache); elsewhere, or where that
  cannot be built, the pure-JAX kernel below, blocked over queries.
- `flash_jax`: always the pure-JAX flash kernel (for A/B against the fused one).
- `splash`: Pallas' splash attention, the TPU kernel (`sora_jax/kernels/splash.py`); padded or
  masked keys by segment ids. Off a TPU it runs in Pallas' interpret mode (tests; slow).
- `auto` (the configs' default): the backend's kernel, chosen when traced and logged once:
  `cudnn` on a GPU, `splash` on a TPU, `flash` on a CPU (`resolve`).
- `chunked`: memory-efficient attention for CPU and long sequences: queries in chunks, keys in
  chunks under an online softmax (running max and sum, as flash attention), each query chunk
  rematerialized in the backward pass, so activation memory grows linearly with tokens.

Context parallelism: when the current (abstract) mesh has a `context` axis of size > 1 and the
tokens are sharded over it, `attend` runs under `jax.shard_map`: each device keeps its slice of
queries, all-gathers keys and values over `context`, and attends locally (batch stays on
`data`/`fsdp`, heads on `tensor`). The trainer sets the abstract mesh, so configs turn it on with
`mesh.context > 1` alone.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from absl import logging
from jax.sharding import PartitionSpec as P

from sora_jax.kernels import amx_attention, splash

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash", "chunked", "flash", "flash_jax")
BY_BACKEND = {"gpu": "cudnn", "tpu": "splash", "cpu": "flash"}  # what `auto` picks
_logged_choices: set[tuple[str, str]] = set()
CHUNK = 512  # tokens per query / key chunk of the chunked kernel
# Queries per flash block. Timed in the whole DiT training step (mixed precision, depth 4;
# `benchmarks/sweep_flash_block.py`), 512 was the fastest or within 2 % of it of 128–1,024 at
# 3 heads × 1,024, 2,048 and 8,192 tokens and 6 heads × 2,048 (up to 1.13x the old rule's
# blocks) — inside the step the score blocks share the cache with everything else, so timing the
# kernel alone had favoured 1,024. Fewer when one block's f32 scores (heads × keys × queries)
# would pass FLASH_MAX_SCORES (128 MiB), e.g. for long sequences with many heads.
FLASH_BLOCK = 512
FLASH_MAX_SCORES = 2**25
# 2^f ≈ 1 + f·(c1 + f·(c2 + f·c3)) on [0, 1): a relative-error minimax fit with p(0) = 1 exact,
# at most 8.6e-5 off — 20x under bf16's largest rounding error (2^-9). Fitted by iteratively
# reweighted least squares; the test checks the bound.
EXP2_CUBIC = (0.695117175392756, 0.2276452063258798, 0.07706616105926503)


def chunked_attention(q, k, v, mask=None, chunk: int = CHUNK):
    """softmax(q·kᵀ/√d)·v with O(chunk²) scores alive at once; `mask` [B, 1|H, 1|Nq, Nk] bool."""
    b, nq, h, d = q.shape
    nk = k.shape[1]
    qc, kc = min(chunk, nq), min(chunk, nk)
    pad_q, pad_k = -nq % qc, -nk % kc
    scale = 1.0 / math.sqrt(d)
    mask_shape = (b, 1, 1, nk) if mask is None else (b, mask.shape[1], 1 if mask.shape[2] == 1 else nq, nk)
    keep = jnp.ones(mask_shape, bool) if mask is None else jnp.broadcast_to(mask, mask_shape)
    q = jnp.pad(q, ((0, 0), (0, pad_q), (0, 0), (0, 0)))
    k = jnp.pad(k, ((0, 0), (0, pad_k), (0, 0), (0, 0)))
    v = jnp.pad(v, ((0, 0), (0, pad_k), (0, 0), (0, 0)))
    keep = jnp.pad(keep, ((0, 0), (0, 0), (0, pad_q if keep.shape[2] > 1 else 0), (0, pad_k)))
    k_chunks = k.reshape(b, -1, kc, h, d).swapaxes(0, 1)  # [K, B, kc, H, D]
    v_chunks = v.reshape(b, -1, kc, h, d).swapaxes(0, 1)
    keep_chunks = keep.reshape(*keep.shape[:3], -1, kc).transpose(3, 0, 1, 2, 4)  # [K, B, 1|H, 1|Nq, kc]

    @jax.checkpoint
    def one_query_chunk(q_chunk, keep_rows):
        # q_chunk [B, qc, H, D]; keep_rows: this chunk's mask rows [K, B, 1|H, 1|qc, kc].
        def step(carry, inputs):
            out, running_max, total = carry
            k_i, v_i, keep_i = inputs
            scores = jnp.einsum("bqhd,bkhd->bhqk", q_chunk, k_i, preferred_element_type=jnp.float32) * scale
            scores = jnp.where(keep_i, scores, -jnp.inf)
            new_max = jnp.maximum(running_max, scores.max(-1))
            safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
            weights = jnp.exp(scores - safe_max[..., None])
            correction = jnp.exp(jnp.where(jnp.isfinite(running_max), running_max, safe_max) - safe_max)
            total = total * correction + weights.sum(-1)
            out = out * correction.transpose(0, 2, 1)[..., None] + jnp.einsum(
                "bhqk,bkhd->bqhd", weights.astype(v_i.dtype), v_i, preferred_element_type=jnp.float32)
            return (out, new_max, total), None

        init = (jnp.zeros((b, qc, h, d), jnp.float32), jnp.full((b, h, qc), -jnp.inf, jnp.float32),
                jnp.zeros((b, h, qc), jnp.float32))
        (out, _, total), _ = jax.lax.scan(step, init, (k_chunks, v_chunks, keep_rows))
        return (out / jnp.maximum(total, 1e-30).transpose(0, 2, 1)[..., None]).astype(q.dtype)

    q_chunks = q.reshape(b, -1, qc, h, d).swapaxes(0, 1)  # [Q, B, qc, H, D]
    if keep_chunks.shape[3] > 1:  # per-query mask rows: cut them with the queries
        rows = keep_chunks.reshape(*keep_chunks.shape[:3], -1, qc, kc).transpose(3, 0, 1, 2, 4, 5)
        out = jax.lax.map(lambda args: one_query_chunk(*args), (q_chunks, rows))
    else:
        out = jax.lax.map(lambda q_chunk: one_query_chunk(q_chunk, keep_chunks), q_chunks)
    return out.swapaxes(0, 1).reshape(b, -1, h, d)[:, :nq]


def cudnn_attention(q, k, v, mask=None):
    """cuDNN's fused flash attention (GPU). Its operands must be 16-bit, so f32 inputs (the `mixed`
    precision) are cast to bf16 and the output cast back. cuDNN takes no broadcast mask: a key
    mask [B, 1, 1, Nk] is passed as per-clip key lengths, so it must be right-padded (a prefix of
    True), as text masks with the null token first are. Shapes cuDNN refuses when traced (e.g. 8k
    queries against 33 text keys) fall back to XLA's attention, which is cheap at such key counts."""
    dtype = q.dtype
    q16, k16, v16 = (x.astype(jnp.bfloat16) if x.dtype not in (jnp.bfloat16, jnp.float16) else x for x in (q, k, v))
    try:
        if mask is None:
            return jax.nn.dot_product_attention(q16, k16, v16, implementation="cudnn").astype(dtype)
        if mask.shape[1:3] != (1, 1):
            raise ValueError(f"cudnn attention takes a key mask [B, 1, 1, Nk], got {mask.shape}")
        lengths = jnp.broadcast_to(jnp.sum(mask[:, 0, 0, :], axis=-1, dtype=jnp.int32), (q.shape[0],))
        q_lengths = jnp.full((q.shape[0],), q.shape[1], jnp.int32)
        return jax.nn.dot_product_attention(q16, k16, v16, query_seq_lengths=q_lengths, key_value_seq_lengths=lengths,
                                            implementation="cudnn").astype(dtype)
    except NotImplementedError:
        return jax.nn.dot_product_attention(q, k, v, mask=mask)


def flash_block(heads: int, keys: int) -> int:
    """Queries per block: FLASH_BLOCK, halved (down to 32) while heads·keys·block > FLASH_MAX_SCORES."""
    block = FLASH_BLOCK
    while block > 32 and heads * keys * block > FLASH_MAX_SCORES:
        block //= 2
    return block


def flash_attention(q, k, v, operand_dtype=None, block: int | None = None):
    """softmax(q·kᵀ/√d)·v [B, N, H, D] with a hand-written backward pass (FlashAttention-2's
    recurrences, blocked over queries): the forward saves only the output and the log-sum-exp of
    each query's scores; the backward recomputes one block of scores at a time. Scores of one
    block of queries against all keys are alive at once, so memory is linear in tokens. Matmul
    operands are `operand_dtype` (bf16 under mixed precision: that is where this CPU's AMX units
    pay) with f32 accumulation; the softmax is f32. No mask (self-attention)."""
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"flash attention takes one dtype for q, k, v; got {q.dtype}, {k.dtype}, {v.dtype}")
    op = jnp.dtype(operand_dtype or q.dtype)
    block = block or flash_block(q.shape[2], k.shape[1])
    return _flash(q, k, v, min(block, q.shape[1]), op)


def _heads_first(x, dtype, scale=None):  # [B, N, H, D] -> [B, H, N, D] in the operand dtype
    if scale is not None:
        x = x.astype(jnp.float32) * scale
    return x.astype(dtype).transpose(0, 2, 1, 3)


def _to_blocks(x, block: int):  # [B, H, N, ...] -> [N / block, B, H, block, ...], N zero-padded
    b, h, n = x.shape[:3]
    x = jnp.pad(x, ((0, 0), (0, 0), (0, -n % block)) + ((0, 0),) * (x.ndim - 3))
    return jnp.moveaxis(x.reshape(b, h, -1, block, *x.shape[3:]), 2, 0)


def _to_operand(x, dtype):
    """f32 -> the matmul operand dtype; to bf16 by rounding half up on the bits (add half of the
    dropped 16 bits' range, keep the top 16): unbiased as round-to-nearest-even is, and unlike XLA's
    CPU convert — a scalar loop that also stops the exp of the same fusion from vectorizing — cheap
    (the bf16 kernel's speed-up: `benchmarks/ab_attention_kernel.py`)."""
    if dtype != jnp.bfloat16 or x.dtype != jnp.float32:
        return x.astype(dtype)
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32) + jnp.uint32(0x8000)
    return jax.lax.bitcast_convert_type((bits >> 16).astype(jnp.uint16), jnp.bfloat16)


def _weights(x, dtype):
    """exp(x) for x ≤ 0 (scores less their max or log-sum-exp), as matmul operands of `dtype`:
    for bf16 — 8 significant bits — through `_exp_cubic`, whose error the rounding dwarfs; f32
    operands keep XLA's exp."""
    return _to_operand(_exp_cubic(x) if dtype == jnp.bfloat16 else jnp.exp(x), dtype)


def _exp_cubic(x):
    """exp(x) for x ≤ 0 within 9e-5 (relative, in f32 arithmetic): x·log₂e = n + f, 2^f from
    EXP2_CUBIC, n added to the exponent bits. Cheaper than XLA's exp, whose accuracy bf16 rounding
    throws away (what it buys the kernel: `benchmarks/ab_attention_kernel.py --baseline=4607e7a`).
    Below 2^-126 it stays at 2^-126 instead of reaching 0, harmless next to weights near 1."""
    scaled = jnp.maximum(x * math.log2(math.e), -126.0)
    whole = jnp.floor(scaled)
    fraction = scaled - whole
    c1, c2, c3 = EXP2_CUBIC
    power = 1.0 + fraction * (c1 + fraction * (c2 + fraction * c3))  # in [1, 2)
    bits = jax.lax.bitcast_convert_type(power, jnp.int32) + (whole.astype(jnp.int32) << 23)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _materialized(x):
    """x written out once in its own (bf16) dtype. Without the barrier XLA fuses the exp and the
    rounding into each consumer — recomputing them there and keeping the f32 copy, which made the
    bf16 kernel slower than a plain cast. f32 operands (nothing to convert) are left to XLA."""
    return x if x.dtype == jnp.float32 else jax.lax.optimization_barrier(x)


def _from_blocks(x, n: int):  # inverse of `_to_blocks`
    blocks, b, h, block = x.shape[:4]
    return jnp.moveaxis(x, 0, 2).reshape(b, h, blocks * block, *x.shape[4:])[:, :, :n]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _flash(q, k, v, block, op):
    return _flash_forward(q, k, v, block, op)[0]


def _flash_forward(q, k, v, block, op):
    n, d = q.shape[1], q.shape[-1]
    qh, kh, vh = _heads_first(q, op, 1.0 / math.sqrt(d)), _heads_first(k, op), _heads_first(v, op)

    def one_block(q_block):
        scores = jnp.einsum("bhqd,bhkd->bhqk", q_block, kh, preferred_element_type=jnp.float32)
        peak = scores.max(-1, keepdims=True)
        # Rounded to the operand dtype where they are made, so XLA writes them once (in bf16 under
        # mixed precision) rather than in f32 and again as a cast; the sum normalizes the rounded
        # weights the matmul uses.
        weights = _materialized(_weights(scores - peak, op))
        total = weights.astype(jnp.float32).sum(-1, keepdims=True)
        out = jnp.einsum("bhqk,bhkd->bhqd", weights, vh, preferred_element_type=jnp.float32) / total
        return out, (peak + jnp.log(total))[..., 0]

    out, lse = jax.lax.map(one_block, _to_blocks(qh, block))
    out = _from_blocks(out, n).transpose(0, 2, 1, 3).astype(q.dtype)
    # The backward pass reuses the scaled, head-first operand copies rather than redoing them.
    return out, (qh, kh, vh, out, _from_blocks(lse, n))


def _flash_backward(block, op, residuals, d_out):
    qh, kh, vh, out, lse = residuals  # out has the inputs' dtype (flash_attention checks they share one)
    b, h, n, d = qh.shape
    scale = 1.0 / math.sqrt(d)
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), -1).transpose(0, 2, 1)  # [B, H, N]
    doh = _heads_first(d_out, op)
    # Keys as the rows of each score block: dV = Pᵀ·dO and dK = dSᵀ·Q are then plain matmuls, and
    # dQᵀ = Kᵀ·dSᵀ is one too with Kᵀ transposed once, outside the loop. XLA's CPU dots run these
    # layouts 4-5x faster than ones contracting a non-minor dimension of the left operand.
    k_transposed = kh.swapaxes(-1, -2)  # [B, H, D, Nk]

    def step(carry, inputs):
        dk, dv = carry
        q_block, do_block, lse_block, delta_block = inputs
        scores = jnp.einsum("bhkd,bhqd->bhkq", kh, q_block, preferred_element_type=jnp.float32)
        weights = _materialized(_weights(scores - lse_block[:, :, None, :], op))  # one pass writes them
        dv = dv + jnp.einsum("bhkq,bhqd->bhkd", weights, do_block, preferred_element_type=jnp.float32)
        d_weights = jnp.einsum("bhkd,bhqd->bhkq", vh, do_block, preferred_element_type=jnp.float32)
        d_scores = _to_operand(weights.astype(jnp.float32) * (d_weights - delta_block[:, :, None, :]), op)
        dk = dk + jnp.einsum("bhkq,bhqd->bhkd", d_scores, q_block, preferred_element_type=jnp.float32)
        dq_transposed = jnp.einsum("bhdk,bhkq->bhdq", k_transposed, d_scores, preferred_element_type=jnp.float32)
        return (dk, dv), dq_transposed

    zeros = jnp.zeros(kh.shape, jnp.float32)
    inputs = tuple(_to_blocks(x, block) for x in (qh, doh, lse, delta))
    (dk, dv), dq_transposed = jax.lax.scan(step, (zeros, zeros), inputs)  # [blocks, B, H, D, block]
    dq = _from_blocks(dq_transposed.swapaxes(-1, -2), n) * scale  # the scale went into q's copy: undo it
    return tuple(x.transpose(0, 2, 1, 3).astype(out.dtype) for x in (dq, dk, dv))


_flash.defvjp(_flash_forward, _flash_backward)


def resolve(implementation: str, backend: str | None = None) -> str:
    """`auto` -> the kernel for `backend` (default: JAX's default backend), logged the first time;
    any other name is returned as given."""
    if implementation != "auto":
        return implementation
    backend = backend or jax.default_backend()
    chosen = BY_BACKEND.get(backend, "xla")
    if (backend, chosen) not in _logged_choices:
        _logged_choices.add((backend, chosen))
        logging.info("attention_implementation=auto: %s on %s", chosen, backend)
    return chosen


def _local(q, k, v, mask, implementation: str, operand_dtype=None):
    if implementation == "splash":
        return splash.splash_attention(q, k, v, mask, operand_dtype)
    if implementation == "chunked":
        return chunked_attention(q, k, v, mask)
    if implementation in ("flash", "flash_jax") and mask is None:
        if implementation == "flash" and _fused_on_cpu(q, k, v, operand_dtype):
            return amx_attention.amx_attention(q, k, v)
        return flash_attention(q, k, v, operand_dtype)
    if implementation == "cudnn":
        return cudnn_attention(q, k, v, mask)
    return jax.nn.dot_product_attention(q, k, v, mask=mask)


def _fused_on_cpu(q, k, v, operand_dtype) -> bool:
    """The fused AMX kernel computes with bf16 operands: used for `flash` when those are asked for
    (mixed precision, or bf16 inputs) and the computation runs on a CPU that has AMX."""
    return (jnp.dtype(operand_dtype or q.dtype) == jnp.bfloat16 and q.dtype == k.dtype == v.dtype
            and jax.default_backend() == "cpu" and amx_attention.supports(q, k, v))


def context_size() -> int:
    mesh = jax.sharding.get_abstract_mesh()
    return dict(zip(mesh.axis_names, mesh.axis_sizes)).get("context", 1) if mesh.axis_names else 1


def attend(q, k, v, mask=None, implementation: str = "xla", operand_dtype=None):
    """[B, N, H, D] attention; context-parallel over the mesh's `context` axis when it has one
    (self-attention without a mask over tokens that split evenly: keys are gathered, queries stay
    sharded; otherwise XLA's own partitioning). `operand_dtype` (the flash and splash kernels'
    matmul operands; bf16 under mixed precision) is ignored by the other kernels. Masked attention
    (cross-attention to a few dozen text tokens, linear in video tokens) runs `flash` as `xla`."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"attention implementation {implementation!r}; valid: {', '.join(IMPLEMENTATIONS)}")
    implementation = resolve(implementation)
    context = context_size()
    if mask is None and context > 1 and q.shape[1] == k.shape[1] and q.shape[1] % context == 0:
        return _context_parallel(q, k, v, implementation, operand_dtype)
    return _local(q, k, v, mask, implementation, operand_dtype)


def _context_parallel(q, k, v, implementation: str, operand_dtype=None):
    mesh = jax.sharding.get_abstract_mesh()
    names = set(mesh.axis_names)
    batch = tuple(a for a in ("data", "fsdp") if a in names) or None
    heads = "tensor" if "tensor" in names else None
    spec = P(batch, "context", heads, None)

    @functools.partial(jax.shard_map, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)
    def per_device(q_local, k_local, v_local):
        k_all = jax.lax.all_gather(k_local, "context", axis=1, tiled=True)
        v_all = jax.lax.all_gather(v_local, "context", axis=1, tiled=True)
        return _local(q_local, k_all, v_all, None, implementation, operand_dtype)

    return per_device(q, k, v)
