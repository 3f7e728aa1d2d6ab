"""A linear layer's matmuls in mixed precision: bf16 operands, f32 accumulation, in the forward
*and* the backward pass — as XLA dots, or on a CPU with AMX as `sora_jax/kernels/amx_matmul.py`'s
tile kernel.

    y = mixed_linear(x, kernel, bias, inputs, jnp.bfloat16)   # f32, differentiable

JAX's own transpose of a bf16-operand dot with an f32 result upcasts the operands and runs both
gradient matmuls in f32 — two thirds of the step's FLOPs at the f32 rate; here the output gradient
is cast to bf16 instead, as mixed-precision training does. The bias gradient sums that bf16 output
gradient (in f32), so the f32 one has no consumer but the cast, which XLA then fuses into the pass
that makes it: one pass less over every linear layer's output gradient (a DiT block 1.03–1.04x,
`docs/architecture.md`).

On one CPU device with AMX, a layer whose three products the kernel takes (`amx_matmul.supports`:
input and output features multiples of 16, at least 64 rows and features) runs all three there —
the forward with its bias added in the kernel, the input gradient dy·Wᵀ and the weight gradient
xᵀ·dy with the transposes done by the kernel's repacking — instead of XLA's bf16 dots, which do
not use AMX (`benchmarks/bench_matmul.py`). Same operands, same f32 accumulation; only the order
of the additions differs. Under several devices the layer stays on XLA's dots, which the SPMD
partitioner knows how to split (a custom call would be gathered whole).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from sora_jax.kernels import amx_matmul


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def mixed_linear(x, kernel, bias, inputs: int, operand_dtype):
    """x [..., I1..Ik] · kernel [I1..Ik, O..] + bias [O..] -> f32 [..., O..] (k = `inputs`) with
    `operand_dtype` operands in both passes."""
    return _mixed_forward(x, kernel, bias, inputs, operand_dtype)[0]


def amx_shapes(x_shape, kernel_shape, inputs: int, operand_dtype) -> tuple[int, int, int] | None:
    """(rows, input features, output features) when this layer's matmuls run on the AMX kernel."""
    lead = len(x_shape) - inputs
    m, i, o = math.prod(x_shape[:lead]), math.prod(kernel_shape[:inputs]), math.prod(kernel_shape[inputs:])
    use = jax.device_count() == 1 and amx_matmul.serves(operand_dtype, (m, i, o), (m, o, i), (i, m, o))
    return (m, i, o) if use else None


def _mixed_forward(x, kernel, bias, inputs, operand_dtype):
    x_op, kernel_op = x.astype(operand_dtype), kernel.astype(operand_dtype)
    dtypes = tuple(jnp.zeros((), a.dtype) for a in (x, kernel, bias))  # the inputs' dtypes ride as 0-d arrays
    lead = x.ndim - inputs
    if shapes := amx_shapes(x.shape, kernel.shape, inputs, operand_dtype):
        m, i, o = shapes
        y = amx_matmul.matmul(x_op.reshape(m, i), kernel_op.reshape(i, o), bias.reshape(o))
        return y.reshape(*x.shape[:lead], *kernel.shape[inputs:]), (x_op, kernel_op, dtypes)
    contract = tuple(range(lead, x.ndim))
    y = jax.lax.dot_general(x_op, kernel_op, ((contract, tuple(range(inputs))), ((), ())),
                            preferred_element_type=jnp.float32)
    return y + bias.astype(jnp.float32), (x_op, kernel_op, dtypes)


def _mixed_backward(inputs, operand_dtype, residuals, dy):
    x_op, kernel_op, (x_like, kernel_like, bias_like) = residuals
    dy = dy.astype(operand_dtype)
    lead = x_op.ndim - inputs
    if shapes := amx_shapes(x_op.shape, kernel_op.shape, inputs, operand_dtype):
        m, i, o = shapes
        x2, kernel2, dy2 = x_op.reshape(m, i), kernel_op.reshape(i, o), dy.reshape(m, o)
        dx = amx_matmul.matmul(dy2, kernel2, transpose_b=True).reshape(x_op.shape)
        dkernel = amx_matmul.matmul(x2, dy2, transpose_a=True).reshape(kernel_op.shape)
    else:
        dx = jax.lax.dot_general(dy, kernel_op, ((tuple(range(lead, dy.ndim)), tuple(range(inputs, kernel_op.ndim))),
                                                 ((), ())), preferred_element_type=jnp.float32)
        dkernel = jax.lax.dot_general(x_op, dy, ((tuple(range(lead)), tuple(range(lead))), ((), ())),
                                      preferred_element_type=jnp.float32)
    dbias = jnp.sum(dy, axis=tuple(range(lead)), dtype=jnp.float32)
    return dx.astype(x_like.dtype), dkernel.astype(kernel_like.dtype), dbias.astype(bias_like.dtype)


mixed_linear.defvjp(_mixed_forward, _mixed_backward)
