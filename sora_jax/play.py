"""Play a trained BlockWorld model: each key press is an action, and the model draws the next
latent frame (4 video frames) from the last few and the action — the video model as a game engine.

    sora-jax play --workdir=runs/blockworld                 # then open http://127.0.0.1:8808
    game = Game.load("runs/blockworld"); frames = game.act("right")   # uint8 [4, H, W, 3]

The world starts from a BlockWorld frame (`--seed` picks it), encoded as latent frame 0. Each
action extends the latent video by one frame, autoregressively: the last `context` latent frames
are given (held at t = 0, as the image->video and extension tasks trained them) and the new one is
sampled with the action in its frame's conditioning; decoding the window gives the new frame's 4
video frames. The page is served by the standard library's HTTP server: arrow keys walk (left,
right), jump (up) and dig down (down); F digs the block in front, P places one.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import pathlib
import threading
import time

import numpy as np

from sora_jax.data import blockworld

KEYS = {"ArrowLeft": "left", "ArrowRight": "right", "ArrowUp": "jump", "ArrowDown": "dig_down", "f": "dig_front",
        "p": "place", " ": "none"}
DEFAULT_CAPTION = "In a block world, the player explores."


@dataclasses.dataclass
class Timing:
    seconds: list[float] = dataclasses.field(default_factory=list)  # per action, once the window is full

    def summary(self, frames_per_action: int) -> dict:
        if not self.seconds:
            return {"actions": 0}
        mean = float(np.mean(self.seconds))
        return {"actions": len(self.seconds), "seconds_per_action": mean,
                "p90_seconds_per_action": float(np.percentile(self.seconds, 90)),
                "frames_per_second": frames_per_action / mean}


class Game:
    """A BlockWorld session driven by a trained model with `num_actions` (configs/t2v.py:blockworld)."""

    def __init__(self, pipeline, params, context: int = 8, steps: int = 8, guidance: float = 2.0, seed: int = 0,
                 caption: str = DEFAULT_CAPTION, size: tuple[int, int] = (32, 56)):
        if not pipeline.model.num_actions:
            raise ValueError("this run takes no actions (model.num_actions = 0): train configs/t2v.py:blockworld")
        self.pipeline, self.params = pipeline, params
        self.context, self.steps, self.guidance, self.caption = context, steps, guidance, caption
        self.temporal = int(pipeline.vae.model.temporal)
        start = blockworld.render_clip(seed, 1, *size)  # the first frame: a BlockWorld view of the trained size
        self.first_frame = start.video[0]
        self.latents = pipeline.encode(start.video[None])[0]  # [1, h, w, c]
        self.actions = [0]  # per latent frame: action + 1, 0 for none given
        self.timing = Timing()
        self.count = 0

    @classmethod
    def load(cls, workdir: str | pathlib.Path, **options) -> Game:
        from sora_jax.pipelines import t2v

        pipeline, params, meta, _ = t2v.load(workdir)
        size = tuple(meta.get("training_shape", {}).get("size", (32, 56)))
        return cls(pipeline, params, **{"size": size, **options})

    def act(self, name: str) -> np.ndarray:
        """uint8 [temporal, H, W, 3]: the frames the model draws for the action `name` (ACTIONS)."""
        if name not in blockworld.ACTIONS:
            raise ValueError(f"action {name!r}; valid: {', '.join(blockworld.ACTIONS)}")
        started = time.perf_counter()
        window = self.latents[-self.context:]
        known = len(window)
        shape = (known + 1, *window.shape[1:])
        given = np.concatenate([window, np.zeros_like(window[:1])])[None]
        mask = np.array([[True] * known + [False]])
        actions = np.array([[*self.actions[-known:], blockworld.ACTIONS.index(name) + 1]], np.int32)
        if known == len(self.actions):  # the window starts at the first frame: its action slot is "none given"
            actions[0, 0] = 0
        latents = self.pipeline.sample_latents(self.params, [self.caption], shape, seed=self.count, steps=self.steps,
                                               guidance=self.guidance, cond_latents=given, cond_mask=mask,
                                               actions=actions)[0]
        self.latents = np.concatenate([self.latents, latents[-1:]])
        self.actions.append(int(actions[0, -1]))
        frames = self.pipeline.decode(latents[None, -2:])[0][-self.temporal:]  # the new latent frame's frames
        if known == self.context and self.count > self.context:  # the window is full and compiled: steady state
            self.timing.seconds.append(time.perf_counter() - started)
        self.count += 1
        return frames


def png(frame: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>sora_jax: BlockWorld</title>
<style>body{font-family:sans-serif;background:#222;color:#eee;text-align:center}
canvas{image-rendering:pixelated;width:%(w)dpx;height:%(h)dpx;border:2px solid #555;margin-top:16px}</style></head>
<body><h3>BlockWorld, drawn by a video model</h3><canvas id="view" width="%(fw)d" height="%(fh)d"></canvas>
<p>&larr; &rarr; walk &middot; &uarr; jump &middot; &darr; dig down &middot; F dig in front &middot; P place</p>
<p id="stats">press a key</p>
<script>
const view = document.getElementById("view").getContext("2d");
let busy = false, shown = 0;
function draw(src) { return new Promise(done => { const img = new Image();
  img.onload = () => { view.drawImage(img, 0, 0); shown += 1; done(); }; img.src = "data:image/png;base64," + src; }); }
async function act(action) {
  if (busy) return; busy = true;
  const started = performance.now();
  const reply = await (await fetch("/act", {method: "POST", body: action})).json();
  for (const frame of reply.frames) { await draw(frame); await new Promise(r => setTimeout(r, 40)); }
  document.getElementById("stats").textContent = action + ": " + Math.round(performance.now() - started) +
    " ms, model " + reply.frames_per_second.toFixed(1) + " frames/s";
  document.title = "frames " + shown;
  busy = false;
}
const keys = %(keys)s;
document.addEventListener("keydown", e => { if (keys[e.key]) { e.preventDefault(); act(keys[e.key]); } });
fetch("/start").then(r => r.json()).then(reply => draw(reply.frame));
</script></body></html>"""


