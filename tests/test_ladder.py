"""The compute ladder end to end at a toy budget: rungs train to their FLOP budgets in their own
workdirs, command-line overrides reach every rung, a rerun resumes (skips finished rungs), and
the comparison writes its video, table and figures."""

import json

import pytest

from sora_jax.configs import scaling
from sora_jax.data import video_io
from sora_jax.scaling import compare, ladder


@pytest.fixture(scope="module")
def toy_ladder(physworld_tiny, tmp_path_factory):
    config = scaling.get_config("demo")
    config.data.data_dir = str(physworld_tiny)  # an override: must reach every rung
    config.data.cache_limit = 48
    config.data.batch_size = 4  # an override the steps must follow (ladder.rung_config replans)
    config.data.max_batch_size = 8  # 2 of the 48 clips' 9 (T, H, W) buckets fill a batch: few compiles
    config.eval.num_clips = 4
    config.eval.num_samples = 1
    config.sample.steps = 2
    config.checkpoint.async_save = False
    config.ladder.rungs = ("0.0005x", "0.0015x")  # a few steps of the demo's smallest models
    config.ladder.probe_samples = 4
    config.ladder.voe_quads = 1
    workdir = tmp_path_factory.mktemp("ladder")
    report = ladder.run(config, workdir)
    return config, workdir, report


def test_rungs_spend_their_budgets_with_the_overrides_carried(toy_ladder):
    config, workdir, report = toy_ladder
    assert [r["budget"] for r in report["rungs"]] == ["0.0005x", "0.0015x"]
    for rung in report["rungs"]:
        saved = json.loads((workdir / rung["run"] / "config.json").read_text())
        assert saved["data"]["data_dir"] == config.data.data_dir and saved["data"]["latent_cache_dir"]
        assert rung["compute_flops"] == pytest.approx(rung["planned_flops"], rel=0.5)
        assert len(rung["val_loss_by_t"]) == 8 and rung["probes"]["caption_colors"]["n"] == 4
        assert set(rung["voe"]) == {"vanish", "teleport", "trail_erased", "color_change"}
    first, second = report["rungs"]
    assert second["compute_flops"] > 2 * first["compute_flops"]
    assert report["ceilings"]["truth"]["permanence"]["mean"] == 1.0


def test_outputs_are_real_files_and_a_rerun_skips_finished_rungs(toy_ladder):
    config, workdir, report = toy_ladder
    table = compare.terminal_table(report).splitlines()
    assert table[0].split() == ["probe", "0.0005x", "0.0015x", "VAE", "truth"]
    assert any(line.startswith("caption_colors") for line in table) and "better than" in table[-1]
    video, _ = video_io.read_frames(workdir / "side_by_side.mp4")
    assert video.ndim == 4 and video.shape[0] == 17
    for name in ("ladder.md", "loss_vs_compute.png", "probes_vs_compute.png", "side_by_side.gif"):
        assert (workdir / name).stat().st_size > 0
    stamp = (workdir / "0.0005x" / "final_metrics.json").stat().st_mtime
    summaries = ladder.train_rungs(config, workdir)
    assert (workdir / "0.0005x" / "final_metrics.json").stat().st_mtime == stamp
    assert [s["run"] for s in summaries] == ["0.0005x", "0.0015x"]


def test_a_rung_is_marked_only_where_cis_part_on_enough_videos():
    low, high = {"mean": 0.2, "low": 0.1, "high": 0.3, "n": 100}, {"mean": 0.8, "low": 0.7, "high": 0.9, "n": 100}
    assert compare.separated(low, high) == 1 and compare.separated(high, low) == -1
    assert compare.separated(low, {"mean": 0.35, "low": 0.25, "high": 0.45, "n": 100}) == 0  # overlapping
    assert compare.separated(low, {**high, "n": 3}) == 0  # e.g. 3 tracks followed end to end


