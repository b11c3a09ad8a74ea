"""The parametric bootstrap LRT (pbkrtest's PBmodcomp): its simulation, its p-value, and its
batched path against a per-sample loop."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import estimators
from estimators.lmm import LMM, MixedModel
from estimators.lmm.bootstrap import bootstrap_p_value, reference_distribution, simulate
from estimators.lmm.crossprod import random_block_matrix
from estimators.lmm.design import build_mixed_design
from estimators.presets import ConfigError
from helpers import TESTS

FACTOR3 = pd.read_csv(TESTS / "reference_lmm" / "data" / "factor3.csv")
FORMULA = "y ~ condition + (1 | subject)"


def ml_fit(design, y):
    model = MixedModel.from_design(design, reml=False)
    return model, model.fit(model.outcomes(y[:, None]))[0]


def test_simulated_outcomes_have_the_fitted_mean_and_covariance():
    """E y* = X beta, Cov y* = sigma^2 (I + Z Lambda Lambda'Z'), within Monte Carlo error."""
    data = pd.read_csv(TESTS / "reference" / "data" / "crossed_within.csv")
    design, y = build_mixed_design("y ~ condition + (1 + condition | subject) + (1 | item)", data)
    _, fit = ml_fit(design, y)
    B = 20000
    Y = simulate(design, fit, np.random.default_rng(5), B)
    Z = np.hstack([random_block_matrix(b).toarray() for b in design.blocks])
    factors = MixedModel.from_design(design).layout.factors(fit.theta)
    Lambda = np.zeros((Z.shape[1],) * 2)
    offset = 0
    for block, T in zip(design.blocks, factors):
        Lambda[offset:offset + block.size, offset:offset + block.size] = np.kron(T, np.eye(block.n_levels))
        offset += block.size
    V = fit.sigma**2 * (np.eye(design.n) + Z @ Lambda @ Lambda.T @ Z.T)
    sd = np.sqrt(np.diag(V))
    assert np.all(np.abs(Y.mean(axis=1) - design.X @ fit.beta) < 4.5 * sd / np.sqrt(B))
    rows = np.arange(0, design.n, 7)
    empirical = np.cov(Y[rows])
    # Var of a sample covariance ~ (V_ii V_jj + V_ij^2) / B
    tolerance = 4.5 * np.sqrt((np.outer(sd[rows] ** 2, sd[rows] ** 2) + V[np.ix_(rows, rows)] ** 2) / B)
    assert np.all(np.abs(empirical - V[np.ix_(rows, rows)]) < tolerance)


def test_p_value_leaves_out_zero_statistics():
    """pbkrtest's (1 + #{LR* > LR}) / (1 + #{LR* > 0})."""
    reference = np.array([0.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.nan])
    assert bootstrap_p_value(1.5, reference) == pytest.approx((1 + 2) / (1 + 4))
    assert bootstrap_p_value(5.0, reference) == pytest.approx(1 / 5)


def test_batched_reference_distribution_equals_a_loop_over_samples():
    design, y = build_mixed_design(FORMULA, FACTOR3)
    reduced_design = design.without_fixed(1)
    full, _ = ml_fit(design, y)
    reduced, reduced_fit = ml_fit(reduced_design, y)
    batched = reference_distribution(full, reduced, reduced_fit, np.random.default_rng(7), 40)
    Y = simulate(reduced_design, reduced_fit, np.random.default_rng(7), 40)
    loop = np.array([
        max(reduced.fit(reduced.outcomes(Y[:, b:b + 1]))[0].criterion - full.fit(full.outcomes(Y[:, b:b + 1]))[0].criterion, 0.0)
        for b in range(40)])
    np.testing.assert_array_equal(batched, loop)
    assert bootstrap_p_value(1.0, batched) == bootstrap_p_value(1.0, loop)


def test_estimator_draws_from_each_replicates_own_stream():
    """fit_batch and fit give the same p-values with the same generators; the statistics are the
    LRT's; another seed gives other bootstrap p-values."""
    rng = np.random.default_rng(0)
    frames = [FACTOR3.assign(y=FACTOR3.y + 0.3 * rng.standard_normal(len(FACTOR3))) for _ in range(3)]
    estimator = LMM(FORMULA, inference="parametric_bootstrap", n_boot=60, test={"condition": "condition"})
    batch = estimator.fit_batch(frames, [np.random.default_rng(10 + r) for r in range(3)])
    for r, frame in enumerate(frames):
        single = estimator.fit(frame, np.random.default_rng(10 + r))
        np.testing.assert_array_equal(batch[r].p_value, single.p_value)
        lrt = LMM(FORMULA, inference="lrt", test={"condition": "condition"}).fit(frame)
        np.testing.assert_allclose(batch[r].estimate, lrt.estimate, rtol=1e-12)
        assert np.all((batch[r].p_value >= 1 / 61) & (batch[r].p_value <= 1))
    other = estimator.fit(frames[0], np.random.default_rng(99))
    assert not np.array_equal(other.p_value, batch[0].p_value)


def test_without_a_generator_it_refuses():
    with pytest.raises(ValueError, match="^rng: the parametric bootstrap draws"):
        LMM(FORMULA, inference="parametric_bootstrap", n_boot=10).fit(FACTOR3)


@pytest.mark.parametrize("params, key", [({"n_boot": 0}, "n_boot"), ({"n_boot": 2.5}, "n_boot")])
def test_invalid_bootstrap_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=rf"^estimator\.lmm\.{key}: "):
        estimators.build("lmm", inference="parametric_bootstrap", **params)


def test_model_selection_refuses_the_bootstrap():
    with pytest.raises(ConfigError, match=r"^estimator\.lmm_select_lrt\.inference: parametric_bootstrap"):
        estimators.build("lmm_select_lrt", inference="parametric_bootstrap")
