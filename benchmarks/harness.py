"""What the benchmarks share: the code they time and the tools to A/B it against other commits.

Benchmarks import this module (`from harness import ...`; they run as `python benchmarks/X.py`),
never each other. Nothing here is a test: numbers depend on the machine.
"""

import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sora_jax import host_memory
from sora_jax.configs import vae as vae_configs
from sora_jax.models import dit
from sora_jax.models.dit import DTYPES, DiT
from sora_jax.scaling import flops
from sora_jax.train import throughput, trainer
from sora_jax.train.vae_task import VaeTask

KERNEL = "sora_jax/models/attention.py"


# --- code at another commit ------------------------------------------------------------------------


def source_at(revision: str, source_path: str, file_name: str | None = None) -> pathlib.Path:
    """`source_path` (a file of this repository) as it was at `revision`, written to a new temporary
    directory as `file_name` (default: its own name)."""
    source = subprocess.run(["git", "show", f"{revision}:{source_path}"], capture_output=True, text=True,
                            check=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / (file_name or pathlib.Path(source_path).name)
    path.write_text(source)
    return path


def module_at(revision: str, source_path: str = KERNEL):
    """`source_path` (a module of this repository) as it was at `revision`, loaded as its own module."""
    name = f"{pathlib.Path(source_path).stem}_{revision}".replace("-", "_").replace("~", "_").replace("^", "_")
    path = source_at(revision, source_path, f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # flax's dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --- the DiT training step (bench_dit_step, ab_dit_block, sweep_flash_block) --------------------------


TEXT = 32


def _inputs(latent, batch):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, *latent, 16)), jnp.float32)
    t = jnp.full((batch, latent[0]), 0.5, jnp.float32)
    text = {"tokens": jnp.asarray(rng.normal(size=(batch, TEXT, 384)), jnp.float32),
            "mask": jnp.ones((batch, TEXT), bool), "pooled": jnp.asarray(rng.normal(size=(batch, 384)), jnp.float32)}
    return x, t, text


def jax_steps(width: int, depth: int, heads: int, latent, batch: int, dtype: str, attention: str, remat: str = "none",
              model_class=DiT, layout: str = "full"):
    """(train step runner, sampling step runner, facts) for one configuration, compiled and warm
    (`model_class`: this repo's DiT, or one loaded from another commit by `ab_dit_block.py`)."""
    compute, matmul = DTYPES[dtype]
    model = model_class(latent_channels=16, width=width, depth=depth, heads=heads, text_encoder="minilm",
                        text_length=TEXT,
                dtype=compute, matmul_dtype=matmul, remat=remat, attention_implementation=attention,
                **({"layout": layout} if layout != "full" else {}))  # older commits' DiTs (ab_dit_block) lack it
    x, t, text = _inputs(latent, batch)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x, t, text)["params"]
    optimizer = optax.adamw(1e-4)
    state = (params, optimizer.init(params))

    def loss(p):
        return jnp.mean((model.apply({"params": p}, x, t, text) - x) ** 2)

    def step(state):
        params, opt = state
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = optimizer.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), value

    started = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state).compile()
    compile_seconds = time.perf_counter() - started
    x2, t2, text2 = _inputs(latent, 2 * batch)  # classifier-free guidance: conditional + unconditional
    sample = jax.jit(lambda p, x, t, text: model.apply({"params": p}, x, t, text)).lower(params, x2, t2,
                                                                                         text2).compile()
    holder = {"state": state}

    def train():
        holder["state"], value = compiled(holder["state"])
        value.block_until_ready()

    def sampling():
        sample(holder["state"][0], x2, t2, text2).block_until_ready()

    train()
    host_memory.release_excess()  # as the trainer does after a step: other shapes follow (host_memory)
    sampling()
    host_memory.release_excess()
    shape = flops.DiTShape(width=width, depth=depth, heads=heads, latent_channels=16, text_length=TEXT, layout=layout)
    grid = shape.grid(latent)
    return train, sampling, {
        "compile_seconds": compile_seconds, "temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
        "sample_temp_bytes": sample.memory_analysis().temp_size_in_bytes,
        "params": int(sum(p.size for p in jax.tree.leaves(params))),
        "train_flops": flops.train_step_flops(shape, latent, batch),
        "sample_flops": flops.sample_flops(shape, latent, steps=1, guidance=2.0, batch=batch),
        "tokens": grid[0] * grid[1] * grid[2] * batch}


# --- one DiT block's gradient (profile_dit_block, ab_dit_block) --------------------------------------


def block_gradient(width: int, matmul_dtype, attention: str, dtype=jnp.float32, module=dit):
    """(jitted gradient of one block's summed squared output, the block's params): `module`'s
    Block (this repo's `dit`, or one loaded from another commit) on one 2,048-token clip."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 8, 256, width)), jnp.float32)
    cond = jnp.asarray(rng.normal(size=(1, 8, width)), jnp.float32)
    context = jnp.asarray(rng.normal(size=(1, 33, width)), jnp.float32)
    mask = jnp.ones((1, 33), bool)
    cos, sin = module.rope_3d((8, 16, 16), 64)
    block = module.Block(width // 64, dtype=dtype, matmul_dtype=matmul_dtype, implementation=attention)
    params = jax.tree.map(lambda p: p + 0.01, block.init(jax.random.PRNGKey(0), x, cond, context, mask, cos, sin))
    grad = jax.jit(jax.grad(lambda p: jnp.sum(block.apply(p, x, cond, context, mask, cos, sin) ** 2)))
    return grad, params


# --- the VAE trainer's compiled step (vae_step_cost, bench_vae_blocks) --------------------------------


def compiled_train_step(variant: str):
    """(run one step, facts) for the trainer's compiled step of `variant` on its video bucket."""
    config = vae_configs.get_config(variant)
    task = VaeTask(config)
    setup = trainer.build(config, task)
    side = config.data.crop_side
    shape = (config.data.batch_size, config.data.crop_frames, side, side, 3)
    video = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    batch = {"video": jax.device_put(video, setup.batch_sharding)}
    started = time.perf_counter()
    compiled = setup.train_step.lower(setup.state, batch).compile()
    facts = {"variant": variant, "batch": list(shape), "params": setup.param_count,
             "compile_seconds": time.perf_counter() - started, "step_flops": throughput.compiled_flops(compiled),
             "temp_bytes": compiled.memory_analysis().temp_size_in_bytes, "total_steps": config.total_steps}
    state = {"value": setup.state}

    def run():
        state["value"], metrics = compiled(state["value"], batch)
        jax.block_until_ready(metrics)

    return run, facts
