r"""Memory mappings a process keeps per ladder run: what lets one process train a whole sweep.

    .venv/bin/python benchmarks/bench_run_mappings.py --latent_cache=runs/isoflop/latent_cache \
        --out=benchmarks/results/cpu/bench_run_mappings.json

Trains `--sizes` short runs of the demo preset (budget `--budget`) one after another in this
process, as the local engine (or a reused Ray worker) does, and reads /proc/self/maps after each:
once as `ladder.train_run` runs them (the finished run's compiled programs released), once with
the release turned off. XLA:CPU maps every compiled kernel's code and data; the kernel refuses
mappings past `vm.max_map_count` (65,530 by default), and a compile then fails with "Cannot
allocate memory". Linux only.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

from absl import app, flags

flags.DEFINE_list("sizes", ["L2d32", "L2d48", "L2d64", "L3d64"], "Model sizes, one run each.")
flags.DEFINE_string("budget", "0.02x", "Each run's budget (a multiple of the demo preset's 1x).")
flags.DEFINE_string("latent_cache", "", "A demo-preset latent cache to share (built if empty).")
flags.DEFINE_enum("arm", "both", ["both", "release", "keep"], "Which arm(s) to run; each in a fresh process.")
flags.DEFINE_string("out", "out/bench_run_mappings.json", "Where to write the output.")
FLAGS = flags.FLAGS


def _mappings() -> int:
    with open(f"/proc/{os.getpid()}/maps") as maps:
        return sum(1 for _ in maps)


def _arm(release: bool) -> dict:
    from sora_jax.configs import scaling
    from sora_jax.scaling import ladder

    if not release:
        ladder._release_compiled = lambda: None  # the A/B: the process keeps every run's programs
    config = scaling.get_config("demo")
    workdir = pathlib.Path(tempfile.mkdtemp())
    cache = FLAGS.latent_cache or str(workdir / "latent_cache")
    counts = [_mappings()]
    for size in FLAGS.sizes:
        ladder.train_run(ladder.rung_config(config, FLAGS.budget, size, latent_cache_dir=cache), str(workdir / size))
        counts.append(_mappings())
        print(f"{'release' if release else 'keep'}: after {size}: {counts[-1]} mappings", flush=True)
    growth = [b - a for a, b in zip(counts[1:], counts[2:])]  # after the first run (imports, the cache)
    return {"mappings": counts, "per_run_after_the_first": sum(growth) / max(len(growth), 1)}


def main(argv):
    del argv
    import subprocess
    import sys

    if FLAGS.arm != "both":
        print("RESULT " + json.dumps(_arm(FLAGS.arm == "release")), flush=True)
        return
    rows = {}
    for arm in ("release", "keep"):  # a fresh process each: mappings only ever add up within one
        result = subprocess.run([sys.executable, __file__, f"--arm={arm}", f"--sizes={','.join(FLAGS.sizes)}",
                                 f"--budget={FLAGS.budget}", f"--latent_cache={FLAGS.latent_cache}"],
                                capture_output=True, text=True, check=True)
        rows[arm] = json.loads(next(line[7:] for line in result.stdout.splitlines() if line.startswith("RESULT ")))
        print(arm, rows[arm], flush=True)
    limit = int(pathlib.Path("/proc/sys/vm/max_map_count").read_text())
    report = {"sizes": FLAGS.sizes, "budget": FLAGS.budget, "max_map_count": limit, **rows,
              "runs_until_the_limit_without_release": limit / max(rows["keep"]["per_run_after_the_first"], 1)}
    out = pathlib.Path(FLAGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
