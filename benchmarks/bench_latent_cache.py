r"""The latent cache's encode loop with the next chunk read (rendered) in a thread, against reading
it in turn, on clips a procedural world renders on the fly (past its prepared ones): alternating
rounds in one process, the same clips each round. Nothing here is a test.

    .venv/bin/python benchmarks/bench_latent_cache.py --dataset=physworld3d/tiny --vae=assets/vae_physworld3d \
        --out=benchmarks/results/cpu/bench_latent_cache.json
"""

import json
import pathlib
import statistics
import tempfile
import time

from absl import app, flags

from sora_jax.data import pipeline
from sora_jax.pipelines.vae import load_trained_vae
from sora_jax.train import latent_cache

_DATASET = flags.DEFINE_string("dataset", "physworld3d/tiny",
                               "A procedural world (clips past the prepared ones render).")
_DATA_DIR = flags.DEFINE_string("data_dir", "data/tfds", "Where the world is prepared.")
_VAE = flags.DEFINE_string("vae", "assets/vae_physworld3d", "The VAE that encodes.")
_FIRST = flags.DEFINE_integer("first", 8192, "First record (past the prepared split: rendered on the fly).")
_CLIPS = flags.DEFINE_integer("clips", 192, "Clips per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds of each way, alternating.")
_OUT = flags.DEFINE_string("out", "out/bench_latent_cache.json", "Where to write the JSON.")


def in_turn(source, chunks):
    for chunk in chunks:
        yield [source[i] for i in chunk]


class _Quiet:
    def update(self, n):
        pass


def main(argv):
    del argv
    vae = load_trained_vae(_VAE.value)
    model, params, stats, _ = vae
    source = pipeline.open_source(_DATASET.value, _DATA_DIR.value, "train", count=_FIRST.value + _CLIPS.value)
    shapes = pipeline.record_shapes(source)[:_FIRST.value + _CLIPS.value]
    records = list(range(_FIRST.value, _FIRST.value + _CLIPS.value))
    latent_shapes = [model.latent_shape((1, *map(int, s), 3))[1:] for s in shapes]
    ways = {"read_ahead": latent_cache.read_ahead, "in_turn": in_turn}
    seconds = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as tmp:
        writer = latent_cache.Writer(pathlib.Path(tmp) / "cache", latent_shapes)
        latent_cache._encode_latents(model, params, stats, source, shapes, writer, _Quiet(), records[:32])  # compile
        for round_ in range(_ROUNDS.value):
            for name, way in ways.items():
                latent_cache.read_ahead = way
                start = time.perf_counter()
                latent_cache._encode_latents(model, params, stats, source, shapes, writer, _Quiet(), records)
                seconds[name].append(time.perf_counter() - start)
                rate = _CLIPS.value / seconds[name][-1]
                print(f"round {round_}: {name} {seconds[name][-1]:.2f} s ({rate:.1f} clips/s)", flush=True)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    result = {"dataset": _DATASET.value, "vae": _VAE.value, "clips": _CLIPS.value, "first": _FIRST.value,
              "seconds": seconds, "median_seconds": median,
              "clips_per_s": {name: _CLIPS.value / m for name, m in median.items()},
              "speedup": median["in_turn"] / median["read_ahead"]}
    pathlib.Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(_OUT.value).write_text(json.dumps(result, indent=1))
    print(f"read ahead: {result['speedup']:.2f}x clips/s of reading in turn -> {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
