"""What the procedural worlds' tfds builders share: splits made of `make_example(config, split,
index)` for index 0..n-1, generated in this process or, with `beam=True`, as an Apache Beam
PTransform (tfds runs it with `DownloadConfig.beam_runner` / `beam_options`); the records are
the same either way. Only `Tensor` (raw or zlib), `Text` and `ClassLabel` features work without
TensorFlow, so videos are zlib-compressed uint8 tensors."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = {"train": 0, "validation": 1}


@dataclasses.dataclass
class VariantConfig(tfds.core.BuilderConfig):
    """Sizes, durations and counts of one variant of a world; each example's shape follows from
    its seed alone (so a clip can be re-rendered, or its shape known, without rendering it)."""

    sizes: tuple[tuple[int, int], ...] = ()  # (height, width) per aspect ratio
    durations: tuple[int, ...] = ()  # frames; 1 is an image
    image_fraction: float = 0.25  # share of examples that are single frames
    num_examples: dict[str, int] = dataclasses.field(default_factory=dict)
    salt: str = ""  # prefixes the name in the seeds: no two worlds' examples share one

    def example_seed(self, split: str, index: int) -> list[int]:
        """The seed sequence of one example: distinct per world, variant, split and index."""
        return [sum(map(ord, self.salt + self.name)), SPLIT_SEED[split], index]

    def largest_clip(self) -> tuple[tuple[int, int], int]:
        """((height, width), frames) of the variant's largest size and longest duration."""
        return self.sizes[0], max(self.durations)

    def example_shape(self, seed_sequence: list[int]) -> tuple[int, int, int]:
        rng = np.random.default_rng(seed_sequence)
        height, width = self.sizes[int(rng.integers(len(self.sizes)))]
        videos = [d for d in self.durations if d > 1]
        frames = 1 if rng.random() < self.image_fraction else videos[int(rng.integers(len(videos)))]
        return frames, height, width


def aspect_sizes(short: int, long: int) -> tuple[tuple[int, int], ...]:
    return ((short, long), (short, short), (long, short))  # 16:9, 1:1, 9:16


def find(configs, name: str):
    """The builder config called `name` among `configs`."""
    return next(c for c in configs if c.name == name)


def keyed_example(index: int, make_example, config, split: str) -> tuple[int, dict]:
    return index, make_example(config, split, index)


class WorldBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A world's builder: subclasses set BUILDER_CONFIGS, VERSION, `_info` and `make_example`."""

    make_example = None  # (config, split, index) -> example dict; a plain function, set by the subclass

    def __init__(self, *, beam: bool = False, **kwargs):
        self.beam = beam
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager  # procedural: nothing to download
        return {split: self._generate_examples(split) for split in self.builder_config.num_examples}

    def _generate_examples(self, split: str):
        count = self.builder_config.num_examples[split]
        make = functools.partial(keyed_example, make_example=type(self).make_example, config=self.builder_config,
                                 split=split)
        if self.beam:
            beam = tfds.core.lazy_imports.apache_beam
            return beam.Create(range(count)) | beam.Map(make)
        return (make(index) for index in range(count))
