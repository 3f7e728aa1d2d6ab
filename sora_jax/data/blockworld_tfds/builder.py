"""tfds builder for BlockWorld (`sora_jax/data/blockworld.py`): ArrayRecord files read back
without TensorFlow (`world_tfds`). Each variant mixes three aspect ratios (16:9, 1:1, 9:16) and
durations of 1 + 4k frames (an action per 4 frames; 1 is an image); every example follows from
its seed, so a clip can be re-rendered from its record alone.

    sora-jax data prepare --dataset=blockworld/tiny --data_dir=DIR
    sora-jax data preview --dataset=blockworld/tiny --data_dir=DIR --out=out/blockworld
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from sora_jax.data import blockworld, world_tfds

# Ground-truth arrays are padded to these (a 9:16 tiny clip has 14 rows; a world is 3 views wide).
MAX_ROWS, MAX_COLS = 16, 48


@dataclasses.dataclass
class BlockworldConfig(world_tfds.VariantConfig):
    """Sizes, durations and counts of one BlockWorld variant (`world_tfds.VariantConfig`)."""

    salt: str = "block"  # its seeds differ from the other worlds'
    image_fraction: float = 0.15
    world: blockworld.WorldConfig = blockworld.WorldConfig()


BUILDER_CONFIGS = [
    BlockworldConfig(
        name="tiny", description="32 px short side (4 px blocks), up to 33 frames (8 actions).",
        sizes=world_tfds.aspect_sizes(32, 56), durations=(1, 17, 33),
        num_examples={"train": 2048, "validation": 128},
    ),
    BlockworldConfig(
        name="small", description="64 px short side (8 px blocks), up to 33 frames (8 actions).",
        sizes=world_tfds.aspect_sizes(64, 112), durations=(1, 17, 33),
        num_examples={"train": 8192, "validation": 256},
    ),
]


def variant(name: str) -> BlockworldConfig:
    """The builder config of a variant, e.g. `tiny`."""
    return world_tfds.find(BUILDER_CONFIGS, name)


def make_example(config: BlockworldConfig, split: str, index: int) -> dict[str, np.ndarray | str]:
    seed = config.example_seed(split, index)
    frames, height, width = config.example_shape(seed)
    clip = blockworld.render_clip(seed, frames, height, width, config.world)
    truth = clip.truth
    grids = np.zeros((frames, MAX_ROWS, MAX_COLS), np.uint8)
    _, rows, cols = truth["grid"].shape
    grids[:, :rows, :cols] = truth["grid"]
    return {
        "video": clip.video,
        "caption": clip.caption,
        "shape": np.array([frames, height, width], np.int32),
        "index": index,
        "actions": truth["action"].astype(np.int32),
        "player": truth["player"],
        "facing": truth["facing"].astype(np.int32),
        "camera": truth["camera"].astype(np.int32),
        "grid": grids,
        "grid_shape": np.array([rows, cols], np.int32),
    }


class Blockworld(world_tfds.WorldBuilder):
    """BlockWorld: a side-view block game — clips, captions naming the actions, and per frame the
    player's position, the block grid, the camera and the action."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    make_example = staticmethod(make_example)

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib"),
            "caption": tfds.features.Text(),
            "shape": tfds.features.Tensor(shape=(3,), dtype=np.int32),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
            "actions": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "player": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
            "facing": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "camera": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "grid": tfds.features.Tensor(shape=(None, MAX_ROWS, MAX_COLS), dtype=np.uint8, encoding="zlib"),
            "grid_shape": tfds.features.Tensor(shape=(2,), dtype=np.int32),
        })
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features,
                                     homepage="https://github.com/sora-jax/sora_jax")


BUILDER = Blockworld
