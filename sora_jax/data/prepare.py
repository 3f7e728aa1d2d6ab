"""Preparing datasets on disk (PhysWorld's splits, a user's folder of clips), locally or as an
Apache Beam pipeline, and reading their first examples (for previews and tests).

    prepare("physworld/small", "data/tfds")
    prepare("physworld/base", "/mnt/tfds", beam_options="runner=DirectRunner,direct_num_workers=16")
    prepare("folder:my_clips", "data/tfds")   # -> video_folder/my_clips, with report.json

`beam_options` is tfds's `--beam_pipeline_options` format (comma-separated key=value, without
dashes); any value, `runner=DirectRunner` included, makes the builder a Beam pipeline.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil

from sora_jax.data import pipeline, worlds


def prepare(dataset: str, data_dir: str, beam_options: str = "", buckets: str = "physworld/tiny",
            fps: float = 8.0) -> pathlib.Path:
    """Builds a world (`physworld/<config>`, `blockworld/<config>`; or imports `folder:<path>` as `video_folder/<name>`, cut to the
    sizes and durations of `buckets`) as ArrayRecord under `data_dir`; a no-op when already there."""
    if dataset.startswith("folder:"):
        return prepare_folder(dataset.removeprefix("folder:"), data_dir, beam_options, buckets, fps)
    if dataset not in worlds.NAMES:
        raise ValueError(f"cannot prepare {dataset!r}: expected {', '.join(worlds.NAMES)} or folder:<path>")
    builder = worlds.builder_module(dataset)
    return build(builder.BUILDER(config=dataset.partition("/")[2], data_dir=data_dir, file_format="array_record",
                                 beam=bool(beam_options)), beam_options)


def build(dataset_builder, beam_options: str = "") -> pathlib.Path:
    """Runs a builder made by `prepare` (or a test, with its own builder config)."""
    dataset_builder.download_and_prepare(download_config=download_config(beam_options))
    return pathlib.Path(dataset_builder.data_dir)


def download_config(beam_options: str):
    """tfds's DownloadConfig carrying the Beam pipeline options; None without Beam."""
    if not beam_options:
        return None
    import os

    import tensorflow_datasets as tfds

    # Beam's workers talk gRPC; with its fork handlers on, the ffmpeg children they fork to decode
    # videos fail now and then ("Could not load meta information"). Set before Beam starts gRPC.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    try:
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise ValueError("--beam_pipeline_options needs Apache Beam: pip install -e '.[cluster]'") from None
    pairs = [pair.strip() for pair in beam_options.split(",") if pair.strip()]
    for pair in pairs:
        if "=" not in pair or pair.startswith("-"):
            raise ValueError(f"--beam_pipeline_options: {pair!r} is not key=value (e.g. runner=DirectRunner,"
                             f"direct_num_workers=4)")
    return tfds.download.DownloadConfig(beam_options=PipelineOptions([f"--{pair}" for pair in pairs]))


def folder_name(folder: str) -> str:
    """`video_folder/<name>`: the folder's base name, as a tfds config name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", pathlib.PurePath(folder.rstrip("/")).name) or "folder"


def prepare_folder(folder: str, data_dir: str, beam_options: str = "", buckets: str = "physworld/tiny",
                   fps: float = 8.0) -> pathlib.Path:
    """Imports a folder of videos and images as the tfds dataset `video_folder/<name>`; writes
    `report.json` beside its records: usable clips per split, every skipped file and why. On a
    Beam cluster the folder must be a path every worker sees (a shared or FUSE-mounted disk)."""
    from etils import epath

    from sora_jax.data.folder_tfds import builder

    if not pathlib.Path(folder).is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    sizes, durations = pipeline.physworld_buckets(buckets)
    name = folder_name(folder)
    config = builder.FolderConfig(name=name, folder=str(pathlib.Path(folder).resolve()), sizes=tuple(sizes),
                                  durations=tuple(durations), fps=fps,
                                  description=f"{folder}, cut to {buckets}'s buckets at {fps} fps")
    skipped_dir = epath.Path(data_dir) / "video_folder" / f"{name}.skipped"
    if skipped_dir.exists():  # left by an interrupted import
        skipped_dir.rmtree()
    folder_builder = builder.VideoFolder(config=config, data_dir=data_dir, file_format="array_record",
                                         beam=bool(beam_options), skipped_dir=str(skipped_dir))
    prepared = pathlib.Path(folder_builder.data_dir)
    if (prepared / "report.json").exists():
        return prepared
    build(folder_builder, beam_options)
    skipped = [json.loads(path.read_text()) for path in sorted(skipped_dir.glob("*.json"))] \
        if skipped_dir.exists() else []
    report = {"folder": folder, "dataset": f"video_folder/{name}", "buckets": buckets, "fps": fps,
              "usable": {split: info.num_examples for split, info in folder_builder.info.splits.items()},
              "skipped": len(skipped), "skipped_files": [[entry["file"], entry["reason"]] for entry in skipped]}
    (prepared / "report.json").write_text(json.dumps(report, indent=1))
    if skipped_dir.exists():
        skipped_dir.rmtree()
    return prepared


def first_examples(dataset: str, data_dir: str, split: str, count: int) -> list[dict]:
    source = pipeline.open_source(dataset, data_dir, split)
    return [source[i] for i in range(min(count, len(source)))]
