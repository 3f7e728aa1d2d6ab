"""World probes score ground-truth renders near their ceiling and doctored renders low;
violation quadruplets differ only in the violation."""

import numpy as np
import pytest

from sora_jax.data import physworld, violations
from sora_jax.evaluation import probes

OPEN_WORLD = physworld.WorldConfig(max_occluders=0, pan_prob=0.0)  # nothing may hide a violation


def _mean(scores, key):
    return float(np.nanmean([s[key] for s in scores]))


def test_ground_truth_renders_score_near_the_ceiling():
    clips = [physworld.render_clip(70_000 + i, 17, 32, 56) for i in range(48)]
    scores = [probes.score_video(c.video, c.truth["objects"], c.scene.camera) for c in clips]
    # caption_count: two objects of one color that touch in the first frame are one detection (PhysWorld
    # 2.0's larger objects touch more often: ground truth scores ~0.86-0.89).
    for key, floor in (("caption_colors", 0.95), ("caption_shapes", 0.9), ("caption_count", 0.85),
                       ("permanence", 0.97), ("continuity", 0.97), ("color_constancy", 0.95),
                       ("trail_persistence", 0.9), ("pan_direction", 0.95)):
        assert _mean(scores, key) >= floor, key
    assert _mean(scores, "background_flicker") < 0.002
    assert _mean(scores, "motion_residual_px") < 1.0


@pytest.mark.parametrize("kind,probe,ceiling", [("vanish", "permanence", 0.6), ("teleport", "continuity", 0.5),
                                                ("trail_erased", "trail_persistence", 0.7),
                                                ("color_change", "color_constancy", 0.3)])
def test_doctored_renders_score_low(kind, probe, ceiling):
    real, doctored = [], []
    for seed in range(16):
        clip, impossible, _ = violations.violation_pair(seed, kind, 17, 32, 56, OPEN_WORLD)
        real.append(probes.score_video(clip.video, clip.truth["objects"], clip.scene.camera))
        doctored.append(probes.score_video(impossible, clip.truth["objects"], clip.scene.camera))
    assert _mean(real, probe) >= 0.9
    assert _mean(doctored, probe) <= ceiling


@pytest.mark.parametrize("kind", violations.KINDS)
def test_quadruplets_differ_only_in_the_violation(kind):
    for seed in range(4):
        quad = violations.quadruplet(seed, kind, 17, 32, 56)
        (a, b), (c, d) = quad.possible, quad.impossible
        k = quad.violation.frame
        assert np.array_equal(a[:k], c[:k]) and np.array_equal(b[k:], c[k:])
        assert np.array_equal(b[:k], d[:k]) and np.array_equal(a[k:], d[k:])
        differs = (a != c).any(-1)
        assert differs.any() and not differs[:k].any()
        assert not (differs & ~quad.region).any(), "pixels changed outside the edited object and trails"
        assert quad.region.mean() < 0.5


def test_unknown_violation_kind_is_refused():
    with pytest.raises(ValueError, match="valid: vanish"):
        violations.violation_pair(0, "melt", 17, 32, 56)


def test_bootstrap_interval_brackets_the_mean_and_skips_nan():
    stats = probes.bootstrap_mean([0.0, 1.0, 1.0, float("nan"), 1.0])
    assert stats["n"] == 4 and stats["mean"] == 0.75 and stats["low"] <= 0.75 <= stats["high"]
    assert probes.bootstrap_mean([float("nan")])["mean"] is None


def test_a_shape_is_drawn_right_only_by_a_strict_majority_of_its_frames():
    """A tie is no majority (it used to be broken by string hashing, which differs per process)."""
    assert probes._majority_is(["square", "square", "disc"], "square")
    assert not probes._majority_is(["square", "disc"], "square")
    assert not probes._majority_is(["disc", "square"], "square")
    assert not probes._majority_is(["disc", "disc", "square"], "square") and probes._majority_is(["disc"], "disc")
