"""The `blockworld` tfds builder (its own package folder, as tfds expects of a builder)."""

from sora_jax.data.blockworld_tfds.builder import Blockworld, BlockworldConfig

__all__ = ["Blockworld", "BlockworldConfig"]
