"""Diffusion transformer over spacetime patches of the VAE latent.

    model = DiT.from_config(config.model, latent_channels=16)
    v = model.apply({"params": p}, x_t, t_frames, text)   # x_t [B, t, h, w, c], t_frames [B, t]

- Patchify `(pt, ph, pw)` -> tokens; 3D rotary positions (head dim split over t/h/w) on queries
  and keys, so grids never seen in training (other sizes, aspect ratios, durations) just work.
- QK-norm (RMS over the head dim) in self- and cross-attention.
- adaLN-Zero modulation **per latent frame**: the conditioning vector is timestep embedding +
  pooled text, computed per frame, so frames of one clip may carry different timesteps (given
  frames have t = 0).
- Text by cross-attention to the text tokens (plus one learned null token, always visible, so a
  dropped caption is well defined) and pooled text in the modulation.
- Attention layout: `full` spacetime (default) or `factorized` spatial-then-temporal.
- Parameters carry logical axis names (`embed`, `mlp`, `heads`, `kv`); activations are
  constrained to (`act_batch`, `act_tokens`, `act_embed`).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.models import attention as attention_lib
from sora_jax.models import initializers
from sora_jax.models import lora as lora_lib
from sora_jax.models import text as text_lib
from sora_jax.models.mixed_linear import mixed_linear

VARIANTS = {
    "micro": dict(width=64, depth=2, heads=2),
    "tiny": dict(width=192, depth=6, heads=6),
    "small": dict(width=384, depth=12, heads=6),
    "base": dict(width=768, depth=12, heads=12),
    "large": dict(width=1024, depth=24, heads=16),
}
LAYOUTS = ("full", "factorized")
PARAMETRIZATIONS = ("standard", "mup")  # mup: fan-in init here, per-layer LR in models/mup.py
# model.dtype -> (compute dtype, matmul operand dtype). "mixed": bf16 operands with f32 accumulation
# and output (what pays on CPUs with AVX-512 bf16), every other op in f32; params stay f32 always.
DTYPES = {"float32": (jnp.float32, None), "bfloat16": (jnp.bfloat16, None), "mixed": (jnp.float32, jnp.bfloat16)}
# Named rematerialization policies for the transformer blocks (what is kept for the backward pass).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}
ATTENTION_IMPLEMENTATIONS = attention_lib.IMPLEMENTATIONS


class Linear(nn.Module):
    """y = x·W + b over the last `len(axes) - len(features)` input axes, W with logical `axes`.

    (nn.DenseGeneral initializes a flattened 2D kernel, which breaks partitioning metadata of a
    higher-rank kernel, so multi-axis projections are written out here.)"""

    features: tuple[int, ...]
    axes: tuple[str | None, ...]
    zero: bool = False
    dtype: jnp.dtype = jnp.float32  # output (and, unless matmul_dtype is set, operand) dtype
    matmul_dtype: jnp.dtype | None = None  # operands only: bf16 operands, f32 accumulation and output
    lora: lora_lib.LoraSpec | None = None  # a low-rank adapter here when this layer's path is a target
    init_mode: str = "fan_avg"  # kernel variance 1 / mean(fan_in, fan_out) (Glorot), or "fan_in" (μP)

    @nn.compact
    def __call__(self, x):
        inputs = len(self.axes) - len(self.features)
        shape = (*x.shape[x.ndim - inputs :], *self.features)
        init = nn.initializers.zeros if self.zero else initializers.dense(inputs, self.init_mode)
        kernel = self.param("kernel", nn.with_logical_partitioning(init, self.axes), shape)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.axes[inputs:]),
                          tuple(self.features))
        project = functools.partial(_project, dtype=self.dtype, matmul_dtype=self.matmul_dtype)
        y = project(x, kernel, bias, inputs)
        if self.lora is not None and self.lora.applies(self.path):
            y = y + lora_lib.adapter_output(x, shape, inputs, self.lora, self.param, project)
        return y


def _project(x, kernel, bias, inputs: int, dtype, matmul_dtype):
    """x·kernel + bias over x's last `inputs` axes, in a layer's precision."""
    if matmul_dtype is not None:  # "mixed" (dtype f32): bf16 operands in both passes
        return mixed_linear(x, kernel, bias, inputs, matmul_dtype).astype(dtype)
    contract = tuple(range(x.ndim - inputs, x.ndim))
    y = jax.lax.dot_general(x.astype(dtype), kernel.astype(dtype), ((contract, tuple(range(inputs))), ((), ())),
                            preferred_element_type=dtype)
    return y + bias.astype(dtype)


def _dense(features, axes, zero=False, dtype=jnp.float32, matmul_dtype=None, lora=None, init_mode="fan_avg",
           name=None):
    features = (features,) if isinstance(features, int) else tuple(features)
    return Linear(features, tuple(axes), zero, dtype, matmul_dtype, lora, init_mode, name=name)


def constrain(x):
    return nn.with_logical_constraint(x, ("act_batch", "act_tokens", "act_embed"))


# --- patches and positions ------------------------------------------------------------------------


def patchify(x: jax.Array, patch: tuple[int, int, int]) -> jax.Array:
    """[B, t, h, w, c] -> [B, t/pt, h/ph, w/pw, pt·ph·pw·c]."""
    b, t, h, w, c = x.shape
    pt, ph, pw = patch
    x = x.reshape(b, t // pt, pt, h // ph, ph, w // pw, pw, c)
    return x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, t // pt, h // ph, w // pw, pt * ph * pw * c)


def unpatchify(x: jax.Array, patch: tuple[int, int, int], channels: int) -> jax.Array:
    """Inverse of `patchify`."""
    b, gt, gh, gw, _ = x.shape
    pt, ph, pw = patch
    x = x.reshape(b, gt, gh, gw, pt, ph, pw, channels)
    return x.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, gt * pt, gh * ph, gw * pw, channels)


def rope_pairs(head_dim: int) -> tuple[int, int, int]:
    """Rotary frequency pairs given to (t, h, w): h and w a third each, t the rest."""
    if head_dim % 2:
        raise ValueError(f"head dim {head_dim} must be even for rotary positions")
    pairs = head_dim // 2
    return pairs - 2 * (pairs // 3), pairs // 3, pairs // 3


def rope_3d(grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0) -> tuple[jax.Array, jax.Array]:
    """(cos, sin) [T·H·W, head_dim/2] for a token grid; integer positions, so any grid works."""
    angles = []
    for pairs, axis in zip(rope_pairs(head_dim), range(3)):
        positions = np.indices(grid)[axis].reshape(-1).astype(np.float32)
        frequencies = theta ** (-np.arange(pairs, dtype=np.float32) / max(pairs, 1))
        angles.append(positions[:, None] * frequencies[None])
    angles = np.concatenate(angles, axis=1)
    return jnp.asarray(np.cos(angles)), jnp.asarray(np.sin(angles))


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, N, H, D] rotated by position: halves (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[None, :, None].astype(x.dtype), sin[None, :, None].astype(x.dtype)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as DiT): [...] -> [..., dim]."""
    half = dim // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = 1000.0 * t[..., None].astype(jnp.float32) * frequencies
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


