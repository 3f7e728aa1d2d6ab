r"""Video autoencoder runs: a causal 3D-conv VAE shared by videos and images.

    sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir=runs/vae_tiny
    sora-jax train --config=sora_jax/configs/vae.py:tiny_t2 --workdir=runs/vae_tiny_t2
    sora-jax train --config=sora_jax/configs/vae.py:small --workdir=runs/vae_small --config.total_steps=20000
    sora-jax train --config=sora_jax/configs/vae.py:blockworld --workdir=runs/vae_blockworld
    sora-jax train --config=sora_jax/configs/vae.py:physworld3d --workdir=runs/vae_physworld3d

Variants set the data and the model size (`sora_jax/models/vae.py` holds the variant table).
"""

from sora_jax.configs import common

VARIANTS = {
    # micro: a few seconds to compile; for smoke tests of the trainer, not for quality.
    "micro": dict(dataset="physworld/tiny", batch_size=2, total_steps=20, latent_channels=4, patch=2, crop=(0, 0)),
    # tiny: 9-frame 16x16 crops, 2x2 pixels folded into channels, (2+1)D residual blocks, 8 crops
    # every video step (batches sized by the crop), lr 1e-3, L2 loss only, 22,000 steps (~45
    # minutes alone on 2 CPU cores; 7,300 reached 30.05 dB on PhysWorld 1.x). No EMA (the linear
    # cooldown already averages; EMA 0.999 cost 0.2 dB), one evaluation at the end. How each
    # choice was measured: docs/architecture.md, "The video autoencoder".
    "tiny": dict(dataset="physworld/tiny", batch_size=8, total_steps=22000, latent_channels=16, patch=2,
                 crop=(9, 16), learning_rate=1e-3, checkpoint_every=5500, eval_every=22000, l1_weight=0.0,
                 factorized=True, ema_decay=0.0),
    # tiny_t2: the tiny VAE with 2x temporal compression instead of 4 (a latent frame per 2 video
    # frames), fine-tuned from assets/vae_tiny (its temporal stage drops; 98 of 100 arrays carry
    # over) 8,000 steps at lr 5e-4 (~40 min here). 33.9 dB validation (videos 33.3 / images 35.7)
    # against the 4x VAE's 30.4, and trails at 0.93 of the truth against 0.55: the 4x latent smears
    # moving objects and thin paint across 4 frames (experiments/vae_trails.py). Twice the latent
    # frames, so twice the DiT's tokens per clip.
    "tiny_t2": dict(dataset="physworld/tiny", batch_size=8, total_steps=8000, latent_channels=16, patch=2,
                    crop=(9, 16), learning_rate=5e-4, checkpoint_every=2000, eval_every=8000, l1_weight=0.0,
                    factorized=True, ema_decay=0.0, init_from="assets/vae_tiny", model="tiny", temporal=2),
    # BlockWorld's latent: the tiny VAE fine-tuned on blockworld/tiny (sky, block faces and edges,
    # the player sprite), which the PhysWorld-trained one blurs (21 dB on blockworld clips).
    "blockworld": dict(dataset="blockworld/tiny", batch_size=8, total_steps=4000, latent_channels=16, patch=2,
                       crop=(9, 16), learning_rate=3e-4, checkpoint_every=1000, eval_every=4000, l1_weight=0.0,
                       factorized=True, ema_decay=0.0, init_from="assets/vae_tiny", model="tiny"),
    # PhysWorld 3D's latent: the tiny VAE fine-tuned on physworld3d/tiny (shaded solids, a tiled
    # ground in perspective, shadows), as for BlockWorld.
    "physworld3d": dict(dataset="physworld3d/tiny", batch_size=8, total_steps=4000, latent_channels=16, patch=2,
                        crop=(9, 16), learning_rate=3e-4, checkpoint_every=1000, eval_every=4000, l1_weight=0.0,
                        factorized=True, ema_decay=0.0, init_from="assets/vae_tiny", model="tiny"),
    "small": dict(dataset="physworld/small", batch_size=8, total_steps=20000, latent_channels=16, patch=2, crop=(17,
                                                                                                                 64)),
    "base": dict(dataset="physworld/base", batch_size=16, total_steps=100000, latent_channels=16, patch=2, crop=(17,
                                                                                                                 128)),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="tiny")
    variant = common.check_variant(arg.variant, VARIANTS)
    config = common.common_config()
    config.task = "vae"
    config.total_steps = variant["total_steps"]
    config.init_from = variant.get("init_from", "")  # start from another run's (or export's) weights
    config.data.dataset = variant["dataset"]
    config.data.batch_size = variant["batch_size"]
    config.data.crop_frames, config.data.crop_side = variant["crop"]  # training crops; 0 = whole clips
    # Batch sizes from the cropped shape (every video step then holds batch_size crops); False sizes
    # them by the clip (8 to 26 equal crops a step for tiny's 9x16x16 crops, as before 2026-11-29).
    config.data.batch_by_crop = True

    config.model = common.ml_collections.ConfigDict()
    config.model.variant = variant.get("model", arg.variant)  # the architecture (models/vae.py's table)
    config.model.spatial_compression = 4  # 4 or 8
    config.model.temporal_compression = variant.get("temporal", 4)  # 1, 2 or 4; frames follow T = 1 + k * this
    config.model.latent_channels = variant["latent_channels"]  # 4..16
    config.model.patch = variant["patch"]  # pixels folded into channels before the first conv
    config.model.factorized = variant.get("factorized", False)  # (2+1)D residual blocks

    config.loss = common.ml_collections.ConfigDict()
    config.loss.l1_weight = variant.get("l1_weight", 1.0)
    config.loss.l2_weight = 1.0
    config.loss.kl_weight = 1e-6
    # Extra terms by name -> weight (sora_jax/train/vae_task.py:LOSS_HOOKS); 0 disables a term.
    config.loss.hooks = common.ml_collections.ConfigDict(dict(temporal_l1=0.0, edge_l1=0.0))

    config.eval = common.ml_collections.ConfigDict()
    config.eval.num_clips = 128  # validation clips for PSNR / SSIM / palette fidelity
    config.eval.num_samples = 4  # reconstructions written as MP4 + GIF next to the originals
    config.eval.latent_stat_clips = 256  # training clips for the per-channel latent mean / std
    config.optimizer.learning_rate = variant.get("learning_rate", 3e-4)
    config.optimizer.ema_decay = variant.get("ema_decay", config.optimizer.ema_decay)  # 0: evaluate raw weights
    config.checkpoint.every_steps = variant.get("checkpoint_every", variant.get("eval_every", 300))
    config.log.eval_every_steps = variant.get("eval_every", 300)
    config.lock()
    return config
