"""Actions as conditioning: BlockWorld's actions reach the latent cache one per latent frame, the
DiT adds their embedding to each frame's conditioning (dropped with the caption for guidance), and
a trained model samples differently for different actions."""

import json

import numpy as np
import pytest

from tests.conftest import micro_t2v_config


def test_latent_actions_take_the_action_each_latent_frame_spans():
    from sora_jax.data import blockworld

    clip = blockworld.render_clip(3, 33, 32, 56)
    actions = blockworld.latent_actions(clip.truth["action"], 9)
    assert actions[0] == 0 and list(actions[1:] - 1) == clip.segments  # latent frame 0: the first frame alone
    assert list(blockworld.latent_actions(clip.truth["action"][:1], 1)) == [0]  # an image


def test_the_dit_conditions_each_frame_on_its_action_and_keep_drops_them():
    import jax
    import jax.numpy as jnp

    from sora_jax.models.dit import DiT

    model = DiT(latent_channels=4, width=64, depth=1, heads=2, num_actions=7, text_encoder="bytes", text_length=8)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 4, 4))
    t = jnp.full((2, 3), 0.5)
    text = {"ids": jnp.zeros((2, 8), jnp.int32), "mask": jnp.ones((2, 8), bool)}
    import flax.linen as nn

    params = nn.unbox(model.init(jax.random.PRNGKey(1), x, t, text)["params"])
    assert params["action_embed"].shape == (8, 64)
    params = jax.tree.map(lambda p: p + 0.05, params)  # past the zero-initialized output layers
    def apply(**extra):
        return model.apply({"params": params}, x, t, {**text, **extra})

    actions, dropped = jnp.array([[0, 3, 3], [0, 1, 2]]), jnp.array([False, False])
    assert not np.allclose(apply(), apply(actions=actions))
    np.testing.assert_allclose(apply(), apply(actions=jnp.zeros((2, 3), int)))  # 0: none given
    np.testing.assert_allclose(apply(actions=actions, keep=dropped), apply(keep=dropped))


def test_a_model_trained_on_blockworld_samples_differently_for_different_actions(micro_blockworld, blockworld_tiny):
    import ml_collections

    from sora_jax.pipelines import t2v
    from sora_jax.train import trainer, validate

    config = ml_collections.ConfigDict(json.loads((micro_blockworld / "config.json").read_text()))
    cache = trainer.make_task(config, micro_blockworld).cache("validation")
    item = cache[0]
    assert item["actions"].shape == (item["latent"].shape[0],) and item["actions"].max() <= 7
    pipeline, params, _, _ = t2v.load(micro_blockworld)
    shape = (3, 8, 14, pipeline.vae.model.latent_channels)
    samples = [pipeline.sample_latents(params, ["The player walks."], shape, steps=2, actions=[[0, a, a]])
               for a in (2, 3)]
    assert not np.allclose(*samples)  # walking left and right condition the same noise differently
    physworld = micro_t2v_config("micro", blockworld_tiny, total_steps=3)
    physworld.model.num_actions = 7
    with pytest.raises(validate.ConfigError, match="needs a dataset with actions"):
        validate.check(physworld, 1)
