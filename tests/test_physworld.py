"""PhysWorld: determinism, ground truth that agrees with pixels, captions that name everything."""

import re

import numpy as np
import pytest

from sora_jax.data import captions, palette, physworld


def _object_color_at(video, frame, x, y):
    pixel = video[frame, int(y), int(x)].astype(np.float32) / 255.0
    return int(palette.nearest_palette_index(pixel))


def test_same_seed_gives_same_clip():
    a = physworld.render_clip(11, 9, 32, 56)
    b = physworld.render_clip(11, 9, 32, 56)
    np.testing.assert_array_equal(a.video, b.video)
    assert a.caption == b.caption
    for key in a.truth:
        np.testing.assert_array_equal(a.truth[key], b.truth[key])
    assert not np.array_equal(a.video, physworld.render_clip(12, 9, 32, 56).video)


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 56, 32), (9, 32, 56), (17, 56, 32), (5, 33, 47)])
def test_renders_any_shape_including_images(shape):
    clip = physworld.render_clip(3, *shape)
    assert clip.video.shape == (*shape, 3) and clip.video.dtype == np.uint8
    assert clip.truth["centers"].shape == (shape[0], physworld.MAX_OBJECTS, 2)
    assert clip.truth["trail_mask"].shape == shape


def test_background_is_dark_and_occluders_mid_gray():
    for seed in range(20):
        clip = physworld.render_clip(seed, 9, 32, 56)
        labels = palette.nearest_palette_index(clip.video.astype(np.float32) / 255)
        background = clip.video[labels == 13]  # includes anti-aliased edges: use a percentile
        assert np.percentile(background, 95) <= 255 * (palette.BACKGROUND_RANGE[1] + 0.01)
        if clip.scene.occluders:
            assert abs(np.median(clip.video[labels == 12]) - 255 * palette.OCCLUDER_GRAY) <= 2


def test_truth_agrees_with_pixels():
    """A fully visible object shows its color at its center; a hidden one does not."""
    checked_visible = checked_hidden = 0
    for seed in range(150):
        clip = physworld.render_clip(seed, 9, 32, 56)
        objects, centers, visible = clip.truth["objects"], clip.truth["centers"], clip.truth["visible"]
        count = int((objects[:, 0] >= 0).sum())
        for frame in range(9):
            for index in range(count):
                x, y = centers[frame, index]
                if not (0 <= x < 56 and 0 <= y < 32):
                    continue
                label = _object_color_at(clip.video, frame, x, y)
                color = int(objects[index, 0])
                later_colors = {int(c) for c in objects[index + 1 : count, 0]}
                if visible[frame, index] > 0.99:
                    assert label == color, (seed, frame, index)
                    checked_visible += 1
                elif visible[frame, index] < 0.02 and color not in later_colors:
                    assert label != color, (seed, frame, index)
                    checked_hidden += 1
    assert checked_visible > 100 and checked_hidden > 3


def test_occluded_centre_is_gray_when_inside_an_occluder():
    hits = 0
    for seed in range(80):
        clip = physworld.render_clip(seed, 9, 32, 56)
        for frame in range(9):
            offset = clip.truth["camera_offset"][frame]
            for index in range(len(clip.scene.objects)):
                x, y = clip.truth["centers"][frame, index]
                inside = [
                    x0 + 1 < x + offset < x1 - 1 and y0 + 1 < y < y1 - 1 for x0, y0, x1, y1 in clip.scene.occluders
                ]
                if any(inside) and 0 <= x < 56 and 0 <= y < 32:
                    assert _object_color_at(clip.video, frame, x, y) == 12  # occluder gray
                    assert clip.truth["visible"][frame, index] < 1.0
                    hits += 1
    assert hits > 5


def test_trails_never_shrink_and_wear_the_dim_shade():
    painters = 0
    for seed in range(80):
        clip = physworld.render_clip(seed, 17, 32, 56)
        if not any(o.paints for o in clip.scene.objects) or clip.scene.camera != 0:
            continue
        painters += 1
        mask = clip.truth["trail_mask"]
        assert np.all(mask[1:] >= mask[:-1]), "a painted pixel disappeared"
        assert mask[-1].sum() > 0
    assert painters >= 3


