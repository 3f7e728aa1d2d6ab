"""The user's folder: good files feed the pipeline; broken ones are skipped, counted and named."""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest

from sora_jax.configs import vae
from sora_jax.data import physworld, pipeline, video_folder, video_io

SIZES = ((32, 56), (32, 32), (56, 32))
DURATIONS = (1, 9, 17)


def _write_good_and_bad(folder):
    clip = physworld.render_clip(1, 24, 48, 80).video
    video_io.write_video(folder / "good.mp4", clip, fps=8)
    (folder / "good.txt").write_text("a red circle bounces")
    video_io.write_video(folder / "tall.gif", physworld.render_clip(2, 12, 90, 40).video, fps=8)
    video_io.write_video(folder / "vidéo clip ünïcode.mp4", clip[:10], fps=8)
    (folder / "vidéo clip ünïcode.txt").write_text("unicode name with spaces")
    iio.imwrite(folder / "photo.png", clip[0])
    iio.imwrite(folder / "gray.png", clip[0, ..., 0])
    iio.imwrite(folder / "alpha.png", np.concatenate([clip[0], np.full((48, 80, 1), 200, np.uint8)], -1))
    video_io.write_video(folder / "one_frame.mp4", clip[:1], fps=8)
    (folder / "long.png").write_bytes((folder / "photo.png").read_bytes())
    (folder / "long.txt").write_text("x" * 10000)
    (folder / "latin1.png").write_bytes((folder / "photo.png").read_bytes())
    (folder / "latin1.txt").write_bytes("caf\xe9 sc\xe8ne".encode("latin-1"))
    for name in ["gray", "alpha", "one_frame", "photo"]:
        (folder / f"{name}.txt").write_text(f"caption of {name}")
    lines = [{"file": "tall.gif", "caption": "a tall gif"}, {"file": "truncated.mp4", "caption": "cut"},
             {"file": "empty.mp4", "caption": "nothing"}, {"file": "text.mp4", "caption": "not a video"},
             {"file": "huge.png", "caption": "absurd"}, {"file": "locked.mp4", "caption": "locked"}]
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    data = (folder / "good.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not an mp4")
    iio.imwrite(folder / "huge.png", np.zeros((2, 9000, 3), np.uint8))
    (folder / "nocaption.png").write_bytes((folder / "photo.png").read_bytes())
    (folder / "emptycaption.png").write_bytes((folder / "photo.png").read_bytes())
    (folder / "emptycaption.txt").write_text("   \n")
    (folder / "notes.xyz").write_text("?")
    (folder / "locked.mp4").write_bytes(data)
    os.chmod(folder / "locked.mp4", 0)  # root can still read it; either way nothing crashes


def test_broken_files_are_skipped_counted_and_named(tmp_path):
    _write_good_and_bad(tmp_path)
    source = video_folder.FolderSource(tmp_path, SIZES, DURATIONS, fps=8)
    usable = {item.path.name for item in source.items}
    skipped = {os.path.basename(path): reason for path, reason in source.skipped}
    assert {"good.mp4", "tall.gif", "vidéo clip ünïcode.mp4", "photo.png", "gray.png", "alpha.png",
            "one_frame.mp4", "long.png", "latin1.png"} <= usable
    assert {"truncated.mp4", "empty.mp4", "text.mp4", "huge.png", "nocaption.png", "emptycaption.png",
            "notes.xyz"} <= set(skipped)
    assert "empty" in skipped["empty.mp4"] and "out of range" in skipped["huge.png"]
    assert "caption" in skipped["nocaption.png"]
    report = source.report()
    assert report["usable"] + report["skipped"] == len(usable) + len(skipped)
    captions = {item.path.name: item.caption for item in source.items}
    assert len(captions["long.png"]) == video_folder.MAX_CAPTION_CHARS
    assert captions["latin1.png"].startswith("caf")
    shapes = {item.path.name: item.shape for item in source.items}
    assert shapes["good.mp4"] == (17, 32, 56)  # 24 frames at 8 fps fill the 17-frame bucket
    assert shapes["tall.gif"] == (9, 56, 32)  # portrait -> 9:16 bucket
    assert shapes["one_frame.mp4"][0] == 1 and shapes["photo.png"] == (1, 32, 56)


def test_folder_feeds_the_same_pipeline(tmp_path):
    _write_good_and_bad(tmp_path)
    config = vae.get_config("tiny").data
    config.unlock()
    config.dataset, config.batch_size, config.max_batch_size = f"folder:{tmp_path}", 1, 4
    iterator = iter(pipeline.make_dataset(config, seed=0, process_index=0, process_count=1,
                                          sizes=SIZES, durations=DURATIONS)[0])
    for _ in range(6):
        batch = next(iterator)
        assert batch["video"].shape[-4:-1] in {(1, 32, 56), (1, 32, 32), (17, 32, 56), (9, 32, 56), (9, 56, 32)}
        assert batch["video"].min() >= -1 and batch["video"].max() <= 1


def test_clip_keeps_content_after_resize_and_crop(tmp_path):
    clip = physworld.render_clip(4, 17, 64, 112).video
    video_io.write_video(tmp_path / "c.mp4", clip, fps=8)
    (tmp_path / "c.txt").write_text("caption")
    source = video_folder.FolderSource(tmp_path, SIZES, DURATIONS, fps=8)
    example = source.load(0, epoch=0)
    assert example["video"].shape == (17, 32, 56, 3)
    reference = video_folder.resize_cover_crop(clip, 32, 56).astype(float)
    assert np.abs(example["video"].astype(float) - reference).mean() < 6  # H.264 at crf 12


def test_folder_with_nothing_usable_fails_clearly(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "broken.txt").write_text("caption")
    with pytest.raises(ValueError, match="no usable videos or images"):
        video_folder.FolderSource(tmp_path, SIZES, DURATIONS)
    with pytest.raises(FileNotFoundError):
        video_folder.FolderSource(tmp_path / "missing", SIZES, DURATIONS)


def test_a_hundred_bad_inputs_are_each_skipped_or_handled_never_a_crash(tmp_path):
    from sora_jax.data.fuzz import fuzz

    report = fuzz(tmp_path / "folder", seed=1, batches=4)
    assert report["cases"] >= 100
    assert report["crashes"] == 0 and report["unaccounted"] == []
    assert report["usable"] >= 20 and report["skipped"] >= 50
    assert {"empty file", "no caption"} <= {r.split(" (")[0] for r in report["skip_reasons"]}


def test_training_on_a_folder_reports_its_skipped_files(tmp_path):
    from sora_jax.train import trainer
    from tests.conftest import micro_vae_config

    folder = tmp_path / "clips"
    folder.mkdir()
    _write_good_and_bad(folder)
    config = micro_vae_config(tmp_path, total_steps=1)
    config.data.dataset = f"folder:{folder}"
    config.data.batch_size, config.data.max_batch_size = 1, 2
    config.eval.latent_stat_clips = 1
    results = trainer.train(config, tmp_path / "run", quiet=True)
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert results["data_skipped"] == report["skipped"] >= 5
    assert any(path.endswith("truncated.mp4") for path, _ in report["skipped_files"])
