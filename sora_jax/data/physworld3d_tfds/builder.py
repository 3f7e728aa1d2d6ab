"""tfds builder for PhysWorld 3D (`sora_jax/data/physworld3d.py`): ArrayRecord files read back
without TensorFlow (`world_tfds`). Each variant mixes three aspect ratios (16:9, 1:1, 9:16) and
durations of 1 + 8k frames (1 is an image); every example follows from its seed, so a clip can be
re-rendered from its record alone.

    sora-jax data prepare --dataset=physworld3d/tiny --data_dir=DIR
    sora-jax data preview --dataset=physworld3d/tiny --data_dir=DIR --out=out/physworld3d
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from sora_jax.data import physworld3d, world_tfds


@dataclasses.dataclass
class Physworld3dConfig(world_tfds.VariantConfig):
    """Sizes, durations and counts of one PhysWorld 3D variant (`world_tfds.VariantConfig`)."""

    salt: str = "3d"  # its seeds differ from the other worlds'
    image_fraction: float = 0.15
    world: physworld3d.WorldConfig = physworld3d.WorldConfig()


BUILDER_CONFIGS = [
    Physworld3dConfig(
        name="tiny", description="32 px short side, up to 17 frames.",
        sizes=world_tfds.aspect_sizes(32, 56), durations=(1, 9, 17),
        num_examples={"train": 2048, "validation": 128},
    ),
    Physworld3dConfig(
        name="small", description="64 px short side, up to 33 frames.",
        sizes=world_tfds.aspect_sizes(64, 112), durations=(1, 17, 33),
        num_examples={"train": 8192, "validation": 256},
    ),
    Physworld3dConfig(
        name="base", description="128 px short side, up to 33 frames.",
        sizes=world_tfds.aspect_sizes(128, 224), durations=(1, 17, 33),
        num_examples={"train": 16384, "validation": 512},
    ),
]


def variant(name: str) -> Physworld3dConfig:
    """The builder config of a variant, e.g. `tiny`."""
    return world_tfds.find(BUILDER_CONFIGS, name)


def make_example(config: Physworld3dConfig, split: str, index: int) -> dict[str, np.ndarray | str]:
    seed = config.example_seed(split, index)
    frames, height, width = config.example_shape(seed)
    clip = physworld3d.render_clip(seed, frames, height, width, config.world)
    truth = clip.truth
    return {
        "video": clip.video,
        "caption": clip.caption,
        "shape": np.array([frames, height, width], np.int32),
        "index": index,
        "intrinsics": truth["intrinsics"],
        "extrinsics": truth["extrinsics"],
        "centers_3d": np.nan_to_num(truth["centers_3d"], nan=0.0),
        "centers_2d": np.nan_to_num(truth["centers_2d"], nan=-1.0),
        "visible": truth["visible"],
        "depth": truth["depth"].astype(np.float16),
        "shot": truth["shot"],
        "camera_move": np.int32(clip.scene.camera),
        "cut": np.int32(clip.scene.cut),
        "objects": truth["objects"],
    }


class Physworld3d(world_tfds.WorldBuilder):
    """PhysWorld 3D: ray-cast scenes under a moving perspective camera, with captions naming the
    move and the cut, and per frame the cameras, the objects' 3D and projected centers, their
    visibility and depth."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    make_example = staticmethod(make_example)

    def _info(self) -> tfds.core.DatasetInfo:
        n = physworld3d.MAX_OBJECTS
        features = tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib"),
            "caption": tfds.features.Text(),
            "shape": tfds.features.Tensor(shape=(3,), dtype=np.int32),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
            "intrinsics": tfds.features.Tensor(shape=(3, 3), dtype=np.float32),
            "extrinsics": tfds.features.Tensor(shape=(None, 3, 4), dtype=np.float32),
            "centers_3d": tfds.features.Tensor(shape=(None, n, 3), dtype=np.float32),
            "centers_2d": tfds.features.Tensor(shape=(None, n, 2), dtype=np.float32),
            "visible": tfds.features.Tensor(shape=(None, n), dtype=np.float32),
            "depth": tfds.features.Tensor(shape=(None, None, None), dtype=np.float16, encoding="zlib"),
            "shot": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "camera_move": tfds.features.Tensor(shape=(), dtype=np.int32),
            "cut": tfds.features.Tensor(shape=(), dtype=np.int32),
            "objects": tfds.features.Tensor(shape=(n, 5), dtype=np.int32),
        })
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features,
                                     homepage="https://github.com/sora-jax/sora_jax")


BUILDER = Physworld3d
