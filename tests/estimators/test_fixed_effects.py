"""Cluster fixed effects (estimators/fixed_effects.py) beyond the R fixture."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators.fixed_effects import FixedEffects, within
from helpers import REFERENCE

BETWEEN = pd.read_csv(REFERENCE / "data" / "between_cluster.csv")


def test_a_between_cluster_predictor_alone_is_not_estimable_not_a_crash():
    result = FixedEffects("y ~ w", "cluster").fit(BETWEEN)
    assert result.status == estimators.Status.not_estimable
    assert result.terms == ("w",) and np.isnan(result.estimate).all() and np.isnan(result.p_value).all()
    assert result.message.startswith("w: constant within each cluster of 'cluster'")


def test_the_same_case_in_a_batch():
    data = BETWEEN
    results = FixedEffects("y ~ x + w", "cluster").fit_batch([data, data.assign(y=data["y"] * 2)])
    assert [r.status for r in results] == [estimators.Status.not_estimable] * 2
    np.testing.assert_allclose(results[1].estimate[0], 2 * results[0].estimate[0], rtol=1e-12)


def test_slopes_equal_ols_with_cluster_dummies():
    data = sims.build("clustered", n_subjects=6).generate(np.random.default_rng(2))
    dummies = estimators.build("ols", formula="y ~ X + C(subject)").fit(data)
    fe = estimators.build("fe_cr1").fit(data)
    np.testing.assert_allclose(fe.estimate, dummies.estimate[list(dummies.terms).index("X")], rtol=1e-10)


def test_within_transformation_removes_cluster_means():
    clusters = np.array([0, 0, 1, 1, 1])
    values = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 5.0], [3.0, 5.0], [6.0, 5.0]])
    np.testing.assert_allclose(within(values, clusters, 2), [[-1, 0], [1, 0], [-3, 0], [0, 0], [3, 0]])


def test_invalid_small_sample_convention_names_itself():
    with pytest.raises(ValueError, match="^small_sample:"):
        FixedEffects(small_sample="stata")
