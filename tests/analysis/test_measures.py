"""Each measure and its Monte Carlo SE equal a direct computation on hand-made data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.measures import MEASURES, summarise, to_tidy
from estimators.result import Status
from helpers.datasets import ALPHA, TRUTH, hand_made

def direct(raw: dict, e: int) -> dict[str, tuple[float, float, int]]:
    """rsimsum's formulas written out with Python loops over the valid replicates."""
    valid = [r for r in range(12) if raw["status"][e, r] in (Status.ok, Status.singular)
             and math.isfinite(raw["estimate"][e, r])]
    t = [raw["estimate"][e, r] for r in valid]
    s = [raw["std_error"][e, r] for r in valid]
    n = len(t)
    mean = sum(t) / n
    ss = sum((x - mean) ** 2 for x in t)
    out = {"bias": (mean - TRUTH, math.sqrt(ss / (n * (n - 1))), n)}
    empse = math.sqrt(ss / (n - 1))
    out["empse"] = (empse, empse / math.sqrt(2 * (n - 1)), n)
    mse = sum((x - TRUTH) ** 2 for x in t) / n
    mse_mcse = math.sqrt(sum(((x - TRUTH) ** 2 - mse) ** 2 for x in t) / (n * (n - 1)))
    out["mse"] = (mse, mse_mcse, n)
    out["rmse"] = (math.sqrt(mse), mse_mcse / (2 * math.sqrt(mse)), n)
    v = [x**2 for x in s]
    modelse = math.sqrt(sum(v) / n)
    var_v = sum((x - sum(v) / n) ** 2 for x in v) / (n - 1)
    out["modelse"] = (modelse, math.sqrt(var_v / (4 * n * modelse**2)), n)
    ratio = modelse / empse
    out["relerror_modelse"] = (100 * (ratio - 1),
                               100 * ratio * math.sqrt(var_v / (4 * n * modelse**4) + 1 / (2 * (n - 1))), n)
    ci = [r for r in valid if math.isfinite(raw["lo"][e, r])]
    c = sum(raw["lo"][e, r] <= TRUTH <= raw["hi"][e, r] for r in ci) / len(ci)
    out["coverage"] = (c, math.sqrt(c * (1 - c) / len(ci)), len(ci))
    rej = sum(raw["p"][e, r] < ALPHA for r in valid) / n
    out["rejection"] = (rej, math.sqrt(rej * (1 - rej) / n), n)
    f = (12 - n) / 12
    out["failure_rate"] = (f, math.sqrt(f * (1 - f) / 12), 12)
    return out


@pytest.mark.parametrize("estimator", ["a", "b"])
def test_measures_equal_direct_computation(estimator):
    ds, raw = hand_made()
    summary = summarise(ds)
    expected = direct(raw, ["a", "b"].index(estimator))
    assert set(summary["measure"].values) == set(MEASURES)
    for measure, (value, mcse, n) in expected.items():
        cell = summary.sel(estimator=estimator, term="X", measure=measure)
        assert cell["value"].item() == pytest.approx(value, rel=1e-12, abs=1e-14), measure
        assert cell["mcse"].item() == pytest.approx(mcse, rel=1e-12, abs=1e-14), measure
        assert cell["n"].item() == n, measure


def test_counts_reflect_failures_and_missing_intervals():
    ds, _ = hand_made()
    summary = summarise(ds)
    assert summary["n"].sel(estimator="b", term="X", measure="bias").item() == 9
    assert summary["n"].sel(estimator="a", term="X", measure="coverage").item() == 11
    assert summary["value"].sel(estimator="b", term="X", measure="failure_rate").item() == pytest.approx(3 / 12)


def test_tidy_summary_columns():
    ds, _ = hand_made()
    frame = to_tidy(summarise(ds))
    assert list(frame.columns) == ["estimator", "term", "measure", "value", "mcse", "n"]
    assert len(frame) == 2 * len(MEASURES)


def test_terms_an_estimator_never_reports_have_no_measures():
    ds, _ = hand_made()
    extra = ds.isel(term=[0, 0]).assign_coords(term=["X", "Z"])
    extra["estimate"].loc[{"term": "Z"}] = np.nan
    extra["truth"].loc[{"term": "Z"}] = 1.0
    summary = summarise(extra)
    z = summary.sel(term="Z")
    assert np.isnan(z["value"]).all() and (z["n"] == 0).all()
    assert summary["value"].sel(term="X", estimator="b", measure="failure_rate").item() == pytest.approx(3 / 12)