# --- layers --------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Over the last axis, with a learned scale (QK-norm)."""

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("kv",)), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32**2, axis=-1, keepdims=True) + 1e-6)
        return (x32 * scale).astype(x.dtype)


attend = attention_lib.attend  # xla | cudnn | chunked | flash; context-parallel under a `context` mesh axis


class SelfAttention(nn.Module):
    heads: int
    dtype: jnp.dtype = jnp.float32
    implementation: str = "xla"
    matmul_dtype: jnp.dtype | None = None
    lora: lora_lib.LoraSpec | None = None
    init_mode: str = "fan_avg"

    @nn.compact
    def __call__(self, x, cos, sin):
        dense = functools.partial(_dense, dtype=self.dtype, matmul_dtype=self.matmul_dtype, lora=self.lora,
                                  init_mode=self.init_mode)
        width = x.shape[-1]
        head_dim = width // self.heads
        qkv = dense((3, self.heads, head_dim), ("embed", None, "heads", "kv"), name="qkv")(x)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q = apply_rope(RMSNorm(name="q_norm")(q), cos, sin)
        k = apply_rope(RMSNorm(name="k_norm")(k), cos, sin)
        out = attend(q, k, v, implementation=self.implementation, operand_dtype=self.matmul_dtype)
        return dense(width, ("heads", "kv", "embed"), name="out")(out)


