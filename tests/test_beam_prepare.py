"""Datasets prepared as Apache Beam pipelines (tfds's Beam support, the DirectRunner over two worker
processes) hold the records a plain prepare writes: PhysWorld's splits, and a user's folder imported
as `video_folder/<name>` with its report of skipped files. Records are compared as parsed protos
re-serialized deterministically: tfds writes a record's feature map in an order that differs
between any two processes, Beam or not."""

import glob
import json

import numpy as np
import pytest

from sora_jax.data import pipeline, prepare, video_folder, video_io
from sora_jax.data.physworld_tfds import builder as physworld_builder
from tests.conftest import run_cli
from tests.test_video_folder import DURATIONS, SIZES, _write_good_and_bad

pytest.importorskip("apache_beam")  # the `cluster` extra, installed by `make test`

BEAM = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"


def records(dataset_dir, split: str) -> list[bytes]:
    """A split's records in file order, each as its tf.train.Example serialized with sorted maps."""
    from array_record.python import array_record_data_source
    from tensorflow_datasets.proto import tf_example_pb2

    shards = sorted(glob.glob(str(dataset_dir / f"*-{split}.array_record-*")))
    source = array_record_data_source.ArrayRecordDataSource(shards)
    return [tf_example_pb2.Example.FromString(source[i]).SerializeToString(deterministic=True)
            for i in range(len(source))]


def test_physworld_prepared_with_beam_holds_the_same_records(tmp_path):
    import dataclasses

    config = dataclasses.replace(physworld_builder.variant("tiny"), name="beamtest",
                                 num_examples={"train": 24, "validation": 8})
    plain = prepare.build(physworld_builder.Physworld(config=config, data_dir=str(tmp_path / "plain"),
                                                      file_format="array_record"))
    beam = prepare.build(physworld_builder.Physworld(config=config, data_dir=str(tmp_path / "beam"),
                                                     file_format="array_record", beam=True), BEAM)
    for split, count in config.num_examples.items():
        assert len(records(plain, split)) == count and records(plain, split) == records(beam, split)


def test_a_folder_imported_with_beam_matches_the_plain_import_and_reports_its_skips(tmp_path):
    folder = tmp_path / "my clips"
    folder.mkdir()
    _write_good_and_bad(folder)
    plain = prepare.prepare_folder(str(folder), str(tmp_path / "plain"))
    beam = prepare.prepare_folder(str(folder), str(tmp_path / "beam"), beam_options=BEAM)
    assert plain.parent.name == "my_clips" and plain.parent.parent.name == "video_folder"
    for split in ("train", "validation"):
        assert records(plain, split) and records(plain, split) == records(beam, split)
    report = json.loads((plain / "report.json").read_text())
    assert report == json.loads((beam / "report.json").read_text())
    # The same files usable and skipped, for the same reasons, as the folder read directly.
    direct = video_folder.FolderSource(folder, SIZES, DURATIONS, fps=8)
    assert sum(report["usable"].values()) == len(direct)
    assert sorted(report["skipped_files"]) == sorted([str(p).removeprefix(f"{folder}/"), r] for p, r in direct.skipped)
    # Training reads it as video_folder/<name>: each record cut as `folder:` cuts it, its start drawn
    # from the file's place among the folder's media files.
    source = pipeline.open_source("video_folder/my_clips", str(tmp_path / "plain"), "train")
    items = {str(item.path.relative_to(folder)): item for item in direct.items}
    for position in range(len(source)):
        record = source[position]
        item = items[record["file"].decode()]
        frames, _ = video_io.read_frames(item.path)
        expected = video_folder.clip(item, frames, 8.0, np.random.default_rng([0, int(record["index"]), 0]))
        assert np.array_equal(record["video"], expected["video"]) and record["caption"].decode() == expected["caption"]


def test_cli_imports_a_folder_with_beam_and_refuses_bad_options(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    _write_good_and_bad(folder)
    result = run_cli("data", "prepare", f"--dataset=folder:{folder}", f"--data_dir={tmp_path / 'tfds'}",
                     f"--beam_pipeline_options={BEAM}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--config.data.dataset=video_folder/clips" in result.stdout and "files skipped" in result.stdout
    bad = run_cli("data", "prepare", f"--dataset=folder:{folder}", f"--data_dir={tmp_path / 'other'}",
                  "--beam_pipeline_options=--runner")
    assert bad.returncode == 2 and "is not key=value" in bad.stderr
    missing = run_cli("data", "prepare", f"--dataset=folder:{tmp_path / 'nowhere'}", f"--data_dir={tmp_path / 'o'}")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