@pytest.mark.parametrize("preset,variant,channels", [("gpu", "small", 16), ("tpu", "base", 16)])
def test_accelerator_presets_name_their_vae_and_refuse_until_it_is_trained(preset, variant, channels, tmp_path,
                                                                            monkeypatch):
    """Planned before the VAE exists (geometry from `vae.py:<variant>`), refused before any data is
    prepared or anything compiles, with the command that trains it."""
    from sora_jax.train import validate

    monkeypatch.chdir(tmp_path)  # no runs/vae_* here
    config = scaling.get_config(preset)
    assert config.vae_workdir == f"runs/vae_{variant}" and config.ladder.vae_variant == variant
    assert config.ladder.vae["channels"] == channels and ladder.table(config)  # the plan prints
    with pytest.raises(validate.ConfigError, match=rf"sora_jax/configs/vae.py:{variant} --workdir=runs/vae_{variant}"):
        ladder.train_rungs(config, tmp_path / "ladder")
    assert not (tmp_path / "ladder" / "latent_cache").exists()


def test_a_preset_runs_in_another_latent_by_naming_its_vae_variant():
    """`vae=tiny`: the committed 4x-temporal VAE instead of the presets' 2x one; the plan follows
    its geometry (half the latent frames: more steps and clips for the same FLOPs)."""
    base, other = scaling.get_config("demo,budget=32x"), scaling.get_config("demo,budget=32x,vae=tiny")
    assert base.vae_workdir == "assets/vae_tiny_t2" and base.ladder.vae_variant == "tiny_t2"
    assert other.vae_workdir == "assets/vae_tiny" and other.ladder.vae_variant == "tiny"
    assert base.ladder.vae["temporal"] == 2 and other.ladder.vae["temporal"] == 4
    assert other.ladder.compute_flops == base.ladder.compute_flops and other.total_steps > base.total_steps
    with pytest.raises(ValueError, match="did you mean 'tiny_t2'"):
        scaling.get_config("demo,vae=tiny_t3")


def test_a_finished_run_leaves_no_compiled_programs_behind():
    """A process that trains run after run (local engine, a reused Ray worker) must not keep every
    run's XLA programs: each holds memory mappings, and a sweep once died at the kernel's limit
    (benchmarks/bench_run_mappings.py measures the mappings)."""
    import jax

    step = jax.jit(lambda x: x * 2 + 1)
    step(1.0)
    assert step._cache_size() == 1
    ladder._release_compiled()  # what train_run does after every run
    assert step._cache_size() == 0


def test_a_signal_during_a_runs_final_save_finishes_it_then_stops_the_sweep(toy_ladder, monkeypatch, tmp_path):
    """SIGTERM that lands while a run evaluates and saves its end used to be dropped (the handler
    was restored after) and the sweep went on; now the run finishes whole and the sweep stops."""
    import os
    import signal

    from sora_jax.scaling import engines
    from sora_jax.train import trainer

    config, workdir, _ = toy_ladder
    finish = trainer.TrainingRun.finish
    handler_before = signal.getsignal(signal.SIGTERM)  # Ray's, if this worker ran a Ray test first

    def finish_with_a_signal(self, step):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the loop's handler before finish returns
        return finish(self, step)

    monkeypatch.setattr(trainer.TrainingRun, "finish", finish_with_a_signal)
    rung = ladder.rung_config(config, "0.0005x", None, latent_cache_dir=str(workdir / "latent_cache"))
    with pytest.raises(engines.Preempted, match="SIGTERM while run finished"):
        ladder.train_run(rung, str(tmp_path / "run"))
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert "stop_requested" not in final and final["step"] == rung.total_steps
    monkeypatch.setattr(trainer.TrainingRun, "finish", finish)
    assert ladder.train_run(rung, str(tmp_path / "run"))["steps"] == rung.total_steps  # a rerun: done
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the run put back what it found


