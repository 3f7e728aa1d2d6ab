r"""Text-to-video DiT runs over the VAE's latent, trained with rectified flow.

    sora-jax train --config=configs/t2v.py:tiny --workdir=runs/t2v_tiny \
        --config.vae_workdir=runs/vae_tiny

Variants pick the DiT size (`sora_jax/models/dit.py` holds the variant table) and the data.
"""

from configs import common

VARIANTS = {
    "tiny": dict(dataset="physworld/tiny", width=192, depth=6, heads=6, batch_size=8, total_steps=3000, text="bytes"),
    "small": dict(dataset="physworld/small", width=384, depth=12, heads=6, batch_size=16, total_steps=20000, text="minilm"),
    "base": dict(dataset="physworld/base", width=768, depth=12, heads=12, batch_size=32, total_steps=100000, text="minilm"),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="tiny")
    variant = common.check_variant(arg.variant, VARIANTS)
    config = common.common_config()
    config.task = "t2v"
    config.total_steps = variant["total_steps"]
    config.data.dataset = variant["dataset"]
    config.data.batch_size = variant["batch_size"]
    config.vae_workdir = "runs/vae_tiny"  # the trained VAE whose latent the DiT models

    config.model = common.ml_collections.ConfigDict()
    config.model.variant = arg.variant
    config.model.width = variant["width"]
    config.model.depth = variant["depth"]
    config.model.heads = variant["heads"]
    config.model.patch = (1, 2, 2)  # (pt, ph, pw) over the latent
    config.model.attention = "full"  # "full" spacetime or "factorized" spatial-then-temporal
    config.model.text_encoder = variant["text"]  # "bytes" (learned) or "minilm" (pretrained)

    config.flow = common.ml_collections.ConfigDict()
    config.flow.text_dropout = 0.1  # for classifier-free guidance
    config.flow.timestep_shift = True  # shift by token count, as SD3 / Open-Sora
    config.flow.tasks = common.ml_collections.ConfigDict(dict(
        t2v=0.6, t2i=0.1, i2v=0.1, extend_forward=0.05, extend_backward=0.05, connect=0.05, random_frames=0.05,
    ))
    config.lock()
    return config
