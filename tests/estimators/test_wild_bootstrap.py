"""The wild cluster bootstrap (estimators/wild_bootstrap.py) against an independent per-draw
loop: for each weight vector, build y* from the restricted fit, refit OLS with statsmodels and
take its cluster-robust t. The vectorised estimator must give the same p-values with the same
draws, exactly the enumeration p-value for small G, and interval bounds where the loop's
p-value crosses alpha."""
from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from estimators.design import build_design
from estimators.wild_bootstrap import (
    TIE_TOLERANCE,
    WildClusterBootstrap,
    all_sign_vectors,
    bootstrap_weights,
    webb_weights,
)
from helpers import REFERENCE



@cache
def seed_balanced(n_subjects: int = 24) -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / "data" / "seed_balanced.csv")
    return data[data["subject"] <= n_subjects].reset_index(drop=True)


def loop_p_value(data: pd.DataFrame, formula: str, cluster: str, term: str, weights: np.ndarray, null: float = 0.0) -> float:
    """WCR p-value of H0: beta_term = null, one statsmodels refit per column of ``weights``."""
    design, y = build_design(formula, data, cluster)
    X, clusters = design.X, design.clusters
    j = design.terms.index(term)

    def t_statistic(outcome):
        fit = sm.OLS(outcome, X).fit(cov_type="cluster", cov_kwds={"groups": clusters})
        return (fit.params[j] - null) / fit.bse[j]

    others = np.delete(X, j, axis=1)
    shifted = y - null * X[:, j]
    restricted = sm.OLS(shifted, others).fit().fittedvalues if others.shape[1] else np.zeros_like(y)
    fitted, residuals = restricted + null * X[:, j], shifted - restricted
    observed = abs(t_statistic(y))
    draws = np.array([abs(t_statistic(fitted + residuals * v[clusters])) for v in weights.T])
    return float(np.mean(draws >= observed * (1 - TIE_TOLERANCE)))


@pytest.mark.parametrize("kind", ["rademacher", "webb"])
def test_p_values_equal_a_per_draw_loop_with_the_same_draws(kind):
    data = seed_balanced()
    estimator = WildClusterBootstrap("y ~ X", "subject", weights=kind, n_boot=199)
    result = estimator.fit(data, np.random.default_rng(7))
    weights = bootstrap_weights(kind, np.random.default_rng(7), 24, 199)
    assert result.p_value[1] == loop_p_value(data, "y ~ X", "subject", "X", weights)
    assert 0.05 < result.p_value[1] < 0.95  # an informative case, not 0 or 1


def test_small_g_enumerates_every_sign_vector_exactly():
    data = seed_balanced(8)  # 2^8 = 256 <= 999 sign vectors
    result = WildClusterBootstrap("y ~ X", "subject", n_boot=999).fit(data, rng=None)
    vectors = np.array(list(itertools.product([-1.0, 1.0], repeat=8))).T
    assert result.p_value[1] == loop_p_value(data, "y ~ X", "subject", "X", vectors)
    assert "full enumeration of the 256" in result.message
    assert np.all(result.p_value >= 2 / 256)  # v = +1 and v = -1 always tie with the sample


def test_interval_bounds_are_where_the_loop_p_value_crosses_alpha():
    data = seed_balanced()
    result = WildClusterBootstrap("y ~ X", "subject", n_boot=199).fit(data, np.random.default_rng(3))
    weights = bootstrap_weights("rademacher", np.random.default_rng(3), 24, 199)
    step = 2e-6 * result.std_error[1]  # twice the bisection's tolerance
    for bound, outward in ((result.ci_lower[1], -1.0), (result.ci_upper[1], 1.0)):
        assert loop_p_value(data, "y ~ X", "subject", "X", weights, bound - outward * step) >= 0.05
        assert loop_p_value(data, "y ~ X", "subject", "X", weights, bound + outward * step) < 0.05
    assert result.ci_lower[1] < result.estimate[1] < result.ci_upper[1]


def test_five_clusters_with_rademacher_weights_cannot_reject_at_five_percent():
    """2 of the 32 sign vectors reproduce |t|, so p >= 1/16 > 0.05 for every null: the interval
    is the whole line (the known limit of Rademacher weights with very few clusters)."""
    data = pd.read_csv(REFERENCE / "data" / "few_clusters.csv")
    result = WildClusterBootstrap("y ~ x", "cluster", n_boot=999).fit(data)
    assert np.all(result.p_value == 2 / 32)
    assert np.all(np.isneginf(result.ci_lower)) and np.all(np.isposinf(result.ci_upper))
    webb = WildClusterBootstrap("y ~ x", "cluster", weights="webb", n_boot=999).fit(data, np.random.default_rng(1))
    assert np.all(np.isfinite(webb.ci_lower)) and np.all(webb.p_value < 0.05)


def test_reported_standard_error_is_cr1_and_df_is_nan():
    from estimators.ols import OLS

    data = seed_balanced()
    result = WildClusterBootstrap("y ~ X", "subject", n_boot=99).fit(data, np.random.default_rng(0))
    cr1 = OLS("y ~ X", "CR1", "subject").fit(data)
    np.testing.assert_allclose(result.estimate, cr1.estimate, rtol=1e-12)
    np.testing.assert_allclose(result.std_error, cr1.std_error, rtol=1e-12)
    assert np.isnan(result.df).all()


def test_randomness_comes_only_from_the_rng_passed_to_fit():
    data = seed_balanced()
    estimator = WildClusterBootstrap("y ~ X", "subject", weights="webb", n_boot=199)
    first = estimator.fit(data, np.random.default_rng(11))
    again = estimator.fit(data, np.random.default_rng(11))
    other = estimator.fit(data, np.random.default_rng(12))
    np.testing.assert_array_equal(first.p_value, again.p_value)
    np.testing.assert_array_equal(first.ci_upper, again.ci_upper)
    assert not np.array_equal(first.ci_upper, other.ci_upper)
    with pytest.raises(ValueError, match="^rng:"):
        estimator.fit(data, rng=None)


def test_weight_laws():
    draws = webb_weights(np.random.default_rng(0), 40, 6000)
    values, counts = np.unique(draws, return_counts=True)
    np.testing.assert_allclose(values, np.sqrt([1.5, 1, 0.5, 0.5, 1, 1.5]) * [-1, -1, -1, 1, 1, 1])
    np.testing.assert_allclose(counts / draws.size, 1 / 6, atol=0.01)
    assert abs(draws.mean()) < 0.01 and abs(draws.var() - 1) < 0.01
    signs = all_sign_vectors(3)
    assert signs.shape == (3, 8) and len({tuple(c) for c in signs.T}) == 8


@pytest.mark.parametrize(("name", "value"), [("weights", "mammen"), ("n_boot", 0), ("n_boot", 9.5), ("alpha", 1.0)])
def test_invalid_parameters_name_themselves(name, value):
    with pytest.raises(ValueError, match=f"^{name}:"):
        WildClusterBootstrap(**{name: value})
