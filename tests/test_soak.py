"""A long micro run: resident memory stays flat after warm-up, and the checkpoint directory ends
with exactly `keep` complete checkpoints, each with its manifest (`make test-all`)."""

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow  # 2,000 steps of the micro VAE: a few minutes on 2 cores
def test_a_long_run_neither_grows_in_memory_nor_keeps_extra_checkpoints(physworld_tiny, tmp_path):
    steps, keep = 2000, 3
    result = run_cli("train", "--config=sora_jax/configs/vae.py:micro", f"--workdir={tmp_path}",
                     f"--config.data.data_dir={physworld_tiny}", f"--config.total_steps={steps}",
                     "--config.log.every_steps=50", "--config.checkpoint.every_steps=100",
                     f"--config.checkpoint.keep={keep}", f"--config.log.eval_every_steps={steps}",
                     "--config.eval.num_clips=2", "--config.eval.latent_stat_clips=4", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    resident = {row["step"]: row["resident_gib"] for row in rows if "resident_gib" in row}
    warm_step = min(s for s in resident if s >= steps // 10)  # after compiles and the heap's first growth
    later = [value for step, value in resident.items() if step >= warm_step]
    assert max(later) < 1.10 * resident[warm_step], resident
    kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert len(kept) == keep and kept[-1] == steps, kept
    assert all((tmp_path / "checkpoints" / str(s) / "sora_manifest.json").exists() for s in kept)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if "tmp" in p.name]
    verified = run_cli("verify", f"--workdir={tmp_path}")
    assert verified.returncode == 0 and verified.stdout.count("intact") == keep
