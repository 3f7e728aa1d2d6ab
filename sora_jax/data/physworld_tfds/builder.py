"""tfds builder for PhysWorld: ArrayRecord files read back without TensorFlow (`world_tfds`). Each builder config mixes three aspect ratios (16:9, 1:1,
9:16) and several durations, single frames (images) included; every example's shape follows from
its seed, so a clip can be re-rendered from its record alone.

    sora-jax data prepare --dataset=physworld/tiny --data_dir=DIR
    sora-jax data prepare --dataset=physworld/base --data_dir=/mnt/tfds --beam_pipeline_options=runner=DirectRunner,...
    tfds.data_source("physworld/tiny", data_dir=DIR, split="train")
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from sora_jax.data import physworld, world_tfds



@dataclasses.dataclass
class PhysworldConfig(world_tfds.VariantConfig):
    """Sizes, durations and counts of one PhysWorld variant (`world_tfds.VariantConfig`)."""

    world: physworld.WorldConfig = physworld.WorldConfig()


BUILDER_CONFIGS = [
    PhysworldConfig(
        name="tiny", description="32 px short side, up to 17 frames: seconds on a laptop CPU.",
        sizes=world_tfds.aspect_sizes(32, 56), durations=(1, 9, 17),
        num_examples={"train": 2048, "validation": 128},
    ),
    PhysworldConfig(
        name="small", description="64 px short side, up to 33 frames.",
        sizes=world_tfds.aspect_sizes(64, 112), durations=(1, 9, 17, 33),
        num_examples={"train": 8192, "validation": 256},
    ),
    PhysworldConfig(
        name="base", description="128 px short side, up to 33 frames.",
        sizes=world_tfds.aspect_sizes(128, 224), durations=(1, 17, 33),
        num_examples={"train": 16384, "validation": 512},
    ),
]


def variant(name: str) -> PhysworldConfig:
    """The builder config of a variant, e.g. `tiny`."""
    return world_tfds.find(BUILDER_CONFIGS, name)


def make_example(config: PhysworldConfig, split: str, index: int) -> dict[str, np.ndarray | str]:
    seed = config.example_seed(split, index)
    frames, height, width = config.example_shape(seed)
    clip = physworld.render_clip(seed, frames, height, width, config.world)
    truth = clip.truth
    return {
        "video": clip.video,
        "caption": clip.caption,
        "shape": np.array([frames, height, width], np.int32),
        "index": index,
        "centers": np.nan_to_num(truth["centers"], nan=-1.0),
        "boxes": np.nan_to_num(truth["boxes"], nan=-1.0),
        "visible": truth["visible"],
        "trail_mask": truth["trail_mask"].astype(np.uint8),
        "camera_offset": truth["camera_offset"],
        "objects": truth["objects"],
    }


class Physworld(world_tfds.WorldBuilder):
    """PhysWorld: procedural clips with captions and per-frame ground truth. With `beam=True` the
    clips render in an Apache Beam pipeline (tfds runs it with `DownloadConfig.beam_runner` /
    `beam_options`); the records are the same either way."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "2.0.0": "Objects 1.4x larger (WorldConfig.object_scale): a 4x VAE keeps their shapes."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    make_example = staticmethod(make_example)

    def _info(self) -> tfds.core.DatasetInfo:
        max_objects = physworld.MAX_OBJECTS
        features = tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib"),
            "caption": tfds.features.Text(),
            "shape": tfds.features.Tensor(shape=(3,), dtype=np.int32),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
            "centers": tfds.features.Tensor(shape=(None, max_objects, 2), dtype=np.float32),
            "boxes": tfds.features.Tensor(shape=(None, max_objects, 4), dtype=np.float32),
            "visible": tfds.features.Tensor(shape=(None, max_objects), dtype=np.float32),
            "trail_mask": tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8, encoding="zlib"),
            "camera_offset": tfds.features.Tensor(shape=(None,), dtype=np.float32),
            "objects": tfds.features.Tensor(shape=(max_objects, 5), dtype=np.int32),
        })
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__, features=features,
            homepage="https://github.com/sora-jax/sora_jax",
        )


BUILDER = Physworld
