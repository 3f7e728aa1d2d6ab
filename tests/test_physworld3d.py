"""PhysWorld 3D: rendering is a pure function of the seed, the ground truth (cameras, projected
centers, visibility, depth) agrees with the pixels, captions name the camera's move and the cut,
the 3D probes score ground truth near the top and doctored renders low, and the builder's
examples fit its features."""

import numpy as np
import pytest

from sora_jax.data import captions3d, palette, violations3d, worlds
from sora_jax.data import physworld3d as p3d
from sora_jax.evaluation import probes3d

SIZES = ((32, 56), (32, 32), (56, 32))


def _clips(count=24, frames=17, config=None):
    return [p3d.render_clip([3, seed], frames, *SIZES[seed % 3], config or p3d.WorldConfig()) for seed in range(count)]


def test_rendering_is_a_pure_function_of_the_seed():
    a, b = p3d.render_clip(5, 17, 32, 56), p3d.render_clip(5, 17, 32, 56)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.truth["depth"], b.truth["depth"])
    assert a.caption == b.caption
    assert not np.array_equal(a.video, p3d.render_clip(6, 17, 32, 56).video)
    with pytest.raises(ValueError, match="cannot render"):
        p3d.render_clip(5, 0, 32, 56)
    with pytest.raises(ValueError, match="camera_probs"):
        p3d.WorldConfig(camera_probs=(1.0,))


def test_the_ground_truth_agrees_with_the_pixels():
    checked = hidden = 0
    for clip in _clips(16):
        truth, (frames, height, width) = clip.truth, clip.video.shape[:3]
        # The cameras project the 3D centers onto the stored 2D ones.
        homogeneous = np.concatenate([truth["centers_3d"], np.ones((frames, p3d.MAX_OBJECTS, 1))], -1)
        cam = np.einsum("tij,tnj->tni", truth["extrinsics"], np.nan_to_num(homogeneous))
        pixels = np.einsum("ij,tnj->tni", truth["intrinsics"], cam)
        count = len(clip.scene.objects)
        np.testing.assert_allclose(pixels[:, :count, :2] / pixels[:, :count, 2:], truth["centers_2d"][:, :count],
                                   atol=1e-3)
        for t in range(frames):
            for i in range(count):
                x, y = truth["centers_2d"][t, i]
                if not (0 <= x < width and 0 <= y < height):
                    continue
                shown = int(truth["ids"][t, int(y), int(x)])
                if shown == 2 + i:  # the center shows the object itself: it is visible
                    assert truth["visible"][t, i] > 0
                    checked += 1
                elif shown >= 2:  # hidden behind nearer geometry: another object, nearer there
                    assert truth["depth"][t, int(y), int(x)] < truth["center_depth"][t, i]
                    hidden += 1
                if truth["visible"][t, i] == 1.0:
                    assert shown == 2 + i
        sky = truth["ids"] == p3d.SKY
        assert (truth["depth"][sky] == 0).all() and (truth["depth"][~sky] > 0).all()
        # An object pixel shows its palette hue; shading only scales it.
        for i, obj in enumerate(clip.scene.objects):
            mine = truth["ids"] == 2 + i
            if mine.sum() > 20:
                labels = probes3d.segment(clip.video)[mine]  # edge pixels blend with the ground: -1
                assert np.mean(labels >= 0) > 0.5 and np.mean(labels[labels >= 0] == obj.color) > 0.95
    assert checked > 300 and hidden > 0


def test_captions_name_the_camera_move_and_the_cut_on_a_latent_frame_boundary():
    cuts = 0
    for clip in _clips(40):
        scene = clip.scene
        if scene.frames == 1:
            assert "floor" in clip.caption
            continue
        move = p3d.CAMERA_NAMES[scene.camera]
        assert any(phrase in clip.caption for phrase in captions3d.CAMERA_PHRASES[move])
        for obj in scene.objects:
            assert palette.COLOR_NAMES[obj.color] in clip.caption
        if scene.cut >= 0:
            cuts += 1
            assert clip.caption.endswith(captions3d.CUT_PHRASES[p3d.CUT_NAMES[scene.cut]][0])
            assert (scene.cut_frame - 1) % 4 == 0 and 0 < scene.cut_frame < scene.frames
            assert clip.truth["shot"][scene.cut_frame] == 1 and clip.truth["shot"][scene.cut_frame - 1] == 0
            jump = np.linalg.norm(np.diff(scene.path.position, axis=0), axis=-1)
            assert jump.argmax() == scene.cut_frame - 1
            assert probes3d.find_cut(clip.video) == scene.cut_frame
        else:
            assert "Cut to" not in clip.caption
    assert cuts >= 4


