"""Sampling requests checked before any work: the values (`check_request`, no model needed), the
output path (`check_output`), and the cost of a long generation (`estimate`, with the model):
time and memory printed before starting, refused past a bound unless the request allows it.

    check_request(request); check_output("out/a.mp4")      # in the CLI, before the model loads
    cost = estimate(generator, request)                     # windows, DiT calls, seconds, bytes
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from sora_jax.diffusion import samplers
from sora_jax.scaling import flops

OUTPUT_SUFFIXES = (".mp4", ".gif", ".png", ".webm")
# Past these a generation needs `allow_long` (`--allow_long`): ten minutes, half the machine's memory.
MAX_SECONDS = 600.0
MAX_MEMORY_FRACTION = 0.5


class UserInputError(ValueError):
    """A request that cannot be sampled as asked: one line naming the flag and what is valid."""


def check_request(request) -> None:
    """Flag values of a `generate.Request` that no model is needed to reject."""
    from sora_jax.generate import MODES

    if request.mode not in MODES:
        raise UserInputError(f"--mode={request.mode!r} is unknown; valid: {', '.join(MODES)}")
    if request.sampler not in samplers.SAMPLERS:
        raise UserInputError(f"--sampler={request.sampler!r} is unknown; valid: {', '.join(samplers.SAMPLERS)}")
    if not 0.0 <= request.strength <= 1.0:
        raise UserInputError(f"--strength={request.strength} must be in [0, 1]")
    if request.steps is not None and request.steps < 1:
        raise UserInputError(f"--steps={request.steps} must be at least 1")
    if request.guidance is not None and not (math.isfinite(request.guidance) and request.guidance >= 0):
        raise UserInputError(f"--guidance={request.guidance} must be a finite number >= 0 (1 turns guidance off)")
    if request.shift is not None and not (math.isfinite(request.shift) and request.shift > 0):
        raise UserInputError(f"--shift={request.shift} must be a finite number > 0 (1: a uniform grid)")
    if request.mode != "t2i" and request.frames < 1:
        raise UserInputError(f"--frames={request.frames} must be at least 1")


def check_output(out: str | pathlib.Path) -> pathlib.Path:
    """`out` with a suffix the writer knows, in a directory that exists (made here) and is writable."""
    path = pathlib.Path(out)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserInputError(f"--out={out}: unknown suffix {path.suffix or '(none)'!r}; valid: "
                           f"{', '.join(OUTPUT_SUFFIXES)} (an MP4, a GIF and a JSON sidecar are written beside it)")
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(f"--out={out}: cannot create {directory} ({error.strerror or error})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserInputError(f"--out={out}: {directory} is not writable")
    return path


@dataclasses.dataclass(frozen=True)
class Cost:
    latent_frames: int  # of the whole output
    windows: int  # denoising calls of at most `window` latent frames
    dit_calls: int
    seconds: float  # DiT calls at the measured seconds per call, plus decoding
    bytes: int  # peak of decoding the whole video at once (scaled from one window's compiled decode)

    def describe(self) -> str:
        return (f"{self.latent_frames} latent frames in {self.windows} windows, {self.dit_calls} DiT calls: "
                f"about {_duration(self.seconds)} and {self.bytes / 2**30:.1f} GiB")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200
                                                      else f"{seconds / 3600:.1f} h")


def estimate(generator, request, latent_frames: int, size: tuple[int, int]) -> Cost:
    """What sampling `latent_frames` at `size` costs with `generator`'s model: a DiT call on one
    window is compiled and timed, one window's decode compiled for its memory; both scaled."""
    window = request.window or generator.train_window
    overlap = max(1, min(request.overlap, window - 1))
    windows = 1 + max(0, math.ceil((latent_frames - window) / (window - overlap)))
    steps = request.steps or generator.config.sample.steps
    calls_per_window = flops.sampler_evaluations(request.sampler, steps)
    h, w = size[0] // generator.vae.spatial, size[1] // generator.vae.spatial
    shape = (min(window, latent_frames), h, w, generator.vae.latent_channels)
    call_seconds, decode_seconds, decode_bytes = _window_costs(generator, shape)
    scale = latent_frames / shape[0]
    return Cost(latent_frames, windows, windows * calls_per_window,
                windows * calls_per_window * call_seconds + scale * decode_seconds, int(scale * decode_bytes))


@functools.lru_cache(maxsize=8)
def _window_costs(generator, shape: tuple[int, ...]) -> tuple[float, float, int]:
    """(seconds of one guided DiT call, seconds and temporary bytes of one decode) on `shape`."""
    pipeline = generator.pipeline
    text = pipeline.encode_prompts(["", ""])
    from sora_jax.pipelines.t2v import text_inputs

    x = jnp.zeros((2, *shape), jnp.float32)
    t = jnp.ones((2, shape[0]), jnp.float32)
    call = jax.jit(lambda p, x, t, c: pipeline.model.apply({"params": p}, x, t, c))
    inputs = text_inputs(text, pipeline.encoder)
    jax.block_until_ready(call(generator.params, x, t, inputs))
    started = time.perf_counter()
    jax.block_until_ready(call(generator.params, x, t, inputs))
    call_seconds = time.perf_counter() - started
    vae = pipeline.vae
    decode = jax.jit(lambda p, z: vae.model.apply({"params": p}, z, method=vae.model.decode))
    latents = jnp.zeros((1, *shape), jnp.float32)
    compiled = decode.lower(vae.params, latents).compile()
    started = time.perf_counter()
    jax.block_until_ready(compiled(vae.params, latents))
    decode_seconds = time.perf_counter() - started
    output_bytes = int(np.prod(jax.eval_shape(decode, vae.params, latents).shape)) * 4
    return call_seconds, decode_seconds, compiled.memory_analysis().temp_size_in_bytes + output_bytes


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_cost(cost: Cost, allow_long: bool) -> None:
    """Refuses a generation past MAX_SECONDS or half the machine's memory unless `allow_long`."""
    limit = MAX_MEMORY_FRACTION * physical_memory()
    if allow_long or (cost.seconds <= MAX_SECONDS and cost.bytes <= limit):
        return
    raise UserInputError(f"this generation would take {cost.describe()} (bounds: {_duration(MAX_SECONDS)}, "
                       f"{limit / 2**30:.0f} GiB): ask for fewer --frames, or pass --allow_long to go ahead")
