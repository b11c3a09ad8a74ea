"""Paired comparisons: the difference equals summarise's, and its paired Monte Carlo SE matches the
real spread of differences over many simulated studies."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from helpers.datasets import synthetic_dataset

from analysis import compare
from analysis.measures import summarise

N_STUDIES = 600
N_REPS = 200
MEASURES = ("bias", "relbias", "empse", "mse", "rmse", "modelse", "relerror_modelse", "relprec", "coverage",
            "becoverage", "ci_width", "rejection", "rejection_0.10", "coverage_all", "rejection_all", "failure_rate")


@pytest.fixture(scope="module")
def many_studies() -> xr.Dataset:
    """N_STUDIES independent studies along a grid dimension ``study``: estimators a and b share
    most of their noise (correlation 0.9), b is more variable, has too small SEs and fails on
    10% of replicates."""
    estimators = {"a": (0.0, 1.0, 1.0, 0.0), "b": (0.05, 1.3, 0.8, 0.1)}
    return synthetic_dataset(seed=2024, n_reps=N_REPS, grid={"study": list(range(N_STUDIES))},
                             estimators=estimators, truth={"Intercept": 10.0, "X": 0.0}, correlation=0.9)


def test_difference_equals_difference_of_summaries():
    ds = synthetic_dataset(seed=8, grid={"n_subjects": [6, 12]})
    summary = summarise(ds)
    for measure in MEASURES:
        result = compare(ds, "flaky", "good", measure)
        expected = summary["value"].sel(estimator="flaky", measure=measure) - summary["value"].sel(
            estimator="good", measure=measure)
        xr.testing.assert_allclose(result["value"], expected.drop_vars("measure"), rtol=1e-12)
        assert result.attrs["method"].startswith("delta method")
        assert (result["n_b"] == summary["n"].sel(estimator="good", measure=measure).drop_vars("measure")).all()


def test_an_estimator_against_itself_differs_by_zero_with_zero_mcse():
    ds = synthetic_dataset(seed=9)
    for measure in ("bias", "empse", "coverage", "relprec"):
        result = compare(ds, "flaky", "flaky", measure)
        assert np.allclose(result["value"].sel(term="Intercept"), 0) and np.allclose(result["mcse"], 0)


@pytest.mark.parametrize("measure", MEASURES)
def test_paired_mcse_matches_spread_over_simulated_studies(many_studies, measure):
    term = "Intercept" if measure == "relbias" else "X"  # relative bias needs a non-zero truth
    result = compare(many_studies, "b", "a", measure, reference="a").sel(term=term)
    spread = float(result["value"].std(ddof=1))
    predicted = float(np.sqrt((result["mcse"] ** 2).mean()))
    # The SD over S studies has a Monte Carlo SE of about SD / sqrt(2 (S - 1)); allow 3.5 of them.
    tolerance = 3.5 * spread / np.sqrt(2 * (N_STUDIES - 1))
    assert abs(predicted - spread) < tolerance, (predicted, spread)


def test_pairing_shrinks_the_mcse_of_correlated_estimators(many_studies):
    result = compare(many_studies, "b", "a", "bias").sel(term="X")
    assert float(result["mcse"].mean()) < 0.6 * float(result["mcse_unpaired"].mean())


def test_lazy_dataset_and_unknown_names():
    pytest.importorskip("dask")
    ds = synthetic_dataset(seed=10, grid={"n_subjects": [6, 12]})
    lazy = compare(ds.chunk({"rep": 50, "n_subjects": 1}), "narrow", "good", "coverage")
    xr.testing.assert_allclose(lazy, compare(ds, "narrow", "good", "coverage"))
    assert isinstance(lazy["mcse"].data, np.ndarray)
    with pytest.raises(ValueError, match="no estimator 'zzz'"):
        compare(ds, "zzz", "good", "bias")
    with pytest.raises(ValueError, match="unknown measure"):
        compare(ds, "narrow", "good", "sharpness")
