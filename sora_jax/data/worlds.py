"""The procedural worlds: tfds datasets (`physworld/<variant>`, `physworld3d/<variant>`,
`blockworld/<variant>`) whose every example is a pure function of (variant, split, index), so a
run can read more clips than were prepared — those past the records render from their seeds
(`ProceduralSplit`).

    worlds.is_world("blockworld/tiny")          # True
    worlds.builder_module("physworld/tiny")     # its tfds builder module: variant(), make_example(), ...
    worlds.NAMES                                # every world/variant, for error messages

Each builder module exposes `BUILDER_CONFIGS` (`world_tfds.VariantConfig`s: sizes, durations,
counts, `example_seed(split, index)`, `largest_clip()`), `variant(name)`, `make_example(config,
split, index)` and `BUILDER` (its `tfds.core.GeneratorBasedBuilder` class, taking `beam=`).
"""

from __future__ import annotations

import importlib

import numpy as np

MODULES = {"physworld": "sora_jax.data.physworld_tfds.builder", "blockworld": "sora_jax.data.blockworld_tfds.builder",
           "physworld3d": "sora_jax.data.physworld3d_tfds.builder"}
VARIANTS = {"physworld": ("tiny", "small", "base"), "blockworld": ("tiny", "small"),
            "physworld3d": ("tiny", "small", "base")}
NAMES = tuple(f"{world}/{variant}" for world, variants in VARIANTS.items() for variant in variants)


def is_world(dataset: str) -> bool:
    """Whether `dataset` names a procedural world (any variant; `variant` checks the name)."""
    return dataset.partition("/")[0] in MODULES


def builder_module(dataset: str):
    """The builder module of `<world>/<variant>` (registering its tfds builder)."""
    world = dataset.partition("/")[0]
    if world not in MODULES:
        raise ValueError(f"{dataset!r} is not a procedural world; valid: {', '.join(NAMES)}")
    return importlib.import_module(MODULES[world])


def variant(dataset: str):
    """The builder config of `<world>/<variant>`, e.g. `blockworld/tiny`."""
    if dataset not in NAMES:
        raise ValueError(f"no world {dataset!r}; valid: {', '.join(NAMES)}")
    return builder_module(dataset).variant(dataset.partition("/")[2])


class ProceduralSplit:
    """`count` examples of a world's split: the prepared tfds records (examples 0..n-1, in the
    order tfds shuffled them to), then examples n, n+1, ... rendered from their seeds. Every
    example is a pure function of (config, split, index), so these are the examples a split
    prepared with `count` records would hold: data grows with a run's budget without preparing
    (or storing) more."""

    def __init__(self, prepared, dataset: str, split: str, count: int, prepared_shapes: np.ndarray):
        if count < 1:
            raise ValueError(f"a split needs at least one example, got count={count}")
        self.module, self.config = builder_module(dataset), variant(dataset)
        self.prepared, self.split, self.count = prepared, split, count
        self.prepared_shapes = np.asarray(prepared_shapes, np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return self.count

    def shapes(self) -> np.ndarray:
        """int [count, 3]: (T, H, W) of every example; past the records, from the seeds alone."""
        rendered = [self.config.example_shape(self.config.example_seed(self.split, i))
                    for i in range(len(self.prepared), self.count)]
        return np.concatenate([self.prepared_shapes[:self.count], np.array(rendered, np.int64).reshape(-1, 3)])

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.count:
            raise IndexError(f"example {index} is outside this split's {self.count}")
        if index < len(self.prepared):
            return self.prepared[index]
        return self.module.make_example(self.config, self.split, index)
