r"""Video autoencoder runs: a causal 3D-conv VAE shared by videos and images.

    sora-jax train --config=configs/vae.py:tiny --workdir=runs/vae_tiny
    sora-jax train --config=configs/vae.py:small --workdir=runs/vae_small --config.total_steps=20000

Variants set the data and the model size (`sora_jax/models/vae.py` holds the variant table).
"""

from configs import common

VARIANTS = {
    "tiny": dict(dataset="physworld/tiny", batch_size=8, total_steps=3000),
    "small": dict(dataset="physworld/small", batch_size=8, total_steps=20000),
    "base": dict(dataset="physworld/base", batch_size=16, total_steps=100000),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="tiny")
    variant = common.check_variant(arg.variant, VARIANTS)
    config = common.common_config()
    config.task = "vae"
    config.total_steps = variant["total_steps"]
    config.data.dataset = variant["dataset"]
    config.data.batch_size = variant["batch_size"]

    config.model = common.ml_collections.ConfigDict()
    config.model.variant = arg.variant
    config.model.spatial_compression = 4  # 4 or 8
    config.model.temporal_compression = 4  # 1, 2 or 4; frames follow T = 1 + k * this
    config.model.latent_channels = 8  # 4..16

    config.loss = common.ml_collections.ConfigDict()
    config.loss.l1_weight = 1.0
    config.loss.l2_weight = 1.0
    config.loss.kl_weight = 1e-6
    config.loss.perceptual_weight = 0.0  # hook, off by default
    config.loss.adversarial_weight = 0.0  # hook, off by default
    config.optimizer.learning_rate = 1e-3
    config.lock()
    return config
