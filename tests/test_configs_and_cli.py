"""Configs parse their args, take overrides, reject mistyped keys; the CLI never hides a verb."""

import pytest

from sora_jax.configs import common, scaling, t2v, vae
from tests.conftest import run_cli


@pytest.mark.parametrize("module,arg", [(vae, "tiny"), (vae, "small"), (t2v, "tiny"), (t2v, "base"),
                                        (scaling, "cpu,budget=4x"), (scaling, "gpu,budget=32x")])
def test_every_preset_builds_and_documents_its_command(module, arg):
    config = module.get_config(arg)
    assert config.data.dataset.startswith("physworld/")
    assert "--config=sora_jax/configs/" in module.__doc__


def test_scaling_budget_multiplies_the_base_compute():
    one, four = scaling.get_config("cpu,budget=1x"), scaling.get_config("cpu,budget=4x")
    assert four.ladder.compute_flops == pytest.approx(4 * one.ladder.compute_flops)
    assert one.ladder.base_compute_flops == scaling.PRESETS["cpu"]["base"]
    # Steps spend the budget: steps x analytic FLOPs per step is the budget, to one step.
    for config in (one, four):
        spent = config.total_steps * config.ladder.flops_per_step
        assert abs(spent - config.ladder.compute_flops) <= config.ladder.flops_per_step
    assert four.ladder.params > one.ladder.params  # a bigger budget buys a bigger model
    pinned = scaling.get_config("cpu,budget=4x,size=L3d96")
    assert (pinned.model.depth, pinned.model.width, pinned.model.heads) == (3, 96, 3)
    with pytest.raises(ValueError, match="L4d128"):
        scaling.get_config("cpu,size=big")
    with pytest.raises(ValueError, match="multiplier"):
        scaling.get_config("cpu,budget=lots")


def test_recipe_knobs_scale_the_planned_lr_and_size_within_the_same_budget():
    from sora_jax.diffusion import flow
    from sora_jax.scaling import ladder, plan

    config = scaling.get_config("demo")
    base = ladder.rung_config(config, "4x")
    with config.unlocked():
        config.ladder.lr_scale, config.ladder.size_scale, config.flow.shift = 2.0, 4.0, 2.5
    scaled = ladder.rung_config(config, "4x")
    assert scaled.ladder.params > 2 * base.ladder.params and scaled.total_steps < base.total_steps
    assert scaled.ladder.compute_flops == base.ladder.compute_flops
    assert scaled.optimizer.learning_rate == pytest.approx(2 * plan.learning_rate(scaled.model.width))
    # flow.shift fixes the timestep shift for training and sampling; 0 keeps the token-count rule
    assert flow.configured_shift(scaled.flow, 140) == 2.5
    assert flow.configured_shift(base.flow, 140) == 1.0 and flow.configured_shift(base.flow, 1024) == 2.0
    # warmup: min(100, steps / 10) steps, scaled, at most half the run
    assert base.optimizer.warmup_steps == min(100, base.total_steps // 10)
    with config.unlocked():
        config.ladder.warmup_scale = 4.0
    assert ladder.rung_config(config, "4x").optimizer.warmup_steps == 4 * min(100, scaled.total_steps // 10)
    short = ladder.rung_config(config, "0.01x")
    assert short.optimizer.warmup_steps <= short.total_steps // 2


def test_mistyped_arg_and_variant_suggest_the_right_name():
    with pytest.raises(ValueError, match="did you mean 'budget'"):
        scaling.get_config("cpu,budgt=4x")
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        vae.get_config("tinyy")


def test_configs_are_locked_against_new_keys():
    config = t2v.get_config("tiny")
    config.model.width = 256  # an override of a known key is fine
    with pytest.raises(AttributeError, match="widht"):
        config.model.widht = 256


def test_parse_arg_casts_to_default_types():
    parsed = common.parse_arg("small,steps=10,lr=0.5,ema=true", variant="tiny", steps=1, lr=1.0, ema=False)
    assert (parsed.variant, parsed.steps, parsed.lr, parsed.ema) == ("small", 10, 0.5, True)


def test_cli_override_with_a_mistyped_key_fails_in_one_line_with_a_suggestion():
    result = run_cli("train", "--config=sora_jax/configs/vae.py:tiny", "--config.optimizer.learnin_rate=3")
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and "learning_rate" in message[0] and "Traceback" not in result.stderr


def test_cli_ladder_prints_its_plan_and_refuses_a_non_ladder_config():
    result = run_cli("ladder", "--config=sora_jax/configs/scaling.py:cpu", "--print")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["budget", "FLOPs", "model"] and lines[0].split()[-1] == "epochs"
    assert float(lines[3].split()[-1]) > float(lines[1].split()[-1]) > 1  # passes over the 2,048 training clips
    assert [line.split()[0] for line in lines[1:]] == ["1x", "4x", "32x"]
    result = run_cli("ladder", "--config=sora_jax/configs/t2v.py:tiny", "--print")
    assert result.returncode == 2 and "compute-ladder config" in result.stderr


def test_cli_ladder_refuses_scoring_settings_before_it_trains(tmp_path):
    """probe_samples and voe_quads act after every rung has trained (~45 min): refused first."""
    for setting, message in (("probe_samples=0", "ladder.probe_samples=0: each rung's probes score >= 1"),
                             ("voe_quads=-2", "ladder.voe_quads=-2 must be >= 0")):
        result = run_cli("ladder", "--config=sora_jax/configs/scaling.py:demo", f"--config.ladder.{setting}",
                         f"--workdir={tmp_path / 'ladder'}")
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / "ladder").exists()


def test_cli_unknown_verb_and_missing_subverb():
    assert run_cli("bogus").returncode == 2
    assert run_cli("bogus", "--help").returncode == 2
    result = run_cli("data")
    assert result.returncode == 2 and "prepare or preview" in result.stderr


def test_cli_help_lists_the_verbs_and_each_verbs_flags():
    from sora_jax import cli_flags, generate

    for args in ((), ("--help",), ("-h",)):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr[-500:])
        assert all(f"  {verb} " in result.stdout for verb in cli_flags.VERBS), args
    sample = run_cli("sample", "--help")
    assert sample.returncode == 0, sample.stderr[-500:]
    for flag in cli_flags.VERBS["sample"][1]:
        assert f"--{flag} " in sample.stdout, flag  # one line per flag, with its help
    for mode in generate.MODES:
        assert f"  {mode} " in sample.stdout, mode  # every mode and what it needs
    full = run_cli("train", "--helpfull")
    assert full.returncode == 0 and "--config " in full.stdout and "sora_jax/configs/t2v.py" in full.stdout
    assert run_cli("ladder", "-h").stdout.count("--publish") == 1


