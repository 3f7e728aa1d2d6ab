"""`sora-jax play`: each action extends the video by one latent frame (4 frames) from the last
ones, served to a page; a real headless Chromium presses keys and gets the frames back, and with
the committed BlockWorld model the player walks the way it was sent (read by the rule probes)."""

import json
import shutil
import threading
import urllib.request

import numpy as np
import pytest

from tests.conftest import REPO


def _post(url: str, body: str) -> dict:
    return json.loads(urllib.request.urlopen(urllib.request.Request(url, data=body.encode(), method="POST")).read())


def test_each_action_draws_one_latent_frame_and_the_server_streams_it(micro_blockworld):
    from sora_jax import play

    game = play.Game.load(micro_blockworld, context=2, steps=2)
    frames = game.act("right")
    assert frames.shape == (4, 32, 56, 3) and frames.dtype == np.uint8
    for action in ("jump", "left", "left"):
        game.act(action)
    assert len(game.latents) == 5 and game.actions == [0, 3, 4, 2, 2]
    assert game.timing.summary(4)["actions"] >= 1  # timed once the window is full
    with pytest.raises(ValueError, match="valid: none, left"):
        game.act("fly")
    ready = threading.Event()
    server = play.serve(game, port=0, ready=ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert b"BlockWorld" in urllib.request.urlopen(url + "/").read()
        reply = _post(url + "/act", "place")
        assert len(reply["frames"]) == 4 and reply["frames_per_second"] > 0
    finally:
        server.shutdown()


PLAYED = REPO / "assets" / "blockworld_tiny"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Chromium and chromedriver (make test-all)")
def test_a_headless_browser_plays_the_committed_model_and_the_player_moves_the_pressed_way():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from sora_jax import play
    from sora_jax.data import blockworld
    from sora_jax.evaluation import block_probes

    game = play.Game.load(PLAYED, seed=3)
    drawn = [game.first_frame[None]]
    act = game.act
    game.act = lambda name: drawn.append(act(name)) or drawn[-1]
    server = play.serve(game, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        body = browser.find_element(By.TAG_NAME, "body")
        presses = [Keys.ARROW_RIGHT] * 3
        for number, key in enumerate(presses, start=1):
            body.send_keys(key)
            WebDriverWait(browser, 60).until(lambda b, n=number: b.title == f"frames {1 + 4 * n}")
        stats = browser.find_element(By.ID, "stats").text
        assert "frames/s" in stats
    finally:
        browser.quit()
        server.shutdown()
    video = np.concatenate(drawn)
    assert video.shape[0] == 1 + 4 * len(presses)  # every press drew one latent frame: 4 video frames
    reading = block_probes.read(video, blockworld.cell_size(*video.shape[1:3]))
    x = reading.player[:, 0]
    assert np.nanmean(x[-4:]) > np.nanmean(x[:2]) + 1.5  # the player walked right, as pressed
