"""tfds builder for a user's folder of videos and images: decoded, resampled and bucketed once,
written as ArrayRecord, with a report of every skipped file and why.

    sora-jax data prepare --dataset=folder:my_clips --data_dir=DIR            # -> video_folder/my_clips
    sora-jax data prepare --dataset=folder:/mnt/clips --data_dir=/mnt/tfds \\
        --beam_pipeline_options=runner=FlinkRunner,flink_master=HOST:8081,environment_type=LOOPBACK
    sora-jax train ... --config.data.dataset=video_folder/my_clips --config.data.data_dir=DIR

The folder's rules are `video_folder.py`'s (sidecar `.txt` or `captions.jsonl` captions, the
bucket nearest each file's aspect ratio, the longest bucket duration it fills at the target frame
rate); each record is cut as `folder:<path>` cuts a clip, its start drawn from (seed, the file's
place among the folder's media files, epoch 0). Every `holdout_every`-th
media file (in sorted order) goes to the `validation` split, the rest to `train`. With
`beam=True` the files are decoded in an Apache Beam pipeline (any runner); the records are the
same either way. Skipped files are written by whichever worker met them to `skipped_dir`, one JSON
each, and gathered into `report.json` by `sora_jax/data/prepare.py`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sora_jax.data import video_folder

SPLITS = ("train", "validation")


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
    """One folder: where it is and the buckets its clips are cut to."""

    folder: str = ""
    sizes: tuple[tuple[int, int], ...] = ()  # (height, width) buckets
    durations: tuple[int, ...] = ()  # frames; 1 is an image
    fps: float = 8.0
    seed: int = 0  # draws each clip's start frame
    holdout_every: int = 20  # every N-th media file -> validation


def holdout_period(files: int, holdout_every: int) -> int:
    """Every N-th file is held out; fewer files than N hold out the last one."""
    if files < 2:
        raise ValueError(f"a folder dataset needs at least 2 videos or images (a train and a validation clip), "
                         f"found {files}")
    return min(holdout_every, files)


def split_of(index: int, every: int) -> str:
    return "validation" if index % every == every - 1 else "train"


def import_file(entry: tuple[int, str], config: FolderConfig, captions: dict[str, str],
                skipped_dir: str) -> list[tuple[int, dict]]:
    """One media file -> [(index, record)], or [] with its reason written to `skipped_dir`."""
    index, name = entry
    folder = pathlib.Path(config.folder)
    probed = video_folder.probe(folder / name, folder, captions, config.sizes, config.durations, config.fps)
    if isinstance(probed, str):
        skip(skipped_dir, index, name, probed)
        return []
    item, frames = probed
    record = video_folder.clip(item, frames, config.fps, np.random.default_rng([config.seed, index, 0]))
    return [(index, {**record, "file": name, "index": index})]


def skip(skipped_dir: str, index: int, name: str, reason: str) -> None:
    path = epath.Path(skipped_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{index:09d}.json").write_text(json.dumps({"file": name, "reason": reason}))


class VideoFolder(tfds.core.GeneratorBasedBuilder):
    """A folder of the user's clips and captions (a `FolderConfig` per folder)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}

    def __init__(self, *, skipped_dir: str, beam: bool = False, **kwargs):
        self.skipped_dir, self.beam = skipped_dir, beam
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib"),
            "caption": tfds.features.Text(),
            "shape": tfds.features.Tensor(shape=(3,), dtype=np.int32),
            "file": tfds.features.Text(),  # relative to the folder
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
        })
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features)

    def _split_generators(self, dl_manager):
        del dl_manager  # the folder is local or on a filesystem the workers share
        config = self.builder_config
        folder = pathlib.Path(config.folder)
        unsupported = []
        files = video_folder.media_files(folder, lambda path, reason: unsupported.append((path, reason)))
        for number, (path, reason) in enumerate(unsupported):
            skip(self.skipped_dir, -1 - number, str(path.relative_to(folder)), reason)
        every = holdout_period(len(files), config.holdout_every)
        entries = [(index, str(path.relative_to(folder))) for index, path in enumerate(files)]
        captions = video_folder.jsonl_captions(folder)
        return {split: self._generate_examples([e for e in entries if split_of(e[0], every) == split],
                                               captions) for split in SPLITS}

    def _generate_examples(self, entries: list[tuple[int, str]], captions: dict[str, str]):
        config, skipped_dir = self.builder_config, self.skipped_dir
        if self.beam:
            beam = tfds.core.lazy_imports.apache_beam
            return (beam.Create(entries) | beam.Reshuffle()
                    | beam.FlatMap(import_file, config, captions, skipped_dir))
        return (record for entry in entries for record in import_file(entry, config, captions, skipped_dir))