def test_probes_score_ground_truth_near_the_top_and_doctored_renders_low():
    clips = [c for c in _clips(40, config=p3d.WorldConfig(cut_prob=0.5)) if c.scene.frames > 1]
    objects, cameras, cuts = ([c.truth["objects"] for c in clips], [c.scene.camera for c in clips],
                              [c.scene.cut for c in clips])
    truth = probes3d.score_videos([c.video for c in clips], objects, cameras, cuts)
    for name, floor in (("camera_move", 0.9), ("smooth_view", 0.9), ("permanence", 0.95), ("shot_colors", 0.85),
                        ("shot_order", 0.85), ("anchoring", 0.45)):
        assert truth[name]["mean"] >= floor, (name, truth[name])
    moving = [c for c in clips if c.scene.camera != 0 and c.scene.cut < 0]
    args = [c.truth["objects"] for c in moving], [c.scene.camera for c in moving], [-1] * len(moving)
    base = probes3d.score_videos([c.video for c in moving], *args)
    doctored = {kind: probes3d.score_videos([violations3d.doctored(c, kind) for c in moving], *args)
                for kind in violations3d.DOCTORED}
    assert doctored["warp"]["smooth_view"]["mean"] <= 0.5 < base["smooth_view"]["mean"]
    assert doctored["mirror"]["smooth_view"]["mean"] < base["smooth_view"]["mean"] - 0.3
    assert doctored["mirror"]["camera_move"]["mean"] < base["camera_move"]["mean"] - 0.2
    assert doctored["drift"]["anchoring"]["mean"] < base["anchoring"]["mean"]


def test_probes_read_any_video_without_failing():
    rng = np.random.default_rng(0)
    clip = p3d.render_clip(2, 17, 32, 56, p3d.WorldConfig(cut_prob=1.0))
    videos = [rng.integers(0, 256, (17, 32, 56, 3), dtype=np.uint8), np.full((17, 32, 32, 3), 90, np.uint8),
              clip.video[:1]]
    scores = probes3d.score_videos(videos, [clip.truth["objects"]] * 3, [clip.scene.camera] * 3, [clip.scene.cut] * 3)
    assert all(0.0 <= s["mean"] <= 1.0 for s in scores.values() if s["mean"] is not None)


@pytest.mark.parametrize("kind", violations3d.KINDS)
def test_violation_quadruplets_switch_scenes_at_a_latent_frame(kind):
    quad = violations3d.quadruplet(5, kind)
    a, b = quad.possible
    if kind == "shadow_flip":  # no switch: A's shading with B's shadows (and B's with A's) in every frame
        assert quad.frame == 0
        objects = probes3d.segment(a) >= 0
        inside = objects.copy()  # object pixels away from their edges (edge pixels mix in the ground)
        for axis in (1, 2):
            inside &= np.roll(objects, 1, axis) & np.roll(objects, -1, axis)
        assert inside.sum() > 100
        for impossible, shading in zip(quad.impossible, quad.possible):
            np.testing.assert_array_equal(impossible[inside], shading[inside])  # the objects lit as their own
            ground = ~objects & (probes3d.segment(impossible) < 0)
            assert (np.abs(np.subtract(impossible, shading, dtype=np.int16)).max(-1)[ground] > 8).any(axis=0).any()
        for video in quad.impossible:  # each differs from both possible clips in every frame
            for possible in quad.possible:
                assert (np.abs(np.subtract(video, possible, dtype=np.int16)).max(-1) > 8).any(axis=(1, 2)).all()
        return
    if kind == "size_drift":  # no switch: a size that moves smoothly from A's to B's and back
        forward, backward = quad.impossible
        assert quad.frame == 0 and "camera" in quad.caption
        for video, first, last in ((forward, a, b), (backward, b, a)):
            np.testing.assert_array_equal(video[0], first[0])
            np.testing.assert_array_equal(video[-1], last[-1])
            middle = len(video) // 2
            for possible in quad.possible:
                assert (np.abs(np.subtract(video[middle], possible[middle], dtype=np.int16)) > 8).any()

        def growth(video):  # how much the objects' pixels grow or shrink over the dolly
            area = (probes3d.segment(video) >= 0).sum((1, 2))
            return abs(np.log(area[-1] / area[0]))

        assert growth(forward) < growth(a)  # the drifting object keeps its size in the picture
        return
    assert (quad.frame - 1) % 4 == 0 and not np.array_equal(a[quad.frame:], b[quad.frame:])
    if kind == "parallax_reversed":  # one first frame; A's objects over B's ground and B's over A's
        for video in (b, *quad.impossible):
            np.testing.assert_array_equal(video[0], a[0])
        objects_a, objects_b = (probes3d.segment(v) >= 0 for v in quad.possible)
        for impossible, objects in zip(quad.impossible, (objects_a, objects_b)):
            shown = probes3d.segment(impossible) >= 0
            assert (shown == objects).mean() > 0.98  # the objects where their own camera puts them
            assert not np.array_equal(impossible, a) and not np.array_equal(impossible, b)
        return
    np.testing.assert_array_equal(quad.impossible[0][:quad.frame], a[:quad.frame])
    np.testing.assert_array_equal(quad.impossible[0][quad.frame:], b[quad.frame:])
    np.testing.assert_array_equal(quad.impossible[1][quad.frame:], a[quad.frame:])
    if kind == "cut_swap":  # only the view after the cut shows the swap
        assert "Cut to" in quad.caption
        colors = [set(np.unique(probes3d.segment(v[quad.frame:]))) - {-1} for v in quad.possible]
        assert colors[0] != colors[1]
    if kind == "hidden_swap":  # nothing switches in the picture: the object is behind another then
        frame, forward = quad.frame, quad.impossible[0]
        for video in (b, *quad.impossible):
            np.testing.assert_array_equal(video[frame - 1:frame + 1], a[frame - 1:frame + 1])
        before, after = ([set(np.unique(probes3d.segment(v[part]))) - {-1} for v in (a, b)]
                         for part in (slice(0, frame - 1), slice(frame + 1, None)))
        assert before[0] != before[1] and after[0] != after[1]  # the hidden object is seen on both sides
        shown = [set(np.unique(probes3d.segment(forward[part]))) - {-1}
                 for part in (slice(0, frame - 1), slice(frame + 1, None))]
        assert shown == [before[0], after[1]]  # one color goes behind, another comes out
        assert "camera" in quad.caption
    if kind == "shape_pop":  # the same objects by color; one outline differs
        colors = [set(np.unique(probes3d.segment(v))) - {-1} for v in quad.possible]
        assert colors[0] == colors[1]