class CrossAttention(nn.Module):
    heads: int
    dtype: jnp.dtype = jnp.float32
    implementation: str = "xla"
    matmul_dtype: jnp.dtype | None = None
    lora: lora_lib.LoraSpec | None = None
    init_mode: str = "fan_avg"

    @nn.compact
    def __call__(self, x, context, context_mask):
        dense = functools.partial(_dense, dtype=self.dtype, matmul_dtype=self.matmul_dtype, lora=self.lora,
                                  init_mode=self.init_mode)
        width = x.shape[-1]
        head_dim = width // self.heads
        q = dense((self.heads, head_dim), ("embed", "heads", "kv"), name="q")(x)
        kv = dense((2, self.heads, head_dim), ("embed", None, "heads", "kv"), name="kv")(context)
        q, k, v = RMSNorm(name="q_norm")(q), RMSNorm(name="k_norm")(kv[:, :, 0]), kv[:, :, 1]
        out = attend(q, k, v, mask=context_mask[:, None, None, :], implementation=self.implementation)
        return dense(width, ("heads", "kv", "embed"), name="out")(out)


def _modulate(x, shift, scale):
    return x * (1.0 + scale) + shift


class Block(nn.Module):
    """Self-attention (full, or spatial then temporal), cross-attention to text, MLP; adaLN-Zero
    shift/scale/gate per latent frame."""

    heads: int
    mlp_ratio: float = 4.0
    layout: str = "full"
    dtype: jnp.dtype = jnp.float32
    implementation: str = "xla"
    matmul_dtype: jnp.dtype | None = None
    lora: lora_lib.LoraSpec | None = None
    init_mode: str = "fan_avg"

    @nn.compact
    def __call__(self, x, cond, context, context_mask, cos, sin):
        # x [B, T, S, D] (T patch frames, S tokens per frame); cond [B, T, D].
        b, t, s, d = x.shape
        dense = functools.partial(_dense, dtype=self.dtype, matmul_dtype=self.matmul_dtype, lora=self.lora,
                                  init_mode=self.init_mode)
        attentions = 1 if self.layout == "full" else 2
        count = 3 * attentions + 3
        mods = dense(count * d, ("embed", "mlp"), zero=True, name="modulation")(nn.silu(cond))
        mods = jnp.split(mods[:, :, None, :], count, axis=-1)  # each [B, T, 1, D]
        norm = functools.partial(nn.LayerNorm, use_scale=False, use_bias=False, dtype=self.dtype)
        attention = functools.partial(SelfAttention, heads=self.heads, dtype=self.dtype, lora=self.lora,
                                      implementation=self.implementation, matmul_dtype=self.matmul_dtype,
                                      init_mode=self.init_mode)

        def flat(y):
            return constrain(y.reshape(b, t * s, d))

        if self.layout == "full":
            shift, scale, gate = mods[0:3]
            h = attention(name="attention")(flat(_modulate(norm()(x), shift, scale)), cos, sin)
            x = x + gate * h.reshape(b, t, s, d)
        else:
            # Within a group the other axes' positions are constant, so their rotations cancel in
            # q·k: the first group's (cos, sin) serve every group.
            cos4, sin4 = cos.reshape(t, s, -1), sin.reshape(t, s, -1)
            shift, scale, gate = mods[0:3]  # spatial: the tokens of one frame attend to each other
            h = _modulate(norm()(x), shift, scale).reshape(b * t, s, d)
            h = attention(name="spatial_attention")(h, cos4[0], sin4[0])
            x = x + gate * h.reshape(b, t, s, d)
            shift, scale, gate = mods[3:6]  # temporal: one spatial position across frames
            h = _modulate(norm()(x), shift, scale).transpose(0, 2, 1, 3).reshape(b * s, t, d)
            h = attention(name="temporal_attention")(h, cos4[:, 0], sin4[:, 0])
            x = x + gate * h.reshape(b, s, t, d).transpose(0, 2, 1, 3)
        shift, scale, gate = mods[-3:]
        x = x + CrossAttention(heads=self.heads, dtype=self.dtype, implementation=self.implementation,
                               matmul_dtype=self.matmul_dtype, lora=self.lora, init_mode=self.init_mode,
                               name="cross_attention")(
            flat(nn.LayerNorm(dtype=self.dtype, name="cross_norm")(x)), context, context_mask).reshape(b, t, s, d)
        h = flat(_modulate(norm()(x), shift, scale))
        h = dense(int(self.mlp_ratio * d), ("embed", "mlp"), name="mlp_in")(h)
        h = dense(d, ("mlp", "embed"), name="mlp_out")(nn.gelu(h, approximate=True))
        return x + gate * h.reshape(b, t, s, d)


