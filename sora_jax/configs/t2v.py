r"""Text-to-video DiT runs over the VAE's latent, trained with rectified flow.

    sora-jax train --config=sora_jax/configs/vae.py:tiny --workdir=runs/vae_tiny     # first: the latent space
    sora-jax train --config=sora_jax/configs/vae.py:tiny_t2 --workdir=runs/vae_tiny_t2  # (its 2x-temporal fine-tune)
    sora-jax train --config=sora_jax/configs/t2v.py:tiny --workdir=runs/t2v_tiny \
        --config.vae_workdir=runs/vae_tiny_t2
    sora-jax train --config=sora_jax/configs/t2v.py:blockworld --workdir=runs/blockworld   # then: sora-jax play

Variants pick the DiT size (`sora_jax/models/dit.py` holds the variant table), the text encoder
and the data. Latents and text embeddings are cached in `<workdir>/latent_cache/` before training.
"""

from sora_jax.configs import common
from sora_jax.models import dit, lora

VARIANTS = {
    # micro: seconds per step; smoke tests of the trainer, sharding and resumption.
    # Its latent is the 4x-temporal tiny VAE: half the latent frames keep the tests fast.
    "micro": dict(dataset="physworld/tiny", model="micro", batch_size=8, total_steps=20, text="bytes", lr=1e-3,
                  vae="assets/vae_tiny"),
    # tiny: 5.6M parameters, batch 16, in the committed 2x-temporal tiny VAE's latent (9 latent frames a clip).
    # MiniLM, not bytes: its cached embeddings cost nothing per step, and colors are bound to
    # words from the start (prompt color recall 0.75 vs 0.25 for bytes at step 500, measured).
    "tiny": dict(dataset="physworld/tiny", model="tiny", batch_size=16, total_steps=2000, text="minilm", lr=5e-4,
                 vae="assets/vae_tiny_t2"),
    "small": dict(dataset="physworld/small", model="small", batch_size=32, total_steps=20000, text="minilm", lr=3e-4),
    "base": dict(dataset="physworld/base", model="base", batch_size=64, total_steps=100000, text="minilm", lr=2e-4),
    # lora: rank-16 adapters on a finished run's frozen DiT (`--config.lora.base=RUN`, whose model
    # and VAE it takes), for a folder of your clips (`--config.data.dataset=folder:PATH`).
    "lora": dict(dataset="physworld/tiny", model="tiny", batch_size=8, total_steps=400, text="minilm", lr=1e-3),
    # reflow: a few-step student of a finished run, trained on its (noise, sample) pairs
    # (`--config.distill.pairs=DIR`, made by train/reflow_pairs.py; model, VAE and init from the teacher).
    "reflow": dict(dataset="physworld/tiny", model="tiny", batch_size=8, total_steps=2000, text="minilm", lr=1e-4),
    # BlockWorld, caption + an action per latent frame, in the VAE fine-tuned on it
    # (`sora-jax play` drives it one latent frame per key press).
    "blockworld": dict(dataset="blockworld/tiny", model="tiny", batch_size=8, total_steps=3000, text="minilm",
                       lr=5e-4, vae="assets/vae_blockworld", actions=7),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="tiny")
    variant = common.check_variant(arg.variant, VARIANTS)
    config = common.common_config()
    config.task = "t2v"
    config.total_steps = variant["total_steps"]
    config.data.dataset = variant["dataset"]
    config.data.batch_size = variant["batch_size"]
    config.data.max_batch_size = 4 * variant["batch_size"]
    config.data.cache_limit = 0  # encode only the first N clips of each split into the cache; 0 = all
    # where the latent cache lives; "" = <workdir>/latent_cache (the ladder shares one)
    config.data.latent_cache_dir = ""
    # When the cache is (re)built, encode at least this many training clips (0 = what the run
    # reads): the ladder builds one cache for its largest rung, and smaller rungs read a prefix.
    config.data.cache_build_count = 0
    # The trained VAE whose latent the DiT models: a workdir, or an export (`sora-jax export`).
    # assets/vae_tiny_t2 is the committed tiny VAE (`vae.py:tiny`, then `vae.py:tiny_t2`: README).
    config.vae_workdir = variant.get("vae", "assets/vae_tiny_t2")

    size = dit.VARIANTS[variant["model"]]
    config.model = common.ml_collections.ConfigDict()
    config.model.variant = variant["model"]
    config.model.width = size["width"]
    config.model.depth = size["depth"]
    config.model.heads = size["heads"]
    config.model.mlp_ratio = 4.0
    config.model.patch = (1, 2, 2)  # (pt, ph, pw) over the latent
    config.model.layout = "full"  # "full" spacetime or "factorized" spatial-then-temporal attention
    config.model.text_encoder = variant["text"]  # "bytes" (learned with the DiT) or "minilm" (pretrained, frozen)
    config.model.text_width = 128  # the byte encoder's width
    config.model.text_length = 128  # bytes or word pieces kept per caption
    # float32; bfloat16 (all compute); mixed (bf16 matmul operands, f32 rest). Params f32
    config.model.dtype = "float32"
    config.model.remat = "none"  # none, full, dots, dots_no_batch (sora_jax/models/dit.py)
    # auto: the backend's kernel (cudnn on GPU, splash on TPU, flash on CPU; logged); or one by
    # name: flash (CPU: fastest; AMX kernel if mixed), flash_jax, xla, chunked, cudnn, splash
    config.model.attention_implementation = "auto"
    # standard, or mup: fan-in init and hidden/output LRs x mup_base_width / width (models/mup.py),
    # so an LR tuned at the base width holds at every width.
    config.model.parametrization = "standard"
    config.model.mup_base_width = 64
    # > 0: an action per latent frame beside the caption (a game's controls; blockworld has 7),
    # embedded and added with the timestep; dropped with the caption and by flow.action_dropout.
    config.model.num_actions = variant.get("actions", 0)
    # > 0 (odd): a k x k convolution over each latent frame after the DiT's last projection,
    # zero-initialized and added (U-ViT's output conv; models/dit.py). 0: none.
    config.model.output_conv = 0

    config.flow = common.ml_collections.ConfigDict()
    config.flow.text_dropout = 0.1  # for classifier-free guidance
    config.flow.action_dropout = 0.2  # actions alone dropped: the model must also choose a policy itself
    config.flow.timestep_shift = True  # shift by token count, as SD3 / Open-Sora
    config.flow.shift = 0.0  # > 0: this shift at every size instead (training and sampling)
    config.flow.logit_mean = 0.0  # logit-normal timesteps
    config.flow.logit_std = 1.0
    # > 0: train t drawn uniformly from the grid a this-many-step Euler sampler evaluates instead
    # (a few-step reflow student, experiments/distill.py --grid_steps).
    config.flow.grid_steps = 0
    # > 0: given (context) frames train at t ~ U(0, this) instead of clean, and sample at half of
    # it, so extension chunks don't copy their context's errors (`flow.context_timesteps`).
    config.flow.context_noise = 0.0
    config.flow.tasks = common.ml_collections.ConfigDict(dict(
        t2v=0.6, t2i=0.1, i2v=0.1, extend_forward=0.05, extend_backward=0.05, connect=0.05, random_frames=0.05,
    ))

    config.sample = common.ml_collections.ConfigDict()
    config.sample.steps = 30
    config.sample.guidance = 4.0
    # > 0: the sampler's grid shift instead of the training one (a reflow student samples best with
    # more of its few steps at high t: experiments/distill.py --student_shift, docs/training.md).
    config.sample.shift = 0.0

    config.eval = common.ml_collections.ConfigDict()
    config.eval.num_clips = 64  # validation clips for the fixed-triple validation loss
    # 0: clip i at the i-th point of a uniform timestep grid; Q > 0: every clip at Q fixed timestep
    # quantiles, with a per-quantile curve (val_loss_t0 .. val_loss_t{Q-1}): the ladder's setting.
    config.eval.timestep_quantiles = 0
    config.eval.num_samples = 4  # validation prompts sampled at each evaluation

    # Low-rank adapters (sora_jax/models/lora.py) on the frozen DiT of a finished run: rank 0 = off.
    config.lora = common.ml_collections.ConfigDict()
    config.lora.rank = 16 if arg.variant == "lora" else 0
    config.lora.alpha = 16.0  # the adapters' update is scaled by alpha / rank
    config.lora.targets = lora.DEFAULT_TARGETS  # fnmatch patterns over layer paths ("block_3/attention/qkv")
    config.lora.base = ""  # the base run: a t2v workdir or export; its model and VAE replace this config's
    config.lora.base_fingerprint = ""  # filled in from the base when training starts (models/lora.py)

    # Reflow distillation (sora_jax/train/reflow_pairs.py): train on a teacher's (noise, sample) pairs.
    config.distill = common.ml_collections.ConfigDict()
    config.distill.pairs = ""  # a pairs directory; "" = ordinary training
    if arg.variant in ("lora", "reflow"):  # "": precision and attention kernel as the base / teacher ran them
        config.model.dtype = config.model.attention_implementation = ""
    if arg.variant == "reflow":  # the guided sample is the target: no caption dropout, no guidance
        config.flow.text_dropout = 0.0
        config.sample.steps, config.sample.guidance = 4, 1.0

    if arg.variant == "blockworld":  # mixed precision: 1.5x the steps/s of float32 at equal loss (README)
        config.model.dtype = "mixed"
    config.optimizer.learning_rate = variant["lr"]
    config.optimizer.weight_decay = 0.0 if arg.variant == "lora" else 0.01
    config.checkpoint.every_steps = 500
    config.log.eval_every_steps = 250
    config.lock()
    return config