def test_cli_config_paths_from_before_the_move_still_resolve():
    result = run_cli("ladder", "--config=configs/scaling.py:demo", "--print")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1].split()[0] == "1x"


def test_cli_preview_writes_a_gallery(physworld_tiny, tmp_path):
    result = run_cli("data", "preview", "--dataset=physworld/tiny", f"--data_dir={physworld_tiny}",
                     f"--out={tmp_path}", "--count=4")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ["index.html", "contact_sheet.png", "manifest.json", "clip_000.mp4", "clip_003.gif", "clip_002.txt"]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert "clip_003.gif" in (tmp_path / "index.html").read_text()


def test_cli_preview_of_an_unprepared_dataset_says_how_to_prepare(tmp_path):
    result = run_cli("data", "preview", "--dataset=physworld/small", f"--data_dir={tmp_path}", f"--out={tmp_path}/o")
    assert result.returncode == 2 and "sora-jax data prepare" in result.stderr


def test_under_mup_every_rung_gets_the_base_widths_lr():
    from sora_jax.scaling import ladder

    config = scaling.get_config("cpu")
    config.model.parametrization = "mup"
    small, large = ladder.rung_config(config, "1x"), ladder.rung_config(config, "32x")
    assert large.model.width > small.model.width and large.optimizer.learning_rate == small.optimizer.learning_rate
    standard = scaling.get_config("cpu,budget=32x")
    assert standard.optimizer.learning_rate < small.optimizer.learning_rate  # the 1/width rule


def test_rule_fit_reads_the_measured_exponent(tmp_path, monkeypatch):
    import json

    from sora_jax.scaling import plan

    fitted = tmp_path / "isoflop_fit.json"
    fitted.write_text(json.dumps({"n_opt": {"k": 2.0e-3, "a": 0.6}}))
    monkeypatch.setattr(plan, "FITTED_RULE_FILE", fitted)
    chinchilla, measured = scaling.get_config("cpu,budget=32x"), scaling.get_config("cpu,budget=32x,rule=fit")
    assert measured.ladder.rule_a == 0.6 and measured.ladder.params != chinchilla.ladder.params
    monkeypatch.setattr(plan, "FITTED_RULE_FILE", tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="isoflop"):
        scaling.get_config("cpu,rule=fit")


def test_batch_rule_fit_grows_the_batch_with_compute_and_keeps_the_bucket_ratio(tmp_path, monkeypatch):
    import json

    from sora_jax.scaling import ladder, plan

    fitted = tmp_path / "batch_fit.json"
    fitted.write_text(json.dumps({"b0": 8.0, "c0": 2.5e13, "beta": 0.5}))
    monkeypatch.setattr(plan, "BATCH_RULE_FILE", fitted)
    config = scaling.get_config("cpu")
    preset = ladder.rung_config(config, "4x")
    config.ladder.batch_rule = "fit"
    small, large = ladder.rung_config(config, "1x"), ladder.rung_config(config, "4x")
    assert (small.data.batch_size, large.data.batch_size) == (8, 16)  # 8 * 4^0.5
    assert large.data.max_batch_size == 4 * large.data.batch_size
    again = ladder.rung_config(large, "4x")  # re-planning a planned config changes nothing
    assert (again.data.batch_size, again.data.max_batch_size) == (16, 64)
    assert large.total_steps == pytest.approx(preset.total_steps / 2, rel=0.01)  # same FLOPs, twice the batch
    config.ladder.batch_rule = "biggest"
    with pytest.raises(ValueError, match="preset, fit"):
        ladder.rung_config(config, "1x")
