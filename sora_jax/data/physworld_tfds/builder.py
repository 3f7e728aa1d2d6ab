"""tfds builder for PhysWorld: ArrayRecord files read back without TensorFlow.

Only `Tensor` (raw or zlib), `Text` and `ClassLabel` features work without TensorFlow, so the
video is a zlib-compressed uint8 tensor. Each builder config mixes three aspect ratios (16:9, 1:1,
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

from sora_jax.data import physworld

_SPLIT_SEED = {"train": 0, "validation": 1}


@dataclasses.dataclass
class PhysworldConfig(tfds.core.BuilderConfig):
    """Sizes, durations and counts of one PhysWorld variant."""

    sizes: tuple[tuple[int, int], ...] = ()  # (height, width) per aspect ratio
    durations: tuple[int, ...] = ()  # frames; 1 is an image; video lengths follow T = 1 + 8k
    image_fraction: float = 0.25  # share of examples that are single frames
    num_examples: dict[str, int] = dataclasses.field(default_factory=dict)
    world: physworld.WorldConfig = physworld.WorldConfig()

    def example_shape(self, seed_sequence: list[int]) -> tuple[int, int, int]:
        rng = np.random.default_rng(seed_sequence)
        height, width = self.sizes[int(rng.integers(len(self.sizes)))]
        videos = [d for d in self.durations if d > 1]
        frames = 1 if rng.random() < self.image_fraction else videos[int(rng.integers(len(videos)))]
        return frames, height, width


def _aspect_sizes(short: int, long: int) -> tuple[tuple[int, int], ...]:
    return ((short, long), (short, short), (long, short))  # 16:9, 1:1, 9:16


BUILDER_CONFIGS = [
    PhysworldConfig(
        name="tiny", description="32 px short side, up to 17 frames: seconds on a laptop CPU.",
        sizes=_aspect_sizes(32, 56), durations=(1, 9, 17),
        num_examples={"train": 2048, "validation": 128},
    ),
    PhysworldConfig(
        name="small", description="64 px short side, up to 33 frames.",
        sizes=_aspect_sizes(64, 112), durations=(1, 9, 17, 33),
        num_examples={"train": 8192, "validation": 256},
    ),
    PhysworldConfig(
        name="base", description="128 px short side, up to 33 frames.",
        sizes=_aspect_sizes(128, 224), durations=(1, 17, 33),
        num_examples={"train": 16384, "validation": 512},
    ),
]


def variant(name: str) -> PhysworldConfig:
    """The builder config of a variant, e.g. `tiny`."""
    return next(c for c in BUILDER_CONFIGS if c.name == name)


def largest_clip(name: str) -> tuple[tuple[int, int], int]:
    """((height, width), frames) of a variant's largest size and longest duration, e.g. `tiny`."""
    spec = variant(name)
    return spec.sizes[0], max(spec.durations)


def example_seed(config: PhysworldConfig, split: str, index: int) -> list[int]:
    """The seed sequence of one example: distinct per config, split and index."""
    return [sum(map(ord, config.name)), _SPLIT_SEED[split], index]


def make_example(config: PhysworldConfig, split: str, index: int) -> dict[str, np.ndarray | str]:
    seed = example_seed(config, split, index)
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


class ProceduralSplit:
    """`count` examples of a split: the prepared tfds records (examples 0..n-1, in the order tfds
    shuffled them to), then examples n, n+1, ... rendered from their seeds. Every example is a pure
    function of (config, split, index), so these are the examples a split prepared with `count`
    records would hold: data grows with a run's budget without preparing (or storing) more."""

    def __init__(self, prepared, config: PhysworldConfig, split: str, count: int, prepared_shapes: np.ndarray):
        if count < 1:
            raise ValueError(f"a split needs at least one example, got count={count}")
        self.prepared, self.config, self.split, self.count = prepared, config, split, count
        self.prepared_shapes = np.asarray(prepared_shapes, np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return self.count

    def shapes(self) -> np.ndarray:
        """int [count, 3]: (T, H, W) of every example; past the records, from the seeds alone."""
        rendered = [self.config.example_shape(example_seed(self.config, self.split, i))
                    for i in range(len(self.prepared), self.count)]
        return np.concatenate([self.prepared_shapes[:self.count], np.array(rendered, np.int64).reshape(-1, 3)])

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.count:
            raise IndexError(f"example {index} is outside this split's {self.count}")
        if index < len(self.prepared):
            return self.prepared[index]
        return make_example(self.config, self.split, index)


def keyed_example(index: int, config: PhysworldConfig, split: str) -> tuple[int, dict]:
    return index, make_example(config, split, index)


class Physworld(tfds.core.GeneratorBasedBuilder):
    """PhysWorld: procedural clips with captions and per-frame ground truth. With `beam=True` the
    clips render in an Apache Beam pipeline (tfds runs it with `DownloadConfig.beam_runner` /
    `beam_options`); the records are the same either way."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "2.0.0": "Objects 1.4x larger (WorldConfig.object_scale): a 4x VAE keeps their shapes."}
    BUILDER_CONFIGS = BUILDER_CONFIGS

    def __init__(self, *, beam: bool = False, **kwargs):
        self.beam = beam
        super().__init__(**kwargs)

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

    def _split_generators(self, dl_manager):
        del dl_manager  # procedural: nothing to download
        return {split: self._generate_examples(split) for split in self.builder_config.num_examples}

    def _generate_examples(self, split: str):
        count = self.builder_config.num_examples[split]
        if self.beam:
            beam = tfds.core.lazy_imports.apache_beam
            return beam.Create(range(count)) | beam.Map(keyed_example, self.builder_config, split)
        return (keyed_example(index, self.builder_config, split) for index in range(count))