def test_a_depth_nudge_changes_fewer_pixels_than_a_depth_pop():
    def changed(kind):
        return np.mean([np.abs(np.subtract(*violations3d.quadruplet(seed, kind).possible, dtype=np.int16)).mean()
                        for seed in range(4)])

    assert changed("depth_nudge") < 0.7 * changed("depth_pop")


def test_builder_examples_fit_the_features_and_the_registry():
    module = worlds.builder_module("physworld3d/tiny")
    assert "physworld3d/tiny" in worlds.NAMES and worlds.is_world("physworld3d/small")
    config = worlds.variant("physworld3d/tiny")
    builder = module.BUILDER(config="tiny", data_dir="/nonexistent")
    for index in range(3):
        example = module.make_example(config, "validation", index)
        frames, height, width = example["shape"]
        assert example["video"].shape == (frames, height, width, 3)
        assert example["depth"].shape == (frames, height, width)
        builder.info.features.encode_example(example)  # every field fits its declared feature
    assert module.make_example(config, "train", 0)["caption"] != module.make_example(config, "validation", 0)["caption"]


@pytest.mark.slow
def test_the_builder_feeds_the_pipeline(tmp_path):
    from sora_jax.data import pipeline, prepare

    prepare.prepare("physworld3d/tiny", str(tmp_path))
    source = pipeline.open_source("physworld3d/tiny", str(tmp_path), "validation")
    example = source[0]
    frames, height, width = example["shape"]
    assert example["video"].shape == (frames, height, width, 3)


def test_the_ladder_preset_and_its_evaluation():
    from sora_jax.configs import scaling
    from sora_jax.scaling import world_evals

    config = scaling.get_config("physworld3d,budget=4x")
    assert config.data.dataset == "physworld3d/tiny" and config.vae_workdir == "assets/vae_physworld3d"
    world = world_evals.for_dataset(config.data.dataset)
    assert isinstance(world, world_evals.Physworld3dEval)
    scenes = world.scenes(6)
    scores = world.score(np.stack([s.video for s in scenes]), scenes)
    assert set(world.shown) <= set(scores) | {"shot_colors", "shot_order"}


def test_scoring_some_voe_kinds_refuses_an_unknown_one_before_any_work():
    from sora_jax.evaluation import likelihood

    with pytest.raises(ValueError, match="valid: depth_pop"):
        likelihood.voe_scores(None, None, kinds=violations3d.KINDS, quadruplet=violations3d.quadruplet,
                              only=("size_drift", "melt"))
