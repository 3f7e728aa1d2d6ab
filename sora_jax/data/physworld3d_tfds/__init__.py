"""The `physworld3d` tfds builder (its own package folder, as tfds expects of a builder)."""

from sora_jax.data.physworld3d_tfds.builder import Physworld3d, Physworld3dConfig

__all__ = ["Physworld3d", "Physworld3dConfig"]
