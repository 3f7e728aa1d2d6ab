"""The fits recover known exponents from synthetic sweeps."""

import numpy as np
import pytest

from sora_jax.scaling import fit

# A Chinchilla-shaped world: L = E + A/N^alpha + B/D^beta, C = 6·N·D.
TRUE = dict(E=0.5, A=40.0, B=60.0, alpha=0.35, beta=0.28)


def _loss(n, d):
    return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def _isoflop_runs(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    runs = []
    for compute in (1e12, 4e12, 1.6e13, 6.4e13):
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


def test_isoflop_parabolas_recover_the_compute_optimal_exponent():
    expected_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    sweep = fit.fit_isoflop(_isoflop_runs(), bootstrap=50)
    assert sweep["n_opt"]["a"] == pytest.approx(expected_a, abs=0.03)
    noisy = fit.fit_isoflop(_isoflop_runs(noise=0.002, seed=1), bootstrap=200)
    low, high = noisy["n_opt"]["a_ci"]
    assert low < expected_a < high and high - low < 0.3
    assert all(b["curvature"] > 0 for b in sweep["budgets"])


def test_chinchilla_approach_3_recovers_the_law():
    runs = _isoflop_runs()
    law = fit.fit_chinchilla([r["params"] for r in runs], [r["tokens"] for r in runs], [r["loss"] for r in runs])
    assert law["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    assert law["beta"] == pytest.approx(TRUE["beta"], abs=0.05)
    assert law["E"] == pytest.approx(TRUE["E"], rel=0.1)


def test_isoflop_needs_three_sizes_per_budget():
    with pytest.raises(ValueError, match="3 sizes"):
        fit.fit_isoflop([{"compute": 1.0, "params": 1.0, "loss": 1.0}] * 2)
