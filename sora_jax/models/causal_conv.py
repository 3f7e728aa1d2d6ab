"""Causal 3D convolution over `[B, T, H, W, C]`, one-shot or streamed in temporal chunks.

Causal in time: output frame j sees input frames <= its own position. One-shot calls pad the past
with copies of the first frame. Streaming calls (the `cache` collection mutable) keep the last
`kernel_t - stride_t` input frames between chunks, so chunk-by-chunk output equals the one-shot
output exactly, provided every chunk after the first brings a multiple of `stride_t` frames.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sora_jax.models import initializers


def conv_kernel_init(scale: float = 1.0):
    return nn.with_logical_partitioning(
        initializers.conv_fan_in(scale),
        (None, None, None, "conv_in", "conv_out"),
    )


class CausalConv3d(nn.Module):
    features: int
    kernel: tuple[int, int, int] = (3, 3, 3)
    strides: tuple[int, int, int] = (1, 1, 1)
    init_scale: float = 1.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kt, kh, kw = self.kernel
        st, sh, sw = self.strides
        keep = kt - st  # frames of past context the next chunk needs
        if self.is_mutable_collection("cache") and not self.is_initializing():
            started = self.has_variable("cache", "past")
            if started:
                past = self.get_variable("cache", "past")
                x = jnp.concatenate([past.astype(x.dtype), x], axis=1)
            else:
                x = jnp.concatenate([jnp.repeat(x[:, :1], kt - 1, axis=1), x], axis=1)
            if keep > 0:
                self.put_variable("cache", "past", x[:, x.shape[1] - keep :])
            else:
                self.put_variable("cache", "past", x[:, :0])
        else:
            x = jnp.concatenate([jnp.repeat(x[:, :1], kt - 1, axis=1), x], axis=1)
        # Spatial "same" padding; for stride 2 the extra pixel goes to the end (like TF "SAME").
        pad_h = max(kh - sh, 0)
        pad_w = max(kw - sw, 0)
        padding = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
        kernel = self.param("kernel", conv_kernel_init(self.init_scale), (kt, kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)), (self.features,))
        return _conv_time_taps_as_channels(x.astype(self.dtype), jnp.asarray(kernel, self.dtype), self.strides,
                                           padding) + bias


def _conv_time_taps_as_channels(x, kernel, strides, padding) -> jax.Array:
    """A valid-in-time 3D conv as one 2D conv whose channels stack the `kt` temporal taps.

    XLA's CPU conv3d runs at ~50 GFLOP/s on this machine; the same arithmetic as a 2D conv runs
    at ~170 (`benchmarks/bench_causal_conv.py`). Results agree to float rounding.
    """
    kt, kh, kw, c_in, c_out = kernel.shape
    st, sh, sw = strides
    batch, frames = x.shape[:2]
    out_frames = (frames - kt) // st + 1
    taps = [x[:, i : i + st * (out_frames - 1) + 1 : st] for i in range(kt)]
    stacked = jnp.concatenate(taps, axis=-1) if kt > 1 else taps[0]
    stacked = stacked.reshape(batch * out_frames, *stacked.shape[2:])
    y = jax.lax.conv_general_dilated(
        stacked, kernel.transpose(1, 2, 0, 3, 4).reshape(kh, kw, kt * c_in, c_out),
        window_strides=(sh, sw), padding=padding[1:], dimension_numbers=("NHWC", "HWIO", "NHWC"),
        preferred_element_type=jnp.float32,
    )
    return y.reshape(batch, out_frames, *y.shape[1:])