def test_camera_pan_moves_the_background_consistently():
    seen = 0
    for seed in range(60):
        clip = physworld.render_clip(seed, 9, 32, 56, physworld.WorldConfig(max_occluders=0, min_objects=1,
                                                                            max_objects=1))
        offsets = clip.truth["camera_offset"]
        if clip.scene.camera == 0:
            assert np.all(offsets == offsets[0])
            continue
        shift = offsets[1] - offsets[0]
        assert (shift < 0) == (clip.scene.camera == 1)
        seen += 1
    assert seen > 5


def _caption_names(caption: str, color: str, shape: str) -> bool:
    shapes = "|".join(captions.SHAPE_WORDS[shape])
    return re.search(rf"\b{color}\b (?:{shapes})\b", caption) is not None


def test_every_caption_names_each_objects_color_and_shape():
    for seed in range(200):
        frames = 1 if seed % 4 == 0 else 17
        clip = physworld.render_clip(seed, frames, 32, 56)
        for obj in clip.scene.objects:
            color, shape = palette.COLOR_NAMES[obj.color], palette.SHAPE_NAMES[obj.shape]
            assert _caption_names(clip.caption, color, shape), clip.caption


def test_captions_vary_in_phrasing():
    openings = {" ".join(physworld.render_clip(seed, 9, 32, 56).caption.split(" ")[:3]) for seed in range(40)}
    assert len(openings) >= 10


def test_holdout_pairs_are_never_sampled_and_only_holdout_samples_them():
    config = physworld.WorldConfig(holdout=(("green", "triangle"),))
    for seed in range(150):
        for obj in physworld.render_clip(seed, 1, 32, 32, config).scene.objects:
            assert (obj.color, obj.shape) != (1, 2)
    only = physworld.WorldConfig(holdout=(("green", "triangle"),), only_holdout=True)
    for seed in range(20):
        for obj in physworld.render_clip(seed, 1, 32, 32, only).scene.objects:
            assert (obj.color, obj.shape) == (1, 2)


def test_bad_world_configs_fail_clearly():
    with pytest.raises(ValueError, match="holdout pair"):
        physworld.WorldConfig(holdout=(("purple", "circle"),))
    with pytest.raises(ValueError, match="max_objects"):
        physworld.WorldConfig(max_objects=5)


def test_risers_are_drawn_only_when_asked_and_climb():
    """"rise" (gravity reversed) is a motion the default world never draws — the concept a LoRA
    learns in experiments/lora_holdout.py --concept=rise — and the `rise` probe tells it apart."""
    from sora_jax.evaluation import probes

    default = [o.motion for seed in range(100) for o in physworld.render_clip(seed, 9, 32, 56).scene.objects]
    assert 3 not in default and {0, 1, 2} <= set(default)
    risers = physworld.WorldConfig(motion_probs=(0, 0, 0, 1), max_objects=1)
    fallers = physworld.WorldConfig(motion_probs=(0, 1, 0), max_objects=1)
    for world, climbs in ((risers, 1.0), (fallers, 0.0)):
        scores = []
        for seed in range(12):
            clip = physworld.render_clip([5, seed], 17, 32, 56, world)
            assert all(o.motion == (3 if climbs else 1) for o in clip.scene.objects)
            scores.append(probes.rise(probes.detect(probes.segment(clip.video)), int(clip.truth["objects"][0][0]), 32))
        assert np.nanmean(scores) >= 0.9 if climbs else np.nanmean(scores) <= 0.1, scores
    caption = physworld.render_clip([5, 0], 17, 32, 56, risers).caption
    assert any(phrase in caption for phrase in captions.MOTION_PHRASES["rise"]), caption
    with pytest.raises(ValueError, match="motion_probs"):
        physworld.WorldConfig(motion_probs=(0.5, 0.5))