def serve(game: Game, port: int = 8808, host: str = "127.0.0.1", ready=None):
    """Serves the game on http://host:port until interrupted (`ready`: a threading.Event set once
    listening, for tests and scripts). One action at a time; each reply carries its frames."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    height, width = game.first_frame.shape[:2]
    page = PAGE % {"w": width * 8, "h": height * 8, "fw": width, "fh": height, "keys": json.dumps(KEYS)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the page shows what happens
            pass

        def _reply(self, body: bytes, kind: str = "application/json"):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/":
                return self._reply(page.encode(), "text/html; charset=utf-8")
            if self.path == "/start":
                return self._reply(json.dumps({"frame": png(game.first_frame)}).encode())
            if self.path == "/stats":
                return self._reply(json.dumps(game.timing.summary(game.temporal)).encode())
            self.send_error(404)

        def do_POST(self):
            if self.path != "/act":
                return self.send_error(404)
            action = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            try:
                with lock:
                    frames = game.act(action)
            except ValueError as error:
                return self.send_error(400, str(error))
            stats = game.timing.summary(game.temporal)
            self._reply(json.dumps({"frames": [png(f) for f in frames],
                                    "frames_per_second": stats.get("frames_per_second", 0.0)}).encode())

    server = ThreadingHTTPServer((host, port), Handler)
    if ready is not None:
        ready.set()
    return server


def run(workdir: str | pathlib.Path, port: int = 8808, **options) -> None:
    """`sora-jax play`: load the run, serve it until Ctrl-C, then print the timing."""
    game = Game.load(workdir, **options)
    server = serve(game, port)
    print(f"play: open http://127.0.0.1:{port} (arrows walk, jump and dig down; F digs in front, P places); "
          f"Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(f"play: {json.dumps(game.timing.summary(game.temporal))}")
