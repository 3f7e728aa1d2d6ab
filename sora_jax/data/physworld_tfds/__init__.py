"""The `physworld` tfds builder (its own package folder, as tfds expects of a builder)."""

from sora_jax.data.physworld_tfds.builder import Physworld, PhysworldConfig

__all__ = ["Physworld", "PhysworldConfig"]