def test_a_sweep_on_a_fresh_machine_restores_finished_runs_from_their_records(toy_ladder, tmp_path):
    """A machine that kept no workdir: the records a sweep published as its runs finished make
    them count as done (nothing trains, the summary is the same); a record of another run under
    the same name is refused before anything is copied."""
    from sora_jax.scaling import records

    config, workdir, _ = toy_ladder
    planned = {"0.0005x": ladder.rung_config(config, "0.0005x")}
    # a run that finished as a stop signal came had no record copied: the next start copies it
    assert records.save_missing(workdir, tmp_path / "results" / "runs", planned) == ["0.0005x"]
    assert records.save_missing(workdir, tmp_path / "results" / "runs", planned) == []
    published = tmp_path / "results" / "runs" / "0.0005x"
    assert sorted(p.name for p in published.iterdir()) == sorted(records.RECORD_FILES)

    class NothingTrains:
        def map(self, jobs, on_done=None):
            raise AssertionError(f"asked to run {[job.name for job in jobs]}")

    fresh = tmp_path / "fresh"
    (tmp_path / "results" / "predictions.json").write_text('{"budget": "0.0005x"}')
    publish = records.attach(tmp_path / "results", fresh, planned, also=("predictions.json",))
    assert (fresh / "0.0005x" / "final_metrics.json").exists() and (fresh / "predictions.json").exists()
    summary, = ladder.train_configs(fresh, planned, NothingTrains())
    assert summary == ladder.summary(workdir / "0.0005x")
    assert json.loads((fresh / "runs.json").read_text())[0]["state"] == "done"
    publish(workdir / "0.0015x")  # what the sweep calls as a run finishes
    assert (tmp_path / "results" / "runs" / "0.0015x" / "final_metrics.json").exists()

    moved = config.copy_and_resolve_references()
    moved.data.data_dir = "/data/elsewhere"  # where the clips live is not what the run computed
    assert records.restore(tmp_path / "results" / "runs", tmp_path / "moved",
                           {"0.0005x": ladder.rung_config(moved, "0.0005x")}) == ["0.0005x"]
    other = ladder.rung_config(config, "0.0005x")
    other.optimizer.learning_rate *= 2
    with pytest.raises(records.RecordMismatch, match=r"0\.0005x \(optimizer.learning_rate: recorded"):
        records.restore(tmp_path / "results" / "runs", tmp_path / "other", {"0.0005x": other})
    assert not (tmp_path / "other" / "0.0005x").exists()
    # a record written before a model field existed counts at the value it had in effect
    recorded = json.loads((published / "config.json").read_text())
    del recorded["model"]["output_conv"]
    (published / "config.json").write_text(json.dumps(recorded))
    assert records.differences(recorded, ladder.rung_config(config, "0.0005x")) == []
    conv = ladder.rung_config(config, "0.0005x")
    conv.model.output_conv = 3
    assert records.differences(recorded, conv) == ["model.output_conv: recorded 0, planned 3"]


def test_a_sweep_writes_its_prediction_once_before_the_runs_it_predicts(tmp_path):
    from sora_jax.scaling import isoflop

    config = scaling.get_config("demo")
    runs = [{"compute": c, "params": n, "loss": 0.4 + 30 * n ** -0.3 + 2e3 * (c / (6 * n)) ** -0.3}
            for c in (1e11, 4e11, 1.6e12) for n in [(c / 6) ** 0.5 * 0.3 * s for s in (0.25, 0.5, 1, 2, 4)]]
    first = isoflop._predict(tmp_path, runs, config, "4x", bootstrap=20)
    assert first["compute"] == ladder.rung_config(config, "4x").ladder.compute_flops
    assert first["loss_opt"] < first["loss_opt_with_floor"] and first["loss_law_with_floor"]["E"] > 0
    assert json.loads((tmp_path / "predictions.json").read_text()) == first
    later = isoflop._predict(tmp_path, runs[:10], config, "4x", bootstrap=20)  # a resumed sweep keeps it
    assert later == first
