"""BlockWorld: the rules hold in every simulated clip, the ground truth agrees with the pixels,
captions name the actions in order, the tfds builder feeds the same pipeline as PhysWorld, and
the rule probes score ground truth at its ceiling and doctored clips low."""

import numpy as np
import pytest

from sora_jax.data import block_violations, blockworld, pipeline, worlds
from sora_jax.evaluation import block_probes

SIZES = ((32, 56), (32, 32), (56, 32))


def _clips(count=24, frames=33):
    return [blockworld.render_clip(seed, frames, *SIZES[seed % 3]) for seed in range(count)]


def test_rendering_is_a_pure_function_of_the_seed():
    a, b = blockworld.render_clip(5, 33, 32, 56), blockworld.render_clip(5, 33, 32, 56)
    np.testing.assert_array_equal(a.video, b.video)
    assert a.caption == b.caption and a.segments == b.segments
    assert not np.array_equal(a.video, blockworld.render_clip(6, 33, 32, 56).video)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        blockworld.render_clip(5, 10, 32, 56)


def test_the_rules_hold_in_every_simulated_frame():
    for clip in _clips():
        truth = clip.truth
        grids, players = truth["grid"], truth["player"]
        for t in range(len(grids)):
            assert not blockworld.overlaps(grids[t], *players[t])  # never inside a block
            if t and truth["changed"][t, 0] < 0:
                np.testing.assert_array_equal(grids[t], grids[t - 1])  # blocks change only where acted
        assert (grids[:, -1] == blockworld.BEDROCK).all()  # bedrock is never dug
        for t in range(1, len(grids) - 1):  # gravity: standing still in the air never happens twice
            x, y = players[t]
            supported = blockworld.overlaps(grids[t], x, y + 0.125)
            assert supported or players[t + 1, 1] != y or players[t - 1, 1] != y
        for t in np.flatnonzero(truth["changed"][:, 0] >= 0):  # edits are next to the player
            row, col = truth["changed"][t]
            x, y = players[t - 1]
            assert abs(col - x) <= 1.5 and y - 1 <= row <= y + 2


def test_every_action_sent_takes_effect_and_the_caption_names_them_in_order():
    explore = 0
    for clip in _clips(40):
        assert clip.segments and len(clip.segments) == 8
        if clip.caption.endswith("explores."):
            explore += 1
            continue
        text = clip.caption
        phrases = blockworld.action_phrases(clip.segments, clip.truth["player"])
        position = 0
        for phrase in phrases:  # each in turn, after the one before
            position = text.index(phrase, position) + len(phrase)
        assert text.endswith(phrases[-1] + ".")
    assert 0 < explore < 20  # some captions name no action: the model must choose a policy
    assert "stands" in blockworld.render_clip(1, 1, 32, 56).caption  # an image


def test_the_ground_truth_agrees_with_the_pixels():
    for clip in _clips(12):
        cell = blockworld.cell_size(*clip.video.shape[1:3])
        mask = block_probes.player_mask(clip.video.astype(np.float32) / 255)
        for t in range(0, len(clip.video), 4):
            x, y = clip.truth["player"][t]
            left = int(round(x * cell)) - clip.truth["camera"][t]
            ys, xs = np.nonzero(mask[t])
            assert xs.min() == left and xs.max() == left + cell - 1 and ys.min() == max(0, int(round(y * cell)))
            col = int(clip.truth["camera"][t] // cell) + 1  # a block column wholly in view: its bottom is bedrock
            pixel = clip.video[t, -2, (col - clip.truth["camera"][t] // cell) * cell] / 255
            assert np.linalg.norm(pixel - blockworld.BLOCK_COLORS[blockworld.BEDROCK]) < 0.3


def test_the_builder_feeds_the_pipeline_and_renders_past_its_records(tmp_path):
    from sora_jax.data import prepare

    prepare.prepare("blockworld/tiny", str(tmp_path))
    source = pipeline.open_source("blockworld/tiny", str(tmp_path), "validation")
    example = source[0]
    frames, height, width = example["shape"]
    assert example["video"].shape == (frames, height, width, 3) and example["actions"].shape == (frames,)
    extended = pipeline.open_source("blockworld/tiny", str(tmp_path), "validation", count=len(source) + 2)
    module = worlds.builder_module("blockworld/tiny")
    expected = module.make_example(worlds.variant("blockworld/tiny"), "validation", len(source) + 1)
    np.testing.assert_array_equal(extended[len(source) + 1]["video"], expected["video"])
    with pytest.raises(ValueError, match="blockworld/tiny"):
        prepare.prepare("blockworld/huge", str(tmp_path))


def test_probes_score_ground_truth_at_the_ceiling_with_the_camera_read_from_the_frames():
    clips = _clips(24)
    scores = block_probes.score_videos([c.video for c in clips], [c.segments for c in clips])
    for name in ("action_adherence", "rule_clean", "persistence", "sprite_identity"):
        assert scores[name]["mean"] == 1.0, (name, scores[name])
    assert scores["persistence"]["n"] >= 5
    reading = block_probes.read(clips[0].video, 4)
    relative = clips[0].truth["camera"] - clips[0].truth["camera"][0]
    np.testing.assert_array_equal(reading.camera - reading.camera[0], relative)


def test_probes_read_any_video_without_failing():
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (33, 32, 56, 3), dtype=np.uint8) for _ in range(3)]
    blank = [np.full((17, 32, 32, 3), 200, np.uint8)]
    segments = [blockworld.render_clip(i, 33, 32, 56).segments for i in range(3)] + [[1, 2, 3, 4]]
    scores = block_probes.score_videos(noise + blank, segments)
    assert 0.0 <= scores["action_adherence"]["mean"] < 0.5 and scores["sprite_identity"]["mean"] < 0.5


@pytest.mark.parametrize("kind", block_violations.KINDS)
def test_doctored_clips_break_the_rules_the_probes_check(kind):
    for seed in range(3):
        quad = block_violations.quadruplet(100 + seed, kind)
        assert all(v.shape == quad.possible[0].shape for v in (*quad.possible, *quad.impossible))
        if kind == "walk_through_wall":  # the walled world from the start, the player on A's path or C's
            np.testing.assert_array_equal(quad.impossible[0][0], quad.possible[1][0])
        else:  # A, then B from the frame the block is back in view
            np.testing.assert_array_equal(quad.impossible[0][:quad.frame], quad.possible[0][:quad.frame])
            np.testing.assert_array_equal(quad.impossible[0][quad.frame:], quad.possible[1][quad.frame:])
        read = [block_probes.read(v, 4) for v in (*quad.possible, *quad.impossible)]
        assert all(block_probes.violations(r)["clean"] for r in read[:2])
        assert not block_probes.violations(read[2])["clean"]  # reappears, vanishes, or walks through stone
        if kind != "walk_through_wall":
            kept = block_probes.persistence(read[2])
            assert kept["events"] == 1 and kept["kept"] == 0
            assert not block_probes.violations(read[3])["clean"]  # changed with nobody there
        else:  # stops at nothing: the walk did not happen
            assert block_probes.action_adherence(read[3], quad.segments)["score"] < 1.0
