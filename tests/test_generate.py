"""Every prompting mode on one model: given frames come back through the decoder, edits, loops,
connections, seeds, and clear errors for bad requests."""

import json
import os
import re

import numpy as np
import pytest

from sora_jax import generate, prompts
from sora_jax.data import physworld
from sora_jax.evaluation.metrics import psnr
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def generator(micro_t2v):
    return generate.Generator(micro_t2v)


def _clip(seed, frames=9, height=32, width=56):
    return physworld.render_clip([seed, 5], frames, height, width).video


def _recon(generator, video):
    return generator.decode(generator.encode(video))


def _request(**kwargs):
    return generate.Request(**{"prompt": "a red ball", "steps": 3, "enrich": False, **kwargs})


def test_text_to_video_image_and_seeds(generator):
    video = generator.generate(_request(frames=9)).video
    assert video.shape == (9, 32, 56, 3) and video.dtype == np.uint8
    again = generator.generate(_request(frames=9)).video
    np.testing.assert_array_equal(video, again)  # same seed, same video
    assert not np.array_equal(video, generator.generate(_request(frames=9, seed=1)).video)
    image = generator.generate(_request(mode="t2i", height=56, width=32))
    assert image.video.shape == (1, 56, 32, 3) and image.meta["latent_frames"] == 1
    wide = generator.generate(_request(mode="t2i", height=48, width=96)).video  # larger than trained
    assert wide.shape == (1, 48, 96, 3)


def test_long_video_by_autoregressive_extension(generator):
    result = generator.generate(_request(frames=33))  # 9 latent frames > the 5-frame training window
    assert result.video.shape[0] == 33 and result.meta["latent_frames"] == 9 and result.meta["window"] == 5


def test_image_to_video_keeps_the_image(generator):
    image = _clip(1, frames=1)
    video = generator.generate(_request(mode="i2v", image=image, frames=9)).video
    assert psnr(_recon(generator, image)[0], video[0]) >= 30


def test_extend_forward_and_backward_keep_the_given_frames(generator):
    clip = _clip(2)
    recon = _recon(generator, clip)
    forward = generator.generate(_request(mode="extend_forward", video=clip, frames=8)).video
    assert forward.shape[0] == 17 and psnr(recon, forward[:9]) >= 30
    backward = generator.generate(_request(mode="extend_backward", video=clip, frames=8)).video
    assert backward.shape[0] == 17 and psnr(recon[1:], backward[-8:]) >= 30


def test_connect_and_loop(generator):
    a, b = _clip(3), _clip(4)
    connected = generator.generate(_request(mode="connect", video=a, video2=b, frames=8)).video
    assert psnr(_recon(generator, a), connected[:9]) >= 30  # a comes back
    assert psnr(_recon(generator, b)[1:], connected[-8:]) >= 30  # b comes back
    assert connected.shape[0] == 9 + 8 + 4 + 8  # b's first frame is bridged by one latent group
    loop = generator.generate(_request(mode="loop", video=a, frames=8))
    assert loop.video.shape[0] == 17 and psnr(_recon(generator, a), loop.video[:9]) >= 30
    # Continuity: decoded after the transition, the closing latents reproduce a's frames 1..8
    # (26-28 dB measured with this 3-step micro DiT; the frames the user sees end right before them).
    assert loop.meta["loop_closure_psnr"] > 20


def test_edit_strength_zero_returns_the_input_and_one_ignores_it(generator):
    a, b = _clip(5), _clip(6)
    unchanged = generator.generate(_request(mode="edit", video=a, strength=0.0)).video
    np.testing.assert_array_equal(unchanged, _recon(generator, a))
    from_a = generator.generate(_request(mode="edit", video=a, strength=1.0)).video
    from_b = generator.generate(_request(mode="edit", video=b, strength=1.0)).video
    np.testing.assert_array_equal(from_a, from_b)
    halfway = generator.generate(_request(mode="edit", video=a, strength=0.5)).video
    assert psnr(_recon(generator, a), halfway) > psnr(_recon(generator, a), from_a)


def test_the_sampling_shift_moves_the_grid_and_is_recorded(generator):
    default = generator.generate(_request(frames=5))  # at the training shift, named in the meta
    same = generator.generate(_request(frames=5, shift=default.meta["shift"]))
    np.testing.assert_array_equal(same.video, default.video)
    shifted = generator.generate(_request(frames=5, shift=3.0))
    assert shifted.meta["shift"] == 3.0 and not np.array_equal(shifted.video, default.video)
    with generator.config.unlocked():  # a run's own default (a reflow student's sample.shift)
        generator.config.sample.shift = 3.0
    try:
        np.testing.assert_array_equal(generator.generate(_request(frames=5)).video, shifted.video)
    finally:
        with generator.config.unlocked():
            generator.config.sample.shift = 0.0


def test_heun_at_n_steps_is_close_to_euler_at_4n(generator):
    runs = {(m, n): generator.generate(_request(frames=5, sampler=m, steps=n, guidance=1.0)).video.astype(float)
            for m, n in [("heun", 4), ("euler", 4), ("euler", 16), ("ab2", 4)]}
    reference = runs[("euler", 16)]
    assert np.abs(runs[("heun", 4)] - reference).mean() < np.abs(runs[("euler", 4)] - reference).mean()


