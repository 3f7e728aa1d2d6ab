"""Every way to prompt one model: text->video/image, image->video, extension both ways, loops,
connecting two videos and SDEdit editing, all as conditioning masks over latent frames.

    generator = Generator("runs/t2v_tiny")
    result = generator.generate(Request(prompt="a red ball", frames=17, height=32, width=56))
    write(result, "out/red_ball.mp4")     # + .gif (+ .png for an image) + .json sidecar

Given frames are held at t = 0 through sampling (as in training), so they come back through the
decoder. Videos longer than the model's window (its longest training clip) are made by
autoregressive extension: each chunk is conditioned on the last `overlap` latent frames.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from sora_jax import prompts, request_checks
from sora_jax.data import video_folder, video_io
from sora_jax.diffusion import flow
from sora_jax.evaluation.metrics import psnr
from sora_jax.models.vae import VideoVAE, nearest_frame_counts, nearest_multiples
from sora_jax.pipelines import t2v as t2v_pipeline
from sora_jax.request_checks import UserInputError

# Each prompting mode and what it needs (shown by `sora-jax sample --help`).
MODE_NEEDS = {
    "t2v": "text -> video: --prompt, --frames (1 + 4k)",
    "t2i": "text -> image: --prompt (one frame)",
    "i2v": "image -> video: --image (first frame), --prompt, --frames",
    "extend_forward": "continue a video: --video, --frames new frames (multiple of 4)",
    "extend_backward": "make what came before a video: --video, --frames new frames",
    "loop": "a transition from a video's end back into its start: --video, --frames new frames",
    "connect": "a transition from --video into --video2: --frames new frames",
    "edit": "SDEdit: --video redrawn to --prompt, --strength 0 (keep) .. 1 (ignore it)",
}
MODES = tuple(MODE_NEEDS)


@dataclasses.dataclass
class Request:
    prompt: str = ""
    mode: str = "t2v"
    frames: int = 17  # t2v / i2v: output frames; extend / loop / connect: new frames
    height: int | None = None  # None: the input's size, or the training data's largest size
    width: int | None = None
    image: str | np.ndarray | None = None  # i2v
    video: str | np.ndarray | None = None  # extend / loop / connect / edit
    video2: str | np.ndarray | None = None  # connect
    strength: float = 0.6  # edit: 0 returns the input, 1 ignores it
    seed: int = 0
    steps: int | None = None  # None: the run's config.sample.steps
    guidance: float | None = None  # None: the run's config.sample.guidance
    shift: float | None = None  # the sampler's grid shift; None: config.sample.shift, else the training one
    sampler: str = "euler"
    enrich: bool = True
    window: int | None = None  # latent frames per denoising call; None: the longest training clip
    overlap: int = 1  # latent frames carried between autoregressive chunks
    allow_long: bool = False  # go past request_checks' time and memory bounds


@dataclasses.dataclass
class Result:
    video: np.ndarray  # uint8 [T, H, W, 3]
    meta: dict


def _caption(request: Request, frames: int) -> tuple[str, dict | None]:
    """(the caption the model sees, the enrichment behind it for the sidecar: the scene it
    describes and what the prompt asked that the world cannot draw; None without enrichment)."""
    if not request.enrich:
        return request.prompt, None
    enrichment = prompts.enrichment(request.prompt, frames=frames, seed=request.seed)
    return enrichment.caption, {"objects": enrichment.objects, "occluders": enrichment.occluders,
                                "camera": enrichment.camera, "unhonoured": enrichment.unhonoured}




def _load_frames(value, name: str) -> np.ndarray:
    if value is None:
        raise UserInputError(f"this mode needs --{name}")
    if isinstance(value, np.ndarray):
        return video_io.to_rgb(value) if value.dtype == np.uint8 else video_io.as_uint8(value)
    try:
        frames, _ = video_io.read_frames(value)
    except FileNotFoundError:
        raise UserInputError(f"--{name}: {value} does not exist") from None
    except video_io.VideoReadError as error:
        raise UserInputError(f"--{name}: cannot read it ({error})") from None
    return frames


class Generator:
    """A trained T2V run (workdir or export) with its VAE, ready to sample; with `adapter`, a LoRA
    run's adapters applied to it."""

    def __init__(self, workdir: str | pathlib.Path, adapter: str | pathlib.Path | None = None):
        try:
            self.pipeline, self.params, meta, self.step = t2v_pipeline.load(workdir, adapter)
        except (ValueError, FileNotFoundError) as error:
            raise UserInputError(str(error)) from None
        self.workdir = pathlib.Path(workdir)
        self.config = self.pipeline.config
        self.vae: VideoVAE = self.pipeline.vae.model
        self.temporal = self.vae.temporal
        self.multiple = self.vae.spatial * max(self.pipeline.model.patch[1:])
        self.default_size, self.train_window = self._training_shape(meta)

    def _training_shape(self, meta: dict) -> tuple[tuple[int, int], int]:
        """(largest training (H, W), latent frames of the longest training clip), as the run
        stored them; runs finished before the shape was stored: PhysWorld's, from its builder."""
        if "training_shape" in meta:
            shape = meta["training_shape"]
            return tuple(shape["size"]), int(shape["latent_frames"])
        dataset = self.config.data.dataset
        from sora_jax.data import worlds

        if not worlds.is_world(dataset):
            raise UserInputError(f"the run's meta has no training_shape and {dataset!r} is not a procedural world: "
                                 f"retrain, or export it again from a newer checkpoint")
        size, frames = worlds.variant(dataset).largest_clip()
        return size, 1 + (frames - 1) // self.temporal

    # --- latents -------------------------------------------------------------------------------
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] -> normalized latents [t, h, w, c] (T trimmed to 1 + k·temporal)."""
        usable = 1 + (frames.shape[0] - 1) // self.temporal * self.temporal
        return self.pipeline.encode(frames[None, :usable])[0]

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.pipeline.decode(latents[None])[0]

    def _check_size(self, height: int, width: int) -> None:
        for name, side in (("height", height), ("width", width)):
            if side % self.multiple or side <= 0:
                raise UserInputError(f"--{name}={side} is not a multiple of {self.multiple} (VAE {self.vae.spatial}x "
                                     f"x patch {self.pipeline.model.patch[1]}); nearest valid: "
                                     f"{' or '.join(map(str, nearest_multiples(side, self.multiple)))}")

    def _frames_to_latents(self, frames: int, new: bool) -> int:
        """Output frames -> latent frames (t2v: 1 + k·ft), or new frames -> new latent frames (k·ft)."""
        if new:
            if frames <= 0 or frames % self.temporal:
                raise UserInputError(f"--frames={frames} new frames must be a positive multiple of {self.temporal}")
            return frames // self.temporal
        if frames <= 0 or (frames - 1) % self.temporal:
            valid = nearest_frame_counts(frames, self.temporal)
            raise UserInputError(f"--frames={frames} must be 1 + k·{self.temporal} (the causal VAE's rule); nearest "
                                 f"valid: {' or '.join(map(str, valid))}")
        return 1 + (frames - 1) // self.temporal

    def _input_video(self, value, name: str, size: tuple[int, int], min_frames: int = 1) -> np.ndarray:
        frames = _load_frames(value, name)
        if frames.shape[0] < min_frames:
            raise UserInputError(f"--{name} has {frames.shape[0]} frames; this mode needs at least {min_frames}")
        if frames.shape[1:3] != tuple(size):
            frames = video_folder.resize_cover_crop(frames, *size)
        return frames

    # --- sampling ------------------------------------------------------------------------------
    def _denoise(self, caption: str, latents: np.ndarray, given: np.ndarray, request: Request, seed: int,
                 start: float = 1.0, noise: np.ndarray | None = None) -> np.ndarray:
        """One sampling call over latents [t, h, w, c] with given frames (bool [t]) held fixed."""
        out = self.pipeline.sample_latents(
            self.params, [caption], latents.shape, seed=seed, steps=request.steps, guidance=request.guidance,
            cond_latents=jnp.asarray(latents[None]), cond_mask=jnp.asarray(given[None]), start=start,
            noise=None if noise is None else jnp.asarray(noise[None]), method=request.sampler, shift=request.shift)
        return out[0]

    def _check_cost(self, request: Request, frames: int, size: tuple[int, int], window: int) -> None:
        """Before a generation longer than one window: its estimated time and memory, printed, and
        refused past request_checks' bounds unless `allow_long`."""
        if request.mode not in ("t2v", "i2v", "extend_forward", "extend_backward"):
            return
        new = self._frames_to_latents(frames, new=request.mode.startswith("extend"))
        if new <= window:
            return
        cost = request_checks.estimate(self, request, new, size)
        print(f"sora-jax: {request.mode} of {frames} frames: {cost.describe()}", file=sys.stderr, flush=True)
        request_checks.check_cost(cost, request.allow_long)

    def _extend(self, caption: str, latents: np.ndarray, new: int, request: Request, window: int,
                backward: bool = False) -> np.ndarray:
        """Appends (or prepends) `new` latent frames, at most `window` per call, each call
        conditioned on the nearest `overlap`.. frames already there; a bar shows windows done."""
        chunk = 0
        windows, have, left = 0, len(latents), new
        while left > 0:  # the loop below without sampling: how many windows it will run
            context = min(have, max(request.overlap, window - left), window - 1)
            step = min(left, window - context)
            have, left, windows = have + step, left - step, windows + 1
        bar = tqdm.tqdm(total=windows, desc="windows", unit="window", disable=windows < 3, file=sys.stderr)
        while new > 0:
            context = min(len(latents), max(request.overlap, window - new), window - 1)
            step_new = min(new, window - context)
            shape = (step_new, *latents.shape[1:])
            fresh = np.zeros(shape, np.float32)
            if backward:
                block = np.concatenate([fresh, latents[:context]])
                given = np.arange(len(block)) >= step_new
            else:
                block = np.concatenate([latents[len(latents) - context :], fresh])
                given = np.arange(len(block)) < context
            sampled = self._denoise(caption, block, given, request, seed=request.seed + 1000 * chunk)
            latents = (np.concatenate([sampled[:step_new], latents]) if backward
                       else np.concatenate([latents, sampled[context:]]))
            new -= step_new
            chunk += 1
            bar.update(1)
        bar.close()
        return latents

    def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        request_checks.check_request(request)
        mode = request.mode
        frames = 1 if mode == "t2i" else request.frames
        size = (request.height or self.default_size[0], request.width or self.default_size[1])
        source = request.video if mode not in ("t2v", "t2i", "i2v") else request.image
        if request.height is None and request.width is None and source is not None:
            first = _load_frames(source, "video" if mode not in ("i2v",) else "image")
            size = (first.shape[1] // self.multiple * self.multiple or self.multiple,
                    first.shape[2] // self.multiple * self.multiple or self.multiple)
        self._check_size(*size)
        window = request.window or self.train_window
        if window < 2 and mode not in ("t2i", "edit"):
            raise UserInputError(f"window={window} latent frames leaves no room to generate; use at least 2")
        self._check_cost(request, frames, size, window)
        enriched, enrichment = _caption(request, frames)
        h, w = size[0] // self.vae.spatial, size[1] // self.vae.spatial
        channels = self.vae.latent_channels
        trim = 0  # output frames to drop at the end (loop)
        tail = None  # latents given at the end (extend_backward, connect): their frames 1.. are spliced

        if mode in ("t2v", "t2i"):
            total = self._frames_to_latents(frames, new=False)
            first = min(total, window)
            latents = self._denoise(enriched, np.zeros((first, h, w, channels), np.float32), np.zeros(first, bool),
                                    request, request.seed)
            latents = self._extend(enriched, latents, total - first, request, window) if total > first else latents
        elif mode == "i2v":
            image = self._input_video(request.image, "image", size)[:1]
            total = self._frames_to_latents(frames, new=False)
            if total < 2:
                raise UserInputError(f"--frames={frames}: image->video needs at least {1 + self.temporal} frames")
            latents = self._extend(enriched, self.encode(image), total - 1, request, window)
        elif mode in ("extend_forward", "extend_backward"):
            video = self.encode(self._input_video(request.video, "video", size))
            latents = self._extend(enriched, video, self._frames_to_latents(frames, new=True), request, window,
                                   backward=mode == "extend_backward")
            tail = video if mode == "extend_backward" else None
        elif mode == "loop":
            # The transition runs from the input's last latent into its first two (frames 0..ft),
            # exactly as connect runs into a second video, so played in a loop it leads back
            # into frame 0. The closing latents only steer it and are dropped after decoding.
            video = self.encode(self._input_video(request.video, "video", size, min_frames=1 + self.temporal))
            new = self._frames_to_latents(frames, new=True)
            closing = video[: min(3, len(video))]
            block = np.concatenate([video[-1:], np.zeros((new, h, w, channels), np.float32), closing])
            given = np.r_[True, np.zeros(new, bool), np.ones(len(closing), bool)]
            transition = self._denoise(enriched, block, given, request, request.seed)[1 : 1 + new]
            latents = np.concatenate([video, transition, closing])
            trim = len(closing) * self.temporal  # frame 0's latent decodes to `temporal` frames mid-sequence
        elif mode == "connect":
            first = self.encode(self._input_video(request.video, "video", size))
            second = self.encode(self._input_video(request.video2, "video2", size))
            new = self._frames_to_latents(frames, new=True)
            block = np.concatenate([first[-1:], np.zeros((new, h, w, channels), np.float32), second[:1]])
            given = np.r_[True, np.zeros(new, bool), True]
            transition = self._denoise(enriched, block, given, request, request.seed)[1:-1]
            latents = np.concatenate([first, transition, second])
            tail = second
        else:  # edit (SDEdit): noise the input to t(strength), then denoise from there
            video = self.encode(self._input_video(request.video, "video", size))
            shift = request.shift or self.pipeline.sampling_shift((1, *video.shape))
            t_start = float(flow.shift_timesteps(request.strength, shift))
            noise = np.asarray(jax.random.normal(jax.random.PRNGKey(request.seed), video.shape))
            noised = (1.0 - t_start) * video + t_start * noise
            latents = (video if request.strength == 0 else
                       self._denoise(enriched, noised, np.zeros(len(video), bool), request, request.seed,
                                     start=request.strength, noise=noised))
        out = self.decode(latents)
        extra = {}
        if tail is not None and len(tail) > 1:
            # The causal decoder makes frames depend on what precedes them; given frames must come
            # back, so frames 1.. of an input placed at the end are its own decoding (frame 0's
            # latent, decoded in context, bridges into them).
            own = self.decode(tail)[1:]
            extra["splice_psnr"] = float(psnr(own, out[len(out) - len(own) :]))  # how seamless the bridge is
            out = np.concatenate([out[: len(out) - len(own)], own])
        if trim:  # loop: how closely the decoded closing frames match the input's own
            closing_frames = trim - self.temporal  # the input's frames 1.., decoded after the transition
            reference = self.decode(video[: trim // self.temporal])[1:]
            extra["loop_closure_psnr"] = float(psnr(reference, out[len(out) - closing_frames :]))
            out = out[: len(out) - trim]
        one_call = (1, min(len(latents), window), *latents.shape[1:])  # a sampling call's latents (its shift)
        meta = {"prompt": request.prompt, "enriched_prompt": enriched, "enrichment": enrichment, "mode": mode,
                "seed": request.seed,
                "sampler": request.sampler, "steps": request.steps or self.config.sample.steps,
                "shift": request.shift or self.pipeline.sampling_shift(one_call),
                "guidance": self.config.sample.guidance if request.guidance is None else request.guidance,
                "strength": request.strength if mode == "edit" else None, "frames": int(out.shape[0]),
                "height": int(out.shape[1]), "width": int(out.shape[2]), "latent_frames": int(len(latents)),
                "window": window, "checkpoint_step": int(self.step), "seconds": time.perf_counter() - started, **extra}
        return Result(out, meta)


def _batch_key(generator: Generator, request: Request):
    """Requests that can share one sampling call: text->video/image within the window, same
    shape and sampler settings. None for the rest (they run one by one)."""
    if request.mode not in ("t2v", "t2i"):
        return None
    frames = 1 if request.mode == "t2i" else request.frames
    latent_frames = generator._frames_to_latents(frames, new=False)
    if latent_frames > (request.window or generator.train_window):
        return None
    size = (request.height or generator.default_size[0], request.width or generator.default_size[1])
    return (latent_frames, size, request.steps, request.guidance, request.sampler, request.shift)


def generate_batch(generator: Generator, requests: list[Request]) -> list[Result]:
    """Many prompts: those that fit one sampling call together are batched (one DiT call per
    step for all of them); each keeps its own seed's noise, so a video does not depend on its
    batch-mates (equal to `generate` alone up to float rounding)."""
    results: list[Result | None] = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        key = _batch_key(generator, request)
        if key is None:
            results[index] = generator.generate(request)
        else:
            groups.setdefault(key, []).append(index)
    for (latent_frames, size, steps, guidance, sampler, shift), members in groups.items():
        started = time.perf_counter()
        generator._check_size(*size)
        shape = (latent_frames, size[0] // generator.vae.spatial, size[1] // generator.vae.spatial,
                 generator.vae.latent_channels)
        captions, enrichments = [], []
        for i in members:
            request = requests[i]
            caption, enrichment = _caption(request, 1 if request.mode == "t2i" else request.frames)
            captions.append(caption)
            enrichments.append(enrichment)
        noise = np.concatenate([np.asarray(jax.random.normal(jax.random.PRNGKey(requests[i].seed), (1, *shape)))
                                for i in members])
        latents = generator.pipeline.sample_latents(generator.params, captions, shape, steps=steps, guidance=guidance,
                                                noise=jnp.asarray(noise), method=sampler, shift=shift)
        videos = generator.pipeline.decode(latents)
        seconds = (time.perf_counter() - started) / len(members)
        for i, caption, enrichment, video in zip(members, captions, enrichments, videos):
            request = requests[i]
            results[i] = Result(video, {
                "prompt": request.prompt, "enriched_prompt": caption, "enrichment": enrichment, "mode": request.mode,
                "seed": request.seed,
                "sampler": sampler, "steps": steps or generator.config.sample.steps,
                "shift": shift or generator.pipeline.sampling_shift(latents.shape),
                "guidance": generator.config.sample.guidance if guidance is None else guidance,
                "frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                "latent_frames": latent_frames, "batch": len(members), "checkpoint_step": int(generator.step),
                "seconds": seconds})
    return results


def write(result: Result, out: str | pathlib.Path, fps: float = 8.0) -> list[pathlib.Path]:
    """MP4 (native size, so it can be fed back: extend, loop, edit) + GIF (enlarged to >= 128 px
    for viewing) (+ PNG for an image) + a JSON sidecar next to `out` (its suffix is replaced)."""
    base = pathlib.Path(out).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    scale = max(1, 128 // result.video.shape[1])
    paths = [video_io.write_video(base.with_suffix(".mp4"), result.video, fps=fps),
             video_io.write_video(base.with_suffix(".gif"), result.video, fps=fps, scale=scale)]
    if pathlib.Path(out).suffix.lower() == ".webm":
        paths.append(video_io.write_video(base.with_suffix(".webm"), result.video, fps=fps))
    if result.video.shape[0] == 1:
        import imageio.v3 as iio

        png = base.with_suffix(".png")
        iio.imwrite(png, result.video[0])
        paths.append(png)
    sidecar = base.with_suffix(".json")
    sidecar.write_text(json.dumps(result.meta, indent=1))
    return [*paths, sidecar]
