"""The fits recover known exponents from synthetic sweeps."""

import numpy as np
import pytest

from sora_jax.scaling import fit

# A Chinchilla-shaped world: L = E + A/N^alpha + B/D^beta, C = 6·N·D.
TRUE = dict(E=0.5, A=40.0, B=60.0, alpha=0.35, beta=0.28)


def _loss(n, d):
    return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def _isoflop_runs(noise=0.0, seed=0, budgets=(1e12, 4e12, 1.6e13, 6.4e13)):
    rng = np.random.default_rng(seed)
    runs = []
    for compute in budgets:
        # The analytic optimum of the synthetic law, and sizes 0.25x..4x around it.
        centre = np.sqrt(compute / 6) * 0.3
        for n in centre * np.geomspace(0.25, 4, 7):
            d = compute / (6 * n)
            runs.append({"compute": compute, "params": n, "tokens": d,
                         "loss": _loss(n, d) * (1 + noise * rng.standard_normal())})
    return runs


def test_power_law_recovers_exponent_and_offset():
    compute = np.geomspace(1e12, 1e16, 9)
    losses = 2.4 * compute ** -0.05
    law = fit.fit_power_law(compute, losses)
    assert law["alpha"] == pytest.approx(0.05, rel=1e-6) and law["A"] == pytest.approx(2.4, rel=1e-6)
    with_offset = fit.fit_power_law(compute, 0.3 + 50 * compute ** -0.2, offset=True)
    assert with_offset["alpha"] == pytest.approx(0.2, rel=0.02) and with_offset["E"] == pytest.approx(0.3, rel=0.02)
    assert law["r2"] == pytest.approx(1.0) and with_offset["r2"] == pytest.approx(1.0, abs=1e-4)
    scattered = fit.fit_power_law(compute, losses * np.exp(0.05 * np.random.default_rng(0).standard_normal(9)))
    assert 0 < scattered["r2"] < 0.99


def test_isoflop_parabolas_recover_the_compute_optimal_exponent():
    expected_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    sweep = fit.fit_isoflop(_isoflop_runs(), bootstrap=50)
    assert sweep["n_opt"]["a"] == pytest.approx(expected_a, abs=0.03)
    noisy = fit.fit_isoflop(_isoflop_runs(noise=0.002, seed=1), bootstrap=200)
    low, high = noisy["n_opt"]["a_ci"]
    assert low < expected_a < high and high - low < 0.3
    assert all(b["curvature"] > 0 for b in sweep["budgets"])


def test_a_prediction_for_the_next_budget_and_the_floor_a_flattening_curve_needs():
    # Fitted on three budgets, predicted at the fourth: the world has an irreducible loss, so the
    # law with a floor lands closer than the pure power law, which overshoots as the curve flattens.
    runs = _isoflop_runs()
    seen = [r for r in runs if r["compute"] < 6.4e13]
    measured = fit.fit_isoflop(runs, bootstrap=20)["budgets"][-1]
    so_far, joint = fit.fit_isoflop(seen, bootstrap=20), fit.fit_isoflop_joint(seen, bootstrap=20)
    prediction = fit.predict_optimum(so_far, 6.4e13, joint)
    floor_error = abs(prediction["loss_opt_with_floor"] / measured["loss_opt"] - 1)
    power_error = abs(prediction["loss_opt"] / measured["loss_opt"] - 1)
    assert floor_error < 0.01 and floor_error < power_error and prediction["loss_opt"] < measured["loss_opt"]
    assert prediction["n_opt"] == pytest.approx(measured["n_opt"], rel=0.1)
    assert prediction["n_opt_one_fit"] == pytest.approx(measured["n_opt"], rel=0.1)


def test_a_backtest_predicts_each_budget_from_the_ones_below_and_finds_the_form_that_holds():
    # A world with a floor: approach 3 (its true form) and the law with a floor extrapolate within
    # 1 %; the pure power law undershoots more with every budget it reaches past.
    runs = _isoflop_runs(budgets=(2.5e11, 1e12, 4e12, 1.6e13, 6.4e13))
    rows = fit.backtest_loss_laws(runs)
    assert [row["budgets_known"] for row in rows] == [3, 4] and [row["step"] for row in rows] == [4, 4]
    assert "with a floor" not in rows[0]["predicted"] and "with a floor" in rows[1]["predicted"]
    measured = fit.fit_isoflop(runs, bootstrap=0)["budgets"]
    for row, truth in zip(rows, measured[3:]):
        assert row["loss_opt"] == truth["loss_opt"]
        assert abs(row["error"]["approach 3"]) < 0.01
        assert row["error"]["power law"] < row["error"]["approach 3"]
        assert row["predicted"]["power law"] == pytest.approx(row["loss_opt"] * (1 + row["error"]["power law"]))
    assert abs(rows[1]["error"]["with a floor"]) < 0.01 < abs(rows[1]["error"]["power law"])