@pytest.mark.parametrize("kwargs,message", [
    (dict(height=30), "nearest valid: 24 or 32"),
    (dict(frames=10), "must be 1 + k·4"),
    (dict(mode="extend_forward", frames=8), "needs --video"),
    (dict(mode="extend_forward", video="/nonexistent.mp4", frames=8), "cannot read it"),
    (dict(mode="extend_forward", video=np.zeros((9, 32, 56, 3), np.uint8), frames=6), "multiple of 4"),
    (dict(mode="loop", video=np.zeros((1, 32, 56, 3), np.uint8), frames=8), "at least 5"),
    (dict(mode="warp"), "valid: t2v, t2i"),
    (dict(sampler="rk45"), "valid: euler, heun, ab2"),
    (dict(mode="edit", video=np.zeros((9, 32, 56, 3), np.uint8), strength=1.5), "in [0, 1]"),
])
def test_bad_requests_fail_clearly(generator, kwargs, message):
    with pytest.raises(generate.UserInputError, match=re.escape(message)):
        generator.generate(_request(**kwargs))


def test_cli_writes_video_gif_png_and_sidecar(micro_t2v, tmp_path):
    result = run_cli("sample", f"--workdir={micro_t2v}", "--prompt=a blue square on the left", "--mode=t2i",
                     "--steps=2", f"--out={tmp_path}/image.png", "-v")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "enriched:" in result.stdout  # -v shows the caption the model saw
    assert "not honoured: a position" in result.stdout  # what the world cannot draw is said, always
    for suffix in (".mp4", ".gif", ".png", ".json"):
        assert (tmp_path / f"image{suffix}").stat().st_size > 0
    sidecar = json.loads((tmp_path / "image.json").read_text())
    assert sidecar["enrichment"]["objects"][0]["color"] == "blue" and sidecar["enrichment"]["unhonoured"]
    assert sidecar["enriched_prompt"].count("blue") >= 1
    bad = run_cli("sample", f"--workdir={micro_t2v}", "--height=30", f"--out={tmp_path}/x.mp4")
    assert bad.returncode == 2 and "nearest valid" in bad.stderr and "Traceback" not in bad.stderr


def test_enrichment_fills_the_blanks_deterministically():
    short = "two blue squares"
    caption = prompts.enrich(short, seed=3)
    assert caption == prompts.enrich(short, seed=3) and caption.count("blue") >= 2
    assert prompts.enrich(short, seed=3) != prompts.enrich(short, seed=4)
    assert "camera pans left" in prompts.enrich("a red ball, camera pans left", seed=0).lower()
    assert prompts.enrich("a red ball", frames=1, seed=0).startswith(("A picture", "An image", "A still"))


def test_batched_prompts_equal_one_by_one(generator, tmp_path):
    requests = [_request(prompt="a red ball", frames=9, seed=0), _request(prompt="a cyan box", frames=9, seed=5),
                _request(mode="t2i", prompt="a green disc", seed=2)]
    batched = generate.generate_batch(generator, requests)
    assert batched[0].meta["batch"] == 2  # the two 9-frame videos share one sampling call
    for request, result in zip(requests, batched):
        alone = generator.generate(request).video
        assert result.video.shape == alone.shape and psnr(alone, result.video) >= 40
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("a red ball\n\na blue square\n")
    result = run_cli("sample", f"--workdir={generator.workdir}", f"--prompts_file={prompts_file}", "--frames=5",
                     "--steps=2", f"--out={tmp_path}/many.mp4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "many_000.gif").exists() and (tmp_path / "many_001.json").exists()


@pytest.mark.parametrize("kwargs,message", [
    (dict(steps=0), "--steps=0 must be at least 1"),
    (dict(guidance=float("nan")), "--guidance=nan must be a finite number"),
    (dict(guidance=-1.0), "must be a finite number >= 0"),
    (dict(frames=0), "--frames=0 must be at least 1"),
    (dict(sampler="rk4"), "--sampler='rk4' is unknown"),
    (dict(shift=0.0), "--shift=0.0 must be a finite number > 0"),
])
def test_bad_sampling_values_are_refused_without_a_model(kwargs, message):
    from sora_jax import request_checks

    with pytest.raises(generate.UserInputError, match=re.escape(message)):
        request_checks.check_request(_request(**kwargs))


def test_bad_outputs_are_refused_before_the_model_loads(tmp_path):
    from sora_jax import request_checks

    with pytest.raises(generate.UserInputError, match="unknown suffix '.docx'"):
        request_checks.check_output(tmp_path / "a.docx")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(generate.UserInputError, match="not writable"):
                request_checks.check_output(locked / "a.mp4")
    finally:
        locked.chmod(0o700)
    assert request_checks.check_output(tmp_path / "new" / "a.webm").parent.is_dir()
    # The CLI checks before it loads anything: a missing workdir is not what it reports.
    for flag, message in (("--steps=0", "--steps=0"), (f"--out={tmp_path}/a.docx", "unknown suffix")):
        result = run_cli("sample", "--workdir=/nonexistent", "--prompt=a red ball", f"--out={tmp_path}/a.mp4", flag)
        assert result.returncode == 2 and message in result.stderr and "nonexistent" not in result.stderr


def test_a_very_long_generation_is_estimated_and_refused_unless_allowed(generator, tmp_path, capsys):
    with pytest.raises(generate.UserInputError, match="--allow_long"):
        generator.generate(_request(frames=100001, steps=2))
    assert "latent frames in" in capsys.readouterr().err  # the estimate is printed before refusing
    result = generator.generate(_request(frames=33, steps=2))  # several windows, within the bounds
    assert result.video.shape[0] == 33
    paths = generate.write(result, tmp_path / "long.webm")
    assert [p.suffix for p in paths] == [".mp4", ".gif", ".webm", ".json"] and all(p.stat().st_size for p in paths)