class DiT(nn.Module):
    """Latent `x_t` [B, t, h, w, c] + per-frame timesteps [B, t] + text -> velocity [B, t, h, w, c].

    `text` is a dict: frozen-encoder outputs {"tokens" [B, L, Dt], "mask" [B, L], "pooled" [B, Dt]}
    or, with `text_encoder="bytes"`, {"ids" [B, L], "mask" [B, L]} for the learned byte encoder.
    `text["keep"]` (bool [B], optional) drops the caption where False (classifier-free guidance).
    With `num_actions` > 0, `text["actions"]` (int [B, t], optional) gives an action per latent
    frame — 0 for none given, 1..num_actions an action — embedded and added to the timestep's
    conditioning of its frame (a game's controls, `data/blockworld.py`); `keep` drops them too.
    """

    latent_channels: int
    width: int = 192
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)
    layout: str = "full"
    text_encoder: str = "bytes"
    text_width: int = 128  # the byte encoder's width (frozen encoders bring their own)
    text_length: int = 128
    dtype: jnp.dtype = jnp.float32
    matmul_dtype: jnp.dtype | None = None  # "mixed" precision: bf16 matmul operands, f32 everything else
    remat: str = "none"
    attention_implementation: str = "xla"
    rope_theta: float = 10000.0
    lora: lora_lib.LoraSpec | None = None  # low-rank adapters on the layers it targets (models/lora.py)
    # "standard", or "mup": kernels drawn with variance 1/fan_in (the LR side is the optimizer's,
    # models/mup.py). Attention keeps 1/sqrt(head_dim): head_dim is fixed and width grows by heads.
    parametrization: str = "standard"  # one of PARAMETRIZATIONS
    num_actions: int = 0  # per-latent-frame action conditioning (0: none)
    # > 0: a k x k convolution over each latent frame after the last projection, added to it
    # (zero-initialized: the plain DiT at init). The projection writes each token's patch alone;
    # the convolution lets neighbouring latent pixels agree across patch edges (U-ViT's 3x3
    # output conv). 0: none.
    output_conv: int = 0

    @classmethod
    def from_config(cls, model_config, latent_channels: int, lora_config=None) -> DiT:
        """The DiT of a `model` config section (its values checked by `train/validate.py`), with
        the adapters of a `lora` section when its rank is > 0."""
        dtype, matmul_dtype = DTYPES[model_config.dtype]
        return cls(latent_channels=latent_channels, width=model_config.width, depth=model_config.depth,
                   heads=model_config.heads, mlp_ratio=model_config.mlp_ratio, patch=tuple(model_config.patch),
                   layout=model_config.layout, text_encoder=model_config.text_encoder,
                   text_width=model_config.text_width, text_length=model_config.text_length,
                   dtype=dtype, matmul_dtype=matmul_dtype, remat=model_config.remat,
                   attention_implementation=model_config.attention_implementation,
                   lora=lora_lib.LoraSpec.from_config(lora_config),
                   parametrization=model_config.get("parametrization", "standard"),
                   num_actions=model_config.get("num_actions", 0),
                   output_conv=model_config.get("output_conv", 0))

    def check_latent_shape(self, shape) -> None:
        _, t, h, w, c = shape
        for name, size, p in zip("thw", (t, h, w), self.patch):
            if size % p:
                raise ValueError(f"latent {name}={size} does not divide by the patch size {p} (patch {self.patch})")
        if c != self.latent_channels:
            raise ValueError(f"latent has {c} channels, the DiT expects {self.latent_channels}")

    def tokens(self, latent_shape) -> int:
        """Tokens per sample for a latent shape [.., t, h, w, c]."""
        t, h, w = latent_shape[-4:-1]
        return (t // self.patch[0]) * (h // self.patch[1]) * (w // self.patch[2])

    def dense(self, features, axes, name: str, zero: bool = False) -> Linear:
        """A `Linear` in this model's precision (dtype, matmul operand dtype)."""
        return _dense(features, axes, zero, self.dtype, self.matmul_dtype, self.lora, self.init_mode, name=name)

    @property
    def init_mode(self) -> str:
        return "fan_in" if self.parametrization == "mup" else "fan_avg"

    def _text(self, text: dict):
        if self.text_encoder == "bytes":
            tokens, pooled = text_lib.ByteEncoder(self.text_width, max_length=self.text_length, name="byte_encoder")(
                text["ids"], text["mask"])
        else:
            tokens, pooled = text["tokens"], text["pooled"]
        mask = text["mask"]
        keep = text.get("keep")
        if keep is not None:  # a dropped caption: no text tokens, zero pooled text
            mask = mask & keep[:, None]
            pooled = pooled * keep[:, None].astype(pooled.dtype)
        context = self.dense(self.width, ("vocab", "embed"), name="text_proj")(tokens.astype(self.dtype))
        null = self.param("null_text", nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, "embed")),
                          (1, self.width))
        context = jnp.concatenate([jnp.broadcast_to(null.astype(self.dtype), (context.shape[0], 1, self.width)),
                                   context], axis=1)
        mask = jnp.concatenate([jnp.ones((mask.shape[0], 1), bool), mask], axis=1)
        return context, mask, pooled

    def _actions(self, text: dict, batch: int, frames: int, patch_frames: int):
        """[B, patch frames, width]: each latent frame's action embedded (0, "none given", when the
        batch has no actions or `keep` drops them), averaged over the frames of a patch frame."""
        actions = text.get("actions")
        actions = jnp.zeros((batch, frames), jnp.int32) if actions is None else actions.astype(jnp.int32)
        if text.get("keep") is not None:
            actions = jnp.where(text["keep"][:, None], actions, 0)
        table = self.param("action_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, "embed")),
                           (self.num_actions + 1, self.width))
        embedded = table.astype(self.dtype)[actions]
        return embedded.reshape(batch, patch_frames, -1, self.width).mean(2)

    @nn.compact
    def __call__(self, x, t_frames, text: dict):
        self.check_latent_shape(x.shape)
        b, t, h, w, c = x.shape
        pt, ph, pw = self.patch
        grid = (t // pt, h // ph, w // pw)
        tokens = patchify(x.astype(self.dtype), self.patch)
        tokens = self.dense(self.width, (None, "embed"), name="patch_embed")(tokens)
        tokens = constrain(tokens.reshape(b, -1, self.width))

        # Conditioning per patch frame: timestep (mean over the pt latent frames it holds) + pooled text.
        t_patch = t_frames.reshape(b, grid[0], pt).mean(-1)
        temb = timestep_embedding(t_patch, 256).astype(self.dtype)
        temb = self.dense(self.width, (None, "embed"), name="time_in")(temb)
        temb = self.dense(self.width, ("embed", "mlp"), name="time_out")(nn.silu(temb))
        context, context_mask, pooled = self._text(text)
        pooled = self.dense(self.width, ("vocab", "embed"), name="pooled_proj")(pooled.astype(self.dtype))
        cond = temb + pooled[:, None, :]
        if self.num_actions:
            cond = cond + self._actions(text, b, t, grid[0])

        cos, sin = rope_3d(grid, self.width // self.heads, self.rope_theta)
        block = Block if self.remat == "none" else nn.remat(Block, policy=REMAT_POLICIES[self.remat])
        y = tokens.reshape(b, grid[0], -1, self.width)
        for i in range(self.depth):
            y = block(self.heads, self.mlp_ratio, self.layout, self.dtype, self.attention_implementation,
                      self.matmul_dtype, self.lora, self.init_mode, name=f"block_{i}")(
                y, cond, context, context_mask, cos, sin)

        shift, scale = jnp.split(
            self.dense(2 * self.width, ("embed", "mlp"), zero=True, name="final_modulation")(
                nn.silu(cond))[:, :, None], 2, axis=-1)
        y = _modulate(nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype)(y), shift, scale)
        y = self.dense(pt * ph * pw * c, ("embed", None), zero=True, name="final")(y)
        velocity = unpatchify(y.reshape(b, *grid, -1), self.patch, c).astype(jnp.float32)
        if self.output_conv:
            velocity = velocity + self._output_conv(velocity.reshape(b * t, h, w, c)).reshape(velocity.shape)
        return velocity

    def _output_conv(self, frames):
        """[frames, h, w, c] -> the same: a k x k convolution (SAME padding), zero-initialized."""
        k, c = self.output_conv, frames.shape[-1]
        return nn.Conv(c, (k, k), padding="SAME", dtype=jnp.float32, name="output_conv",
                       kernel_init=nn.with_logical_partitioning(nn.initializers.zeros, (None, None, None, None)),
                       bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (None,)))(frames)
