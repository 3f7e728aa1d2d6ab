"""Preparing datasets on disk and reading their first examples (for previews and tests)."""

from __future__ import annotations

import pathlib

from sora_jax.data import pipeline


def prepare(dataset: str, data_dir: str) -> pathlib.Path:
    """Builds `physworld/<config>` as ArrayRecord under `data_dir`; a no-op when already there."""
    name, _, config = dataset.partition("/")
    if name != "physworld" or not config:
        raise ValueError(f"cannot prepare {dataset!r}: expected physworld/<tiny|small|base>")
    from sora_jax.data.physworld_tfds import builder

    names = [c.name for c in builder.BUILDER_CONFIGS]
    if config not in names:
        raise ValueError(f"physworld has no config {config!r}; valid: {names}")
    physworld_builder = builder.Physworld(config=config, data_dir=data_dir, file_format="array_record")
    physworld_builder.download_and_prepare()
    return pathlib.Path(physworld_builder.data_dir)


def first_examples(dataset: str, data_dir: str, split: str, count: int) -> list[dict]:
    source = pipeline.open_source(dataset, data_dir, split)
    return [source[i] for i in range(min(count, len(source)))]
