"""Nothing lost, part two: damaged checkpoints are found, named, moved aside and resumed past;
a full disk stops a run in one line before Orbax starts writing; an update that writes
non-finite parameters changes nothing; a run whose last steps were all skipped does not end
as if it had trained."""

import json
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from sora_jax import checkpoint_integrity as integrity
from sora_jax import checkpoints
from sora_jax.train import state as state_lib
from sora_jax.train import step as step_lib
from sora_jax.train import trainer
from tests.conftest import micro_vae_config, run_cli


def test_manifest_tells_intact_damaged_missing_and_extra_files(tmp_path):
    step = tmp_path / "7"
    (step / "state" / "d").mkdir(parents=True)
    (step / "state" / "d" / "data").write_bytes(np.arange(1000, dtype=np.int32).tobytes())
    (step / "meta").mkdir()
    (step / "meta" / "metadata").write_text('{"step": 7}')
    assert integrity.verify(step).status == "unverified"
    manifest = integrity.write_manifest(step)
    assert manifest["bytes"] == 4000 + len('{"step": 7}') and integrity.verify(step).status == "intact"
    data = step / "state" / "d" / "data"
    raw = bytearray(data.read_bytes())
    raw[2000:2064] = b"\0" * 64
    data.write_bytes(bytes(raw))  # same size, other bytes
    verdict = integrity.verify(step)
    assert verdict.status == "damaged" and "state/d/data changed" in verdict.describe()
    (step / "meta" / "metadata").unlink()
    (step / "stray").write_text("x")
    problems = " ".join(integrity.verify(step).problems)
    assert "meta/metadata missing" in problems and "stray not written with the checkpoint" in problems


def test_leftover_temporary_saves_are_cleared(tmp_path):
    (tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1733").mkdir(parents=True)
    (tmp_path / "checkpoints" / "4").mkdir()
    assert integrity.clear_leftovers(tmp_path / "checkpoints") == ["2.orbax-checkpoint-tmp-1733"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["4"]


def test_a_full_disk_stops_the_save_in_one_line_naming_what_is_needed(tmp_path, monkeypatch):
    checkpointer = checkpoints.Checkpointer(tmp_path, async_save=False)
    state = {"params": jnp.ones((1000,), jnp.float32)}
    checkpointer.save(2, state, {"step": 2})
    checkpointer.wait()
    monkeypatch.setattr(integrity.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 100))
    with pytest.raises(integrity.DiskFull) as raised:
        checkpointer.save(4, state, {"step": 4})
    message = str(raised.value)
    assert str(tmp_path / "checkpoints") in message and "MiB needed" in message and "step 2" in message
    assert checkpointer.latest_step() == 2 and not list((tmp_path / "checkpoints").glob("4*"))
    checkpointer.close()


class _Overflow:
    """A least-squares task whose gradient is finite but whose update overflows float32."""

    name = "overflow"

    def loss(self, params, batch, rng):
        del rng
        return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2), {}


def test_an_update_that_writes_non_finite_parameters_changes_nothing():
    config = ml_collections.ConfigDict(dict(optimizer=dict(grad_accum_steps=1, ema_decay=0.999)))
    optimizer = optax.sgd(3e38)  # the step itself is finite; w - 3e38 * g overflows
    params = {"w": jnp.ones((4,), jnp.float32)}
    state = state_lib.TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    batch = {"x": jnp.eye(4), "y": jnp.full((4,), 30.0)}
    new_state, metrics = jax.jit(step_lib.make_train_step(_Overflow(), optimizer, config))(state, batch)
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    assert not bool(metrics["finite"]) and int(new_state.skipped_steps) == 1
    np.testing.assert_array_equal(new_state.params["w"], params["w"])


def _config(data_dir, steps: int):
    config = micro_vae_config(data_dir, total_steps=steps)
    config.checkpoint.every_steps = 2
    config.log.every_steps = 1
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 1  # the schedule then does not depend on total_steps
    return config


