"""Kernel initializers whose random draws XLA compiles quickly: draw a matrix, then reshape.

JAX's default (partitionable) threefry numbers every element by its flattened index, so drawing a
kernel as a `[fan_in, fan_out]` matrix and reshaping it gives bit-identical values. XLA's CPU
compiler, though, is slow on the index arithmetic of many-axis shapes and superlinear in their
number: one jitted program drawing the micro VAE's 70 parameters compiled in 101 s at their own
shapes against 8 s as matrices (`benchmarks/bench_init_compile.py`, on a loaded machine), and
the VAE's jitted init is such a program.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def matrix_drawn(init: Initializer, inputs: int) -> Initializer:
    """`init` applied to the `[prod(shape[:inputs]), prod(shape[inputs:])]` matrix, reshaped back.

    Equal to `init(key, shape)` bit for bit when `init`'s scale depends on the shape only through
    fans that the matrix keeps: `fan_in` of a conv kernel (receptive field x input channels), and
    any mode of a dense kernel whose axes are inputs then outputs (`in_axis`/`out_axis` covering
    them all). `fan_out`/`fan_avg` of a conv kernel would change; use `init` itself there.
    """

    def drawn(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        matrix = (math.prod(shape[:inputs]), math.prod(shape[inputs:]))
        return init(key, matrix, dtype).reshape(shape)

    return drawn


def conv_fan_in(scale: float = 1.0) -> Initializer:
    """Truncated normal with variance `scale / fan_in` for `[kt, kh, kw, in, out]` kernels."""
    return matrix_drawn(nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal"), inputs=4)


def dense(inputs: int, mode: str = "fan_avg") -> Initializer:
    """Uniform with variance `1 / mean(fan_in, fan_out)` (Glorot; mode `fan_avg`) or `1 / fan_in`
    (`fan_in`: μP's, whose input layers keep unit-scale outputs at any width) for a kernel whose
    first `inputs` axes are contracted with the input."""
    return matrix_drawn(nn.initializers.variance_scaling(1.0, mode, "uniform"), inputs=inputs)
