"""The T2V trainer: sharded == one device, two processes agree, kill -> resume is bitwise, restore
onto a different mesh, and the CLI run end to end (latent cache, validation loss, samples)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port, run_cli

WORKER = str(REPO / "tests" / "t2v_step_worker.py")


def _worker(*args, devices=8, timeout=600):
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _result(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_sharded_step_equals_one_device(micro_vae):
    result = _result(_worker("sharded", micro_vae))
    assert result["loss_8"] == pytest.approx(result["loss_1"], rel=1e-6)
    assert result["max_param_difference"] < 1e-6
    assert result["qkv_spec"][:3] == ["fsdp", "None", "tensor"]  # (embed, -, heads, kv) on the mesh


def test_context_parallel_attention_equals_one_device(micro_vae):
    """Tokens sharded over mesh axis `context` (shard_map, all-gathered keys and values), with the
    XLA, chunked and flash kernels: the same loss and update as one device."""
    result = _result(_worker("context", micro_vae))
    for kernel in ("", "_chunked", "_flash"):
        assert result[f"loss_context{kernel}"] == pytest.approx(result["loss_1"], rel=1e-5)
        assert result[f"max_param_difference{kernel}"] < 1e-5
    assert result["all_gather"]


def test_two_processes_agree_with_one(micro_vae):
    port = free_port()
    workers = [_worker("multiprocess", micro_vae, "/tmp/unused", i, port, devices=2) for i in range(2)]
    results = [_result(w) for w in workers]
    single = _result(_worker("single", micro_vae, devices=1))
    assert [r["processes"] for r in results] == [2, 2] and results[0]["devices"] == 4
    assert results[0]["loss"] == results[1]["loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert results[0]["param_sum"] == results[1]["param_sum"] == pytest.approx(single["param_sum"], rel=1e-6)


@pytest.mark.slow  # two processes train from scratch: ~1.5 min on 2 idle cores
def test_sigterm_to_one_of_two_processes_saves_everywhere_at_one_step(physworld_tiny, micro_vae, tmp_path):
    """Preemption on a pod: SIGTERM reaches one host; JAX's preemption service makes both
    processes save the same step and exit cleanly (no process left waiting in a collective)."""
    port = free_port()
    workdir = tmp_path / "run"
    workers = [_worker("train", micro_vae, workdir, i, port, physworld_tiny, devices=2) for i in range(2)]
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert all(w.poll() is None for w in workers), workers[0].stderr.read()[-3000:]
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGTERM)  # the non-coordinator host is preempted
    results = [_result(w, timeout=300) for w in workers]
    assert results[0] == results[1] and results[0]["preempted"] and results[0]["step"] >= 3
    assert (workdir / "checkpoints" / str(results[0]["step"])).exists()


def test_restore_onto_a_different_mesh(micro_vae, tmp_path):
    result = _result(_worker("restore_mesh", micro_vae, tmp_path / "ckpt"))
    assert result["all_equal"] and result["step"] == 1 and result["task"] == "t2v"
    assert result["qkv_spec"][:3] == ["fsdp", "None", "tensor"]


def _train_args(data_dir, vae_workdir, workdir, steps):
    return ["train", "--config=sora_jax/configs/t2v.py:micro", f"--workdir={workdir}",
            f"--config.vae_workdir={vae_workdir}",
            f"--config.data.data_dir={data_dir}", "--config.data.cache_limit=48", "--config.data.batch_size=4",
            "--config.data.max_batch_size=8",  # 2 of the 9 (T, H, W) buckets fill a batch: 2 compiles, not 8
            f"--config.total_steps={steps}", "--config.log.every_steps=1", "--config.checkpoint.every_steps=2",
            "--config.checkpoint.async_save=False", "--config.log.eval_every_steps=1000",
            "--config.eval.num_clips=4", "--config.eval.num_samples=1", "--config.sample.steps=2"]


def _losses(workdir):
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def test_kill_and_resume_gives_bitwise_identical_losses(physworld_tiny, micro_vae, tmp_path):
    straight = tmp_path / "straight"
    result = run_cli(*_train_args(physworld_tiny, micro_vae, straight, 8))
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((straight / "final_metrics.json").read_text())
    assert final["step"] == 8 and final["val_loss"] > 0 and (straight / "samples/step_000008/sample_00.mp4").exists()
    assert (straight / "latent_cache/train/latents.npy").exists()

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "sora_jax.cli", *_train_args(physworld_tiny, micro_vae, killed,
                                                                                   8)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not (killed / "checkpoints" / "4").exists() and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # no chance to save: resumption relies on step 4's checkpoint
    process.wait()
    result = run_cli(*_train_args(physworld_tiny, micro_vae, killed, 8))
    assert result.returncode == 0, result.stderr[-3000:]
    expected, resumed = _losses(straight), _losses(killed)
    assert set(resumed) == set(range(1, 9))
    assert all(resumed[s] == expected[s] for s in range(1, 9)), (expected, resumed)  # bitwise, data order included


def test_bad_t2v_configs_fail_in_one_line_before_compiling(micro_vae, tmp_path):
    missing = run_cli("train", "--config=sora_jax/configs/t2v.py:micro", f"--workdir={tmp_path}/a",
                      f"--config.vae_workdir={tmp_path}/no_vae")
    assert missing.returncode == 2 and "train the VAE first" in missing.stderr
    bad_heads = run_cli("train", "--config=sora_jax/configs/t2v.py:micro", f"--workdir={tmp_path}/b",
                        f"--config.vae_workdir={micro_vae}", "--config.model.heads=5")
    assert bad_heads.returncode == 2 and "does not divide by model.heads=5" in bad_heads.stderr
    assert len(bad_heads.stderr.strip().splitlines()) == 1


def test_export_is_read_like_the_workdir(micro_vae, tmp_path):
    import jax
    import numpy as np

    from sora_jax.pipelines import vae as vae_pipeline

    result = run_cli("export", f"--workdir={micro_vae}", f"--out={tmp_path / 'export'}")
    assert result.returncode == 0, result.stderr[-2000:]
    _, exported, stats, _ = vae_pipeline.load_trained_vae(tmp_path / "export")
    _, original, original_stats, _ = vae_pipeline.load_trained_vae(micro_vae)
    assert stats == original_stats
    for a, b in zip(jax.tree.leaves(exported), jax.tree.leaves(original)):
        np.testing.assert_array_equal(a, b)
    again = run_cli("export", f"--workdir={micro_vae}", f"--out={tmp_path / 'export'}")
    assert again.returncode == 2 and "exists" in again.stderr


def _losses(workdir) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}  # the last logged value of each step


def _train_in(processes: int, workdir, micro_vae, data_dir, total_steps: int) -> None:
    """The micro trainer on 4 devices in all, as 1 process of 4 or 2 processes of 2."""
    port = free_port()
    workers = [_worker("topology", micro_vae, workdir, i, port, data_dir, processes, total_steps,
                       devices=4 // processes) for i in range(processes)]
    results = [_result(w) for w in workers]
    assert all(r["processes"] == processes and r["devices"] == 4 and r["step"] == total_steps for r in results)


@pytest.mark.slow  # five runs from scratch, two of them in two processes: ~5 min on 2 cores
def test_resume_across_a_change_of_process_count_keeps_the_global_data_order(physworld_tiny, micro_vae, tmp_path):
    """Saved by two processes, resumed in one, and the other way round: the steps after the
    resume see the same global batches as an uninterrupted run (losses agree; a different batch
    would move them by far more than the collectives' summation order does)."""
    _train_in(1, tmp_path / "reference", micro_vae, physworld_tiny, 6)
    expected = _losses(tmp_path / "reference")
    for first, then in ((2, 1), (1, 2)):
        workdir = tmp_path / f"{first}_then_{then}"
        _train_in(first, workdir, micro_vae, physworld_tiny, 4)
        _train_in(then, workdir, micro_vae, physworld_tiny, 6)
        resumed = _losses(workdir)
        for step in (5, 6):
            assert resumed[step] == pytest.approx(expected[step], rel=1e-5), (first, then, step)
