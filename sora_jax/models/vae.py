"""A causal 3D-conv video autoencoder shared by videos and images (Linen, one file).

Frames follow `T = 1 + k * temporal` and encode to `t = 1 + k` latent frames: the first frame is
compressed alone, so an image (`T = 1`) is a one-frame video and a video's first latent frame is
exactly the latent of its first frame. Normalization is per pixel over channels (RMS, as in Wan's
VAE) so that nothing mixes frames or tiles except the causal convolutions themselves.

    model = VideoVAE.from_variant("tiny", spatial=4, temporal=4, latent_channels=8)
    mean, logvar = model.apply(params, video, method=VideoVAE.encode)   # [B, t, h, w, c]
    video = model.apply(params, mean, method=VideoVAE.decode)            # [B, T, H, W, 3]
"""

from __future__ import annotations

import dataclasses
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from sora_jax.models.causal_conv import CausalConv3d

# channels per level (one down/up stage between consecutive levels), residual blocks per level.
VARIANTS = {
    "micro": dict(channels=(8, 16, 16), blocks=1),
    "tiny": dict(channels=(32, 64, 128), blocks=1),
    "small": dict(channels=(64, 128, 192, 192), blocks=2),
    "base": dict(channels=(128, 256, 384, 384), blocks=2),
}