def test_the_isoflop_figure_sets_both_laws_and_the_prediction_beside_the_minima(tmp_path):
    from sora_jax.scaling import plots

    runs = _isoflop_runs()
    sweep = fit.fit_isoflop(runs, bootstrap=20)
    prediction = fit.predict_optimum(fit.fit_isoflop([r for r in runs if r["compute"] < 6.4e13], bootstrap=20), 6.4e13)
    plots.plot_isoflop(runs, sweep, tmp_path / "isoflop.png", prediction)
    assert (tmp_path / "isoflop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure, axis = plots._pyplot().subplots()
    compute = np.array([b["compute"] for b in sweep["budgets"]])
    plots._plot_loss_opt(axis, sweep, compute, prediction)
    power, floor = axis.get_lines()  # drawn at the budgets: the floor law runs through the minima
    minima = [b["loss_opt"] for b in sweep["budgets"]]
    np.testing.assert_allclose(floor.get_ydata(), minima, rtol=2e-3)
    np.testing.assert_allclose(power.get_ydata(), fit.predict(sweep["loss"], compute))
    marked = np.concatenate([c.get_offsets() for c in axis.collections])
    for loss in (prediction["loss_opt"], prediction["loss_opt_with_floor"]):
        assert np.isclose(marked, [6.4e13, loss], rtol=1e-9).all(1).any()
    plots._pyplot().close(figure)


def test_approach_2_in_one_fit_recovers_the_exponent_at_least_as_tightly():
    expected_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    runs = _isoflop_runs(noise=0.002, seed=1)
    joint, alone = fit.fit_isoflop_joint(runs, bootstrap=100), fit.fit_isoflop(runs, bootstrap=100)
    low, high = joint["n_opt"]["a_ci"]
    assert joint["n_opt"]["a"] == pytest.approx(expected_a, abs=0.02) and low < expected_a < high
    assert high - low <= alone["n_opt"]["a_ci"][1] - alone["n_opt"]["a_ci"][0]
    assert joint["loss"]["alpha_ci"][0] < joint["loss"]["alpha"] < joint["loss"]["alpha_ci"][1]
    assert len(joint["budgets"]) == 4 and all(b["curvature"] > 0 for b in joint["budgets"])


def test_a_loss_offset_per_depth_keeps_a_shape_effect_from_throwing_the_exponent():
    expected_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    runs = _isoflop_runs(noise=0.002, seed=1)
    depths = [2, 3, 2, 3, 2, 4, 2] * 4  # deeper shapes interleaved with the reference's sizes
    penalty = {2: 0.0, 3: 0.04, 4: 0.07}  # a deeper shape loses this much at any size and budget
    shaped = [{**run, "loss": run["loss"] + penalty[d]} for run, d in zip(runs, depths)]
    by_depth = fit.fit_isoflop_joint(shaped, bootstrap=100, groups=depths)
    plain = fit.fit_isoflop_joint(shaped, bootstrap=100)
    assert by_depth["reference"] == 2
    for depth in (3, 4):
        offset = by_depth["offsets"][str(depth)]
        assert offset["loss"] == pytest.approx(penalty[depth], abs=0.01)
        assert offset["ci"][0] < penalty[depth] < offset["ci"][1]
    low, high = by_depth["n_opt"]["a_ci"]
    assert by_depth["n_opt"]["a"] == pytest.approx(expected_a, abs=0.02) and low < expected_a < high
    assert by_depth["rms_residual"] < 0.5 * plain["rms_residual"]
    assert high - low < plain["n_opt"]["a_ci"][1] - plain["n_opt"]["a_ci"][0]
    with pytest.raises(ValueError, match="3 group labels for 28 runs"):
        fit.fit_isoflop_joint(shaped, groups=[2, 3, 4])


def test_chinchilla_approach_3_recovers_the_law():
    runs = _isoflop_runs()
    law = fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs], [r["loss"] for r in runs])
    assert law["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    assert law["beta"] == pytest.approx(TRUE["beta"], abs=0.05)
    assert law["E"] == pytest.approx(TRUE["E"], rel=0.1)
    # ... and says what a run it was not fitted to will reach (a budget 4x past the sweep's).
    n, d = 3e5, 2.56e14 / (6 * 3e5)
    assert fit.chinchilla_loss(law, n, d) == pytest.approx(_loss(n, d), rel=0.01)
    noisy = _isoflop_runs(noise=0.002, seed=1)
    bootstrapped = fit.fit_chinchilla([r["params"] for r in noisy], [r["tokens"] for r in noisy],
                                      [r["loss"] for r in noisy], bootstrap=50)
    for name, true in (("alpha", TRUE["alpha"]), ("beta", TRUE["beta"]),
                       ("a", TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"]))):
        low, high = bootstrapped[f"{name}_ci"]
        assert low < true < high and high - low < 0.3, (name, low, high)


def test_isoflop_needs_three_sizes_per_budget():
    with pytest.raises(ValueError, match="3 sizes"):
        fit.fit_isoflop([{"compute": 1.0, "params": 1.0, "loss": 1.0}] * 2)


def test_probe_fit_recovers_a_known_logistic_and_where_it_reaches_ninety_percent():
    """Six rungs over 2.7 decades, as the demo and cpu ladders pooled, scored on 128 videos each."""
    from sora_jax.scaling import probe_fit

    ceiling, a, b = 0.95, -17.0, 1.3  # reaches 90 % of the ceiling at log10 C = (ln 9 + 17) / 1.3 = 14.77
    compute = np.array([1.5e12, 6e12, 4.8e13, 2.5e13, 1e14, 8e14])
    truth = ceiling / (1 + np.exp(-(a + b * np.log10(compute))))
    rng = np.random.default_rng(0)
    se = np.sqrt(truth * (1 - truth) / 128)
    fitted = probe_fit.fit_probe(compute, truth + se * rng.standard_normal(compute.size), se, ceiling, bootstrap=300)
    expected_c90 = (np.log(9) - a) / b
    assert fitted["b_low"] <= b <= fitted["b_high"] and fitted["b_high"] - fitted["b_low"] < 1.5
    assert fitted["log10_c90_low"] <= expected_c90 <= fitted["log10_c90_high"]
    assert abs(fitted["log10_c90"] - expected_c90) < 0.4 and fitted["reach_fraction"] == 1.0
    np.testing.assert_allclose(probe_fit.predict(fitted, compute), truth, atol=0.05)
    # A probe that does not improve with compute is never predicted to reach 90 %.
    flat = probe_fit.fit_probe(compute, np.full(6, 0.5), np.full(6, 0.04), ceiling, bootstrap=300)
    assert flat["log10_c90_high"] == np.inf and flat["reach_fraction"] < 0.9
    with pytest.raises(ValueError, match="at least 3 rungs"):
        probe_fit.fit_probe(compute[:2], truth[:2], se[:2], ceiling)


def test_ladders_pool_only_on_the_same_scenes_and_a_vae_ceiling_within_a_scene():
    from sora_jax.scaling import probe_fit

    def report(ceiling, seeds=(90000, 90127), compute=(1e12, 1e13, 1e14)):
        rungs = [{"run": f"r{i}", "compute_flops": c, "probes": {"permanence": {"mean": m, "low": m - 0.05,
                                                                              "high": m + 0.05}}}
                 for i, (c, m) in enumerate(zip(compute, (0.3, 0.5, 0.7)))]
        return {"rungs": rungs, "probe_seeds": list(seeds), "probe_clip": [17, 32, 56],
                "ceilings": {"vae": {"permanence": {"mean": ceiling}}}}

    fits = probe_fit.fit_ladders([report(0.90), report(0.913, compute=(2e14, 4e14, 8e14))], probes=("permanence",),
                                 bootstrap=50)
    assert fits["permanence"]["ceiling"] == pytest.approx(0.9065) and len(fits["permanence"]["rungs"]) == 6
    with pytest.raises(ValueError, match="ceilings differ on permanence"):
        probe_fit.fit_ladders([report(0.90), report(0.80)], probes=("permanence",), bootstrap=50)
    with pytest.raises(ValueError, match="probe_seeds differ"):
        probe_fit.fit_ladders([report(0.90), report(0.90, seeds=(90000, 90255))], probes=("permanence",), bootstrap=50)


def test_grid_optimum_interpolates_inside_and_stays_at_an_edge():
    values = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    losses = (np.log(values) - np.log(5.0)) ** 2
    assert fit.grid_optimum(values, losses) == pytest.approx(5.0, rel=1e-6)  # exact for a parabola in log
    assert fit.grid_optimum(values, np.log(values)) == 1.0  # still falling at the grid's end


def test_critical_batch_recovers_mccandlish_hyperbola():
    s_min, e_min = 300.0, 6000.0  # B_crit = 20
    batches = np.array([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    steps = s_min + e_min / batches
    fitted = fit.fit_critical_batch(batches, steps)
    assert fitted["B_crit"] == pytest.approx(20.0, rel=1e-6) and fitted["S_min"] == pytest.approx(s_min)
