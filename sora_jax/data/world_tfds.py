"""What the procedural worlds' tfds builders share: splits made of `make_example(config, split,
index)` for index 0..n-1, generated in this process or, with `beam=True`, as an Apache Beam
PTransform (tfds runs it with `DownloadConfig.beam_runner` / `beam_options`); the records are
the same either way. Only `Tensor` (raw or zlib), `Text` and `ClassLabel` features work without
TensorFlow, so videos are zlib-compressed uint8 tensors."""

from __future__ import annotations

import functools

import tensorflow_datasets as tfds


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