LOGVAR_OFFSET = -8.0


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels, per pixel and frame: never mixes frames or tiles."""

    epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("conv_out",)), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        return x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.epsilon) * scale


class ResBlock(nn.Module):
    """Two 3x3x3 causal convs, or with `factorized` each one a 1x3x3 spatial conv, a SiLU and a
    3x1x1 temporal conv ((2+1)D, as R(2+1)D): 12 taps per channel pair instead of 27."""

    features: int
    factorized: bool = False
    dtype: jnp.dtype = jnp.float32

    def conv(self, x: jax.Array, init_scale: float = 1.0) -> jax.Array:
        if not self.factorized:
            return CausalConv3d(self.features, init_scale=init_scale, dtype=self.dtype)(x)
        x = nn.silu(CausalConv3d(self.features, kernel=(1, 3, 3), dtype=self.dtype)(x))
        return CausalConv3d(self.features, kernel=(3, 1, 1), init_scale=init_scale, dtype=self.dtype)(x)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv(nn.silu(ChannelRMSNorm()(x)))
        h = self.conv(nn.silu(ChannelRMSNorm()(h)), init_scale=1e-2)
        if x.shape[-1] != self.features:
            x = CausalConv3d(self.features, kernel=(1, 1, 1), dtype=self.dtype)(x)
        return x + h


def _first_chunk(module: nn.Module) -> bool:
    """True unless streaming has already passed this module a chunk (frame 0 is special)."""
    if not (module.is_mutable_collection("cache") and not module.is_initializing()):
        return True
    first = not module.has_variable("cache", "started")
    module.put_variable("cache", "started", jnp.zeros((), jnp.bool_))
    return first


def _fold_time(x: jax.Array, first_chunk: bool) -> jax.Array:
    """Causal time-to-channels: frame pairs (2j-1, 2j) become one frame; frame 0 pairs with itself."""
    if first_chunk:
        head = jnp.concatenate([x[:, :1], x[:, :1]], axis=-1)
        x = x[:, 1:]
    b, t, h, w, c = x.shape
    rest = x.reshape(b, t // 2, 2, h, w, c).transpose(0, 1, 3, 4, 2, 5).reshape(b, t // 2, h, w, 2 * c)
    return jnp.concatenate([head, rest], axis=1) if first_chunk else rest


def _unfold_time(x: jax.Array, first_chunk: bool) -> jax.Array:
    """Inverse of `_fold_time`: channels -> two frames each; frame 0 yields one."""
    b, t, h, w, c = x.shape
    x = x.reshape(b, t, h, w, 2, c // 2).transpose(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, c // 2)
    return x[:, 1:] if first_chunk else x


class MatchChannels(nn.Module):
    """A shortcut's channels to `features`: group means or repeats when the counts divide (no
    parameters, as DC-AE's residual autoencoding), a learned 1x1 conv otherwise."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        if channels % self.features == 0:
            return x.reshape(*x.shape[:-1], self.features, channels // self.features).mean(-1)
        if self.features % channels == 0:
            return jnp.repeat(x, self.features // channels, axis=-1)
        return CausalConv3d(self.features, kernel=(1, 1, 1))(x)


class Downsample(nn.Module):
    """A strided causal conv plus a parameter-free space/time-to-channels shortcut: the block
    starts close to a reshaping, which makes high compression easy to optimize (DC-AE)."""

    features: int
    space: bool
    time: bool
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        first_chunk = _first_chunk(self) if self.time else True
        strides = (2 if self.time else 1, 2 if self.space else 1, 2 if self.space else 1)
        shortcut = _fold_time(x, first_chunk) if self.time else x
        if self.space:
            shortcut = space_to_depth(shortcut, 2)
        return CausalConv3d(self.features, strides=strides,
                            dtype=self.dtype)(x) + MatchChannels(self.features)(shortcut)


class Upsample(nn.Module):
    """Time: channels -> two frames each (the first latent frame yields one). Space: nearest x2.
    Plus the mirror of Downsample's shortcut: channels-to-space/time, repeated to `features`."""

    features: int
    space: bool
    time: bool
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        first_chunk = _first_chunk(self) if self.time else True
        channels = x.shape[-1]
        shortcut = x
        if self.time:
            shortcut = _unfold_time(jnp.repeat(shortcut, 2, axis=-1) if channels % 2 else shortcut, first_chunk)
            x = CausalConv3d(2 * channels, kernel=(3, 1, 1), dtype=self.dtype)(x)
            x = _unfold_time(x, first_chunk)
        if self.space:
            x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)
            if shortcut.shape[-1] % 4:
                shortcut = jnp.repeat(shortcut, 4, axis=-1)
            shortcut = depth_to_space(shortcut, 2)
        return CausalConv3d(self.features, dtype=self.dtype)(x) + MatchChannels(self.features)(shortcut)


def nearest_multiples(side: int, multiple: int) -> list[int]:
    """The valid sizes next to `side` (positive multiples of `multiple`), for error messages."""
    return sorted({max(multiple, side // multiple * multiple), -(-side // multiple) * multiple})


def nearest_frame_counts(frames: int, temporal: int) -> list[int]:
    """The frame counts `1 + k·temporal` next to `frames`, for error messages."""
    return sorted({max(1, 1 + (frames - 1) // temporal * temporal), 1 + -(-(frames - 1) // temporal) * temporal})


def _stages(spatial: int, temporal: int, patch: int) -> tuple[int, int]:
    return int(math.log2(spatial // patch)), int(math.log2(temporal))


def space_to_depth(x: jax.Array, patch: int) -> jax.Array:
    """[B, T, H, W, C] -> [B, T, H/p, W/p, C*p*p]: pixels of a p x p patch become channels."""
    if patch == 1:
        return x
    b, t, h, w, c = x.shape
    x = x.reshape(b, t, h // patch, patch, w // patch, patch, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, h // patch, w // patch, patch * patch * c)


def depth_to_space(x: jax.Array, patch: int) -> jax.Array:
    if patch == 1:
        return x
    b, t, h, w, c = x.shape
    x = x.reshape(b, t, h, w, patch, patch, c // (patch * patch)).transpose(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, h * patch, w * patch, c // (patch * patch))


class Encoder(nn.Module):
    channels: tuple[int, ...]
    blocks: int
    spatial: int
    temporal: int
    latent_channels: int
    patch: int = 1
    factorized: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        space_stages, time_stages = _stages(self.spatial, self.temporal, self.patch)
        h = CausalConv3d(self.channels[0], dtype=self.dtype)(space_to_depth(x, self.patch))
        for level, features in enumerate(self.channels):
            for _ in range(self.blocks):
                h = ResBlock(features, factorized=self.factorized, dtype=self.dtype)(h)
            if level < len(self.channels) - 1:
                h = Downsample(self.channels[level + 1], space=level < space_stages, time=level < time_stages,
                               dtype=self.dtype)(h)
        h = ResBlock(self.channels[-1], factorized=self.factorized, dtype=self.dtype)(h)
        moments = CausalConv3d(2 * self.latent_channels, dtype=self.dtype)(nn.silu(ChannelRMSNorm()(h)))
        return moments + MatchChannels(2 * self.latent_channels)(h)


class Decoder(nn.Module):
    channels: tuple[int, ...]
    blocks: int
    spatial: int
    temporal: int
    patch: int = 1
    factorized: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        space_stages, time_stages = _stages(self.spatial, self.temporal, self.patch)
        h = CausalConv3d(self.channels[-1], dtype=self.dtype)(z) + MatchChannels(self.channels[-1])(z)
        h = ResBlock(self.channels[-1], factorized=self.factorized, dtype=self.dtype)(h)
        for level in reversed(range(len(self.channels))):
            for _ in range(self.blocks):
                h = ResBlock(self.channels[level], factorized=self.factorized, dtype=self.dtype)(h)
            if level > 0:
                stage = level - 1  # mirrors the encoder's down stage between levels stage and level
                h = Upsample(self.channels[level - 1], space=stage < space_stages, time=stage < time_stages,
                             dtype=self.dtype)(h)
        h = nn.silu(ChannelRMSNorm()(h))
        return depth_to_space(CausalConv3d(3 * self.patch**2, dtype=self.dtype)(h), self.patch)


@dataclasses.dataclass(frozen=True)
class Posterior:
    """A diagonal Gaussian over latents `[B, t, h, w, c]`."""

    mean: jax.Array
    logvar: jax.Array

    def sample(self, rng: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(0.5 * self.logvar) * jax.random.normal(rng, self.mean.shape, self.mean.dtype)

    def kl(self) -> jax.Array:
        """KL to N(0, I), mean over elements."""
        return 0.5 * jnp.mean(self.mean**2 + jnp.exp(self.logvar) - 1.0 - self.logvar)


class VideoVAE(nn.Module):
    channels: tuple[int, ...] = VARIANTS["tiny"]["channels"]
    blocks: int = VARIANTS["tiny"]["blocks"]
    spatial: int = 4
    temporal: int = 4
    latent_channels: int = 8
    patch: int = 1  # pixels p x p folded into channels before the first conv (LTX-Video style)
    factorized: bool = False  # (2+1)D residual blocks: spatial then temporal conv
    dtype: jnp.dtype = jnp.float32

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> VideoVAE:
        if variant not in VARIANTS:
            raise ValueError(f"VAE variant {variant!r} is unknown; valid: {sorted(VARIANTS)}")
        return cls(**VARIANTS[variant], **kwargs)

    def __post_init__(self):
        if self.spatial not in (4, 8) or self.temporal not in (1, 2, 4):
            raise ValueError(f"spatial must be 4 or 8 and temporal 1, 2 or 4 (got {self.spatial}, {self.temporal})")
        if self.patch not in (1, 2, 4) or self.patch > self.spatial:
            raise ValueError(f"patch must be 1, 2 or 4 and at most spatial={self.spatial} (got {self.patch})")
        space_stages, time_stages = _stages(self.spatial, self.temporal, self.patch)
        if len(self.channels) - 1 < max(space_stages, time_stages):
            raise ValueError(f"{len(self.channels) - 1} down stages cannot compress {self.spatial}x / {self.temporal}x")
        if not 4 <= self.latent_channels <= 16:
            raise ValueError(f"latent_channels must be in 4..16 (got {self.latent_channels})")
        super().__post_init__()

    def setup(self):
        self.encoder = Encoder(self.channels, self.blocks, self.spatial, self.temporal, self.latent_channels,
                               self.patch, self.factorized, self.dtype)
        self.decoder = Decoder(self.channels, self.blocks, self.spatial, self.temporal, self.patch, self.factorized,
                               self.dtype)

    def check_video_shape(self, shape: tuple[int, ...]) -> None:
        """Raises a ValueError naming the rule when `[B, T, H, W, 3]` cannot be encoded."""
        if len(shape) != 5 or shape[-1] != 3:
            raise ValueError(f"video must be [B, T, H, W, 3], got {tuple(shape)}")
        frames, height, width = shape[1:4]
        if (frames - 1) % self.temporal:
            valid = nearest_frame_counts(frames, self.temporal)
            raise ValueError(f"frames={frames} breaks T = 1 + k*{self.temporal}; nearest valid: {valid}")
        for name, side in (("height", height), ("width", width)):
            if side % self.spatial:
                valid = nearest_multiples(side, self.spatial)
                raise ValueError(f"{name}={side} is not divisible by the VAE's {self.spatial}x; nearest valid: {valid}")

    def latent_shape(self, video_shape: tuple[int, ...]) -> tuple[int, ...]:
        batch, frames, height, width, _ = video_shape
        return (batch, 1 + (frames - 1) // self.temporal, height // self.spatial, width // self.spatial,
                self.latent_channels)

    def encode(self, video: jax.Array) -> Posterior:
        """video [B, T, H, W, 3] in [-1, 1] -> posterior over [B, t, h, w, c]."""
        streaming = self.is_mutable_collection("cache") and not self.is_initializing()
        if not streaming:  # a streamed chunk after the first holds k * temporal frames, by design
            self.check_video_shape(video.shape)
        moments = self.encoder(video)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        # Start near a deterministic autoencoder (posterior std e^-4): with logvar ~ 0 at init the
        # decoder sees mostly noise and spends hundreds of steps learning the mean frame first.
        return Posterior(mean, jnp.clip(logvar + LOGVAR_OFFSET, -30.0, 20.0))

    def encode_mean(self, video: jax.Array) -> jax.Array:
        """The posterior mean: the deterministic latent used for caching and evaluation."""
        return self.encode(video).mean

    def decode(self, latents: jax.Array) -> jax.Array:
        """latents [B, t, h, w, c] -> video [B, 1 + (t-1)*temporal, H, W, 3]."""
        chex.assert_rank(latents, 5)
        return self.decoder(latents)

    def __call__(self, video: jax.Array, rng: jax.Array | None = None) -> tuple[jax.Array, Posterior]:
        posterior = self.encode(video)
        latents = posterior.mean if rng is None else posterior.sample(rng)
        return self.decode(latents), posterior
