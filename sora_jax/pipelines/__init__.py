"""Trained models ready to use: what sampling and evaluation need, never a trainer.

`vae.py` holds the video autoencoder (build, load a finished run, encode / decode / reconstruct,
latent statistics); `t2v.py` the text-to-video model (DiT + VAE + latent statistics + text
encoder). Both read runs through `sora_jax.checkpoints`. The trainer's tasks (`sora_jax/train/`)
wrap them for data, loss and evaluation during training; nothing here imports `train/`.
"""