def _damage(step_dir, kind: str) -> None:
    if kind == "metadata":
        target = step_dir / "meta" / "metadata"
        raw = bytearray(target.read_bytes())
        raw[:100] = bytes(range(128, 228))[: min(100, len(raw))] + raw[100:100]
        target.write_bytes(bytes(raw[: len(target.read_bytes())]))
    elif kind == "array data":
        target = max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        raw = bytearray(target.read_bytes())
        middle = len(raw) // 2
        raw[middle:middle + 64] = b"\xff" * 64
        target.write_bytes(bytes(raw))
    else:
        next(p for p in (step_dir / "state").rglob("*") if p.is_file() and "ocdbt" in str(p)).unlink()


@pytest.fixture(scope="module")
def six_steps(physworld_tiny, tmp_path_factory):
    """A 6-step run with checkpoints at 2, 4 and 6, verified intact."""
    first = tmp_path_factory.mktemp("first")
    trainer.train(_config(physworld_tiny, 6), first, quiet=True)
    verified = run_cli("verify", f"--workdir={first}")
    assert verified.returncode == 0 and "step 6: intact" in verified.stdout, verified.stdout + verified.stderr
    return first


@pytest.mark.slow  # three micro VAE runs: ~2 min; make test keeps the unit tests of the manifest above
@pytest.mark.parametrize("kind", ["metadata", "array data", "deleted file"])
def test_a_damaged_latest_checkpoint_is_named_moved_aside_and_resumed_past_bitwise(six_steps, physworld_tiny,
                                                                                    tmp_path, kind):
    workdir = tmp_path / "run"
    shutil.copytree(six_steps, workdir)
    _damage(workdir / "checkpoints" / "6", kind)
    report = run_cli("verify", f"--workdir={workdir}")
    assert report.returncode == 2 and "step 6: damaged" in report.stdout and "step 4: intact" in report.stdout
    refused = _config(physworld_tiny, 6)
    refused.checkpoint.on_damage = "refuse"
    with pytest.raises(integrity.CheckpointDamaged, match="checkpoint 6 .* is damaged"):
        trainer.train(refused, workdir, quiet=True)
    trainer.train(_config(physworld_tiny, 6), workdir, quiet=True)  # from step 4: steps 5 and 6 again
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = [(row["step"], row["loss"]) for row in rows if "loss" in row]
    first, again = losses[4:6], losses[6:]
    assert [s for s, _ in again] == [5, 6] and again == first  # bitwise: the same steps from the same state
    assert [p.name.split("-")[0] for p in (workdir / "damaged_checkpoints").iterdir()] == ["6"]


def test_a_run_whose_last_steps_were_all_skipped_does_not_end_as_trained(physworld_tiny, tmp_path):
    config = _config(physworld_tiny, 3)
    config.optimizer.learning_rate = 1e38  # every update overflows the parameters: every step is skipped
    with pytest.raises(FloatingPointError, match="non-finite and skipped"):
        trainer.train(config, tmp_path, quiet=True)
    assert not (tmp_path / "final_metrics.json").exists()


def test_background_thread_failures_go_to_the_run_log_not_the_terminal(tmp_path, capsys):
    import threading

    from absl import logging

    from sora_jax.train import run_log

    def failing_save():
        raise OSError(28, "No space left on device")

    with run_log.to_workdir(tmp_path) as path:
        for _ in range(5):  # as Orbax's writer threads each fail on a full disk
            thread = threading.Thread(target=failing_save, name="async_save")
            thread.start()
            thread.join()
        logging.error("orbax: could not write %s", "state/d/0")
    err = capsys.readouterr().err
    assert err.count("a background thread failed: OSError") == 1 and str(path) in err
    assert "Traceback" not in err and "could not write" not in err
    text = path.read_text()
    assert text.count("No space left on device") >= 5 and "could not write state/d/0" in text
