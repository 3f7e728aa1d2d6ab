"""How a ladder scores its rungs in each procedural world: held-out scenes (seeds never in a
training split), how a model samples them, the probes that score the samples, and the
violation-of-expectation quadruplets. `compare.py` runs the same comparison for any world.

    world = for_dataset("blockworld/tiny")
    scenes = world.scenes(64)                              # ground truth: .video, .caption, ...
    videos = world.sample(pipeline, params, scenes)        # common random numbers across rungs
    world.score(videos, scenes)                            # {probe: bootstrap mean and CI}
    world.voe(pipeline, params, quads_per_kind)
"""

from __future__ import annotations

import numpy as np

from sora_jax.data import block_violations, blockworld, physworld, physworld3d, violations3d
from sora_jax.evaluation import block_probes, likelihood, probes, probes3d

PROBE_CLIP = (17, 32, 56)  # frames, height, width: the largest physworld/tiny bucket
PROBE_SEED = 90_000


def probe_scenes(count: int, clip_shape=PROBE_CLIP) -> list[physworld.Clip]:
    return [physworld.render_clip(PROBE_SEED + i, *clip_shape) for i in range(count)]


def score(videos, scenes) -> dict:
    return probes.score_videos(videos, [s.truth["objects"] for s in scenes], [s.scene.camera for s in scenes])


def sample_videos(pipeline, params, captions: list[str], latent_shape, batch: int = 16, actions=None,
                  **sampling) -> np.ndarray:
    """uint8 [N, T, H, W, 3]: batch b of the captions starts from the noise of seed b, so every
    model sees the same noise for the same prompt. `actions` (int [N, t]): per latent frame, for a
    model that takes them. `sampling`: steps, guidance, method, shift overrides for
    `T2VPipeline.sample_latents` (default: the run's config)."""
    videos = []
    for number, start in enumerate(range(0, len(captions), batch)):
        chunk = captions[start:start + batch]
        extra = {} if actions is None else {"actions": np.asarray(actions[start:start + batch])}
        videos.append(pipeline.decode(pipeline.sample_latents(params, chunk, latent_shape, seed=number, **extra,
                                                              **sampling)))
    return np.concatenate(videos)


def sample_scenes(pipeline, params, scenes, **sampling) -> np.ndarray:
    """The videos a model draws for the scenes' captions at the probe clip (`sample_videos`)."""
    latent_shape = pipeline.vae.model.latent_shape((1, *PROBE_CLIP, 3))[1:]
    return sample_videos(pipeline, params, [s.caption for s in scenes], latent_shape, **sampling)


class PhysworldEval:
    """PhysWorld: caption colors / shapes / count, permanence, continuity, trails, the pan."""

    name, clip, seed = "physworld", PROBE_CLIP, PROBE_SEED
    shown = ("caption_colors", "caption_shapes", "caption_count", "permanence", "continuity", "color_constancy",
             "trail_persistence", "motion_residual_px", "background_flicker", "pan_direction")
    lower_is_better = ("motion_residual_px", "background_flicker")

    def scenes(self, count: int):
        return probe_scenes(count, self.clip)

    def sample(self, pipeline, params, scenes) -> np.ndarray:
        return sample_scenes(pipeline, params, scenes)

    def score(self, videos, scenes) -> dict:
        return score(videos, scenes)

    def voe(self, pipeline, params, quads_per_kind: int) -> dict:
        return likelihood.voe_scores(pipeline, params, pairs_per_kind=quads_per_kind)


class BlockworldEval:
    """BlockWorld: each held-out clip's caption and its actions (one per latent frame) are the
    prompt; the rule probes score the samples (`evaluation/block_probes.py`)."""

    name, clip, seed = "blockworld", (33, 32, 56), PROBE_SEED
    shown = ("action_adherence", "rule_clean", "persistence", "sprite_identity")
    lower_is_better = ()

    def scenes(self, count: int) -> list[blockworld.Clip]:
        return [blockworld.render_clip(self.seed + i, *self.clip) for i in range(count)]

    def sample(self, pipeline, params, scenes) -> np.ndarray:
        latent_shape = pipeline.vae.model.latent_shape((1, *self.clip, 3))[1:]
        actions = None
        if pipeline.model.num_actions:
            actions = np.stack([blockworld.latent_actions(s.truth["action"], latent_shape[0]) for s in scenes])
        return sample_videos(pipeline, params, [s.caption for s in scenes], latent_shape, actions=actions)

    def score(self, videos, scenes) -> dict:
        return block_probes.score_videos(videos, [s.segments for s in scenes])

    def voe(self, pipeline, params, quads_per_kind: int) -> dict:
        return likelihood.voe_scores(pipeline, params, pairs_per_kind=quads_per_kind, clip_shape=self.clip,
                                     kinds=block_violations.KINDS, quadruplet=block_violations.quadruplet)


class Physworld3dEval:
    """PhysWorld 3D: each held-out clip's caption (objects, the camera's move, a cut) is the prompt;
    the 3D probes score the samples (`evaluation/probes3d.py`)."""

    name, clip, seed = "physworld3d", PROBE_CLIP, PROBE_SEED
    shown = ("anchoring", "smooth_view", "camera_move", "permanence", "shot_colors", "shot_order")
    lower_is_better = ()

    def scenes(self, count: int) -> list[physworld3d.Clip]:
        return [physworld3d.render_clip(self.seed + i, *self.clip) for i in range(count)]

    def sample(self, pipeline, params, scenes) -> np.ndarray:
        return sample_scenes(pipeline, params, scenes)

    def score(self, videos, scenes) -> dict:
        return probes3d.score_videos(videos, [s.truth["objects"] for s in scenes], [s.scene.camera for s in scenes],
                                     [s.scene.cut for s in scenes])

    def voe(self, pipeline, params, quads_per_kind: int) -> dict:
        return likelihood.voe_scores(pipeline, params, pairs_per_kind=quads_per_kind, clip_shape=self.clip,
                                     kinds=violations3d.KINDS, quadruplet=violations3d.quadruplet)


WORLDS = {"physworld": PhysworldEval, "physworld3d": Physworld3dEval, "blockworld": BlockworldEval}


def for_dataset(dataset: str):
    """The evaluation of the world a dataset comes from (PhysWorld's for anything else)."""
    return WORLDS.get(dataset.partition("/")[0], PhysworldEval)()
