"""The run engines on a local Ray instance: runs trained as Ray tasks side by side give the local
engine's losses bitwise, even when a task's worker is killed mid-run (Ray retries it and the retry
resumes from the run's checkpoint); `sora-jax sweep --engine=ray` trains, indexes and fits a micro
IsoFLOP sweep and a rerun resumes it; bad engine settings are refused before anything runs."""

import json
import os
import re
import signal
import threading
import time

import pytest

from sora_jax.configs import scaling
from sora_jax.scaling import engines, ladder
from tests.conftest import run_cli

pytest.importorskip("ray")  # the `cluster` extra, installed by `make test`


def toy_config(data_dir):
    """The demo preset cut down as the ladder test does: 48 clips, batches of 4, four eval clips."""
    config = scaling.get_config("demo")
    config.data.data_dir = str(data_dir)
    config.data.cache_limit = 48
    config.data.batch_size, config.data.max_batch_size = 4, 8
    config.eval.num_clips = 4
    config.eval.num_samples = 1
    config.sample.steps = 2
    config.checkpoint.async_save = False
    return config


# A run long enough to be killed after its first checkpoint (114 steps, one every 50); the sweep
# test below trains several runs side by side.
RUNS = [("0.02x", "L2d32")]


def _kill_after_first_checkpoint(run_dir, killed: list) -> None:
    """Waits for the run's first complete checkpoint, then SIGKILLs the process training it."""
    deadline = time.monotonic() + 1200  # a loaded host starts Ray and compiles slowly
    while time.monotonic() < deadline:
        steps = [p.name for p in (run_dir / "checkpoints").glob("*") if re.fullmatch(r"\d+", p.name)]
        if steps and not (run_dir / "final_metrics.json").exists():
            pid = json.loads((run_dir / "attempts.json").read_text())[-1]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, steps))
            return
        time.sleep(0.02)


def test_ray_runs_match_the_local_engine_bitwise_even_after_a_killed_worker(physworld_tiny, tmp_path, monkeypatch):
    # Ray starts its workers at nice 15; beside the other xdist worker's tests they starved (254-272 s
    # in `make test` against 143 s alone). The raylet this test starts reads this.
    monkeypatch.setenv("RAY_worker_niceness", "0")
    config = toy_config(physworld_tiny)
    local = ladder.train_runs(config, tmp_path / "local", RUNS, engines.Local())
    killed = []
    watcher = threading.Thread(target=_kill_after_first_checkpoint, args=(tmp_path / "ray" / "0.02x_L2d32", killed))
    watcher.start()
    on_ray = ladder.train_runs(config, tmp_path / "ray", RUNS, engines.Ray(num_cpus=2))
    watcher.join()
    assert killed, "the long run finished before its worker could be killed"
    attempts = json.loads((tmp_path / "ray" / "0.02x_L2d32" / "attempts.json").read_text())
    assert [a["pid"] for a in attempts][0] == killed[0][0] and len(attempts) == 2  # retried once, in a new worker
    assert [(s["run"], s["steps"], s["val_loss"], s["val_loss_by_t"]) for s in on_ray] == \
           [(s["run"], s["steps"], s["val_loss"], s["val_loss_by_t"]) for s in local]
    index = json.loads((tmp_path / "ray" / "runs.json").read_text())
    assert [(row["run"], row["state"]) for row in index] == [("0.02x_L2d32", "done")]


@pytest.mark.slow  # ~290 s: six runs in Ray workers that each compile (make test-all); the kill test stays
def test_sweep_on_ray_trains_indexes_fits_and_resumes(physworld_tiny, tmp_path):
    overrides = [f"--config.data.data_dir={physworld_tiny}", "--config.data.cache_limit=48",
                 "--config.data.batch_size=4", "--config.data.max_batch_size=8", "--config.eval.num_clips=2",
                 "--config.eval.num_samples=1", "--config.checkpoint.async_save=False", "--config.ladder.bootstrap=50"]
    command = ["sweep", "--config=sora_jax/configs/scaling.py:demo", f"--workdir={tmp_path / 'sweep'}",
               "--budgets=0.001x,0.002x", "--sizes=L2d32,L2d48,L2d64", "--engine=ray", f"--publish={tmp_path / 'pub'}",
               *overrides]
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "engine: ray at a local instance" in result.stdout and "N* = " in result.stdout
    index = json.loads((tmp_path / "sweep" / "runs.json").read_text())
    assert len(index) == 6 and {row["state"] for row in index} == {"done"}
    report = json.loads((tmp_path / "pub" / "isoflop.json").read_text())
    assert len(report["runs"]) == 6 and len(report["fit"]["budgets"]) == 2
    assert (tmp_path / "pub" / "isoflop.png").stat().st_size > 0
    assert json.loads((tmp_path / "pub" / "isoflop_fit.json").read_text())["n_opt"]["a"] == report["fit"]["n_opt"]["a"]
    stamps = {row["run"]: (tmp_path / "sweep" / row["run"] / "final_metrics.json").stat().st_mtime for row in index}
    rerun = run_cli(*command[:-len(overrides)], "--engine=local", *overrides)  # the local engine resumes Ray's runs
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert stamps == {row["run"]: (tmp_path / "sweep" / row["run"] / "final_metrics.json").stat().st_mtime
                      for row in index}
    assert json.loads((tmp_path / "sweep" / "isoflop.json").read_text())["fit"] == report["fit"]


@pytest.mark.parametrize("args,message", [
    (["--engine=ray", "--distributed"], "--engine=ray runs each run as a Ray task"),
    (["--config.engine.name=slurm"], "engine.name='slurm'; valid: local, ray"),
    (["--sizes=L2d32,big"], "size 'big' is not like L4d128"),
    (["--config.ladder.bootstrap=0"], "ladder.bootstrap=0: the fits' CIs need >= 1 resample"),
    (["--config.ladder.max_epochs=-1"], "ladder.max_epochs=-1.0 must be >= 0"),
])
def test_bad_engine_settings_are_refused_before_anything_runs(args, message, tmp_path):
    result = run_cli("sweep", "--config=sora_jax/configs/scaling.py:demo", f"--workdir={tmp_path / 'w'}",
                     "--budgets=0.001x", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "w" / "latent_cache").exists()


def test_a_published_record_of_another_run_is_refused_before_anything_runs(tmp_path):
    """`--publish` also restores finished runs' records (`scaling/records.py`); one whose config is
    not the run the sweep plans under that name (here: another learning rate) is refused."""
    record = tmp_path / "pub" / "runs" / "0.001x_L2d32"
    record.mkdir(parents=True)
    planned = ladder.rung_config(scaling.get_config("demo"), "0.001x", "L2d32")
    planned.optimizer.learning_rate *= 3
    (record / "config.json").write_text(planned.to_json_best_effort())
    (record / "final_metrics.json").write_text(json.dumps({"step": planned.total_steps, "val_loss": 1.0}))
    result = run_cli("sweep", "--config=sora_jax/configs/scaling.py:demo", f"--workdir={tmp_path / 'w'}",
                     "--budgets=0.001x", "--sizes=L2d32", f"--publish={tmp_path / 'pub'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "is a record of another run than the planned 0.001x_L2d32 (optimizer.learning_rate" in result.stderr
    assert not (tmp_path / "w" / "0.001x_L2d32").exists() and not (tmp_path / "w" / "latent_cache").exists()
