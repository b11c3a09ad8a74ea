"""The measures beyond test_measures' (relative bias, bias-eliminated coverage, CI width, relative
precision, rejection at several alphas, failures counted as events) equal a direct computation
on hand-made data, and summarise works on lazily opened (dask-backed) datasets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from helpers.datasets import synthetic_dataset
from helpers.datasets import ALPHA, TRUTH, hand_made

from analysis.measures import MEASURES, alpha_label, measure_names, rejection_name, summarise, to_tidy
from analysis import reduction
from analysis.reduction import RepMeans
from estimators.result import Status

VALID = (Status.ok, Status.singular)


def valid_reps(raw: dict, e: int) -> list[int]:
    return [r for r in range(12) if raw["status"][e, r] in VALID and math.isfinite(raw["estimate"][e, r])]


def empse(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def direct(raw: dict, e: int) -> dict[str, tuple[float, float, int]]:
    """These measures written out with loops over replicates (formulas in analysis/formulas.py)."""
    valid = valid_reps(raw, e)
    t = [raw["estimate"][e, r] for r in valid]
    n = len(t)
    mean = sum(t) / n
    bias_mcse = math.sqrt(sum((x - mean) ** 2 for x in t) / (n * (n - 1)))
    out = {"relbias": (100 * (mean - TRUTH) / TRUTH, 100 * bias_mcse / TRUTH, n)}
    ci = [r for r in valid if math.isfinite(raw["lo"][e, r]) and math.isfinite(raw["hi"][e, r])]
    b = sum(raw["lo"][e, r] <= mean <= raw["hi"][e, r] for r in ci) / len(ci)
    out["becoverage"] = (b, math.sqrt(b * (1 - b) / len(ci)), len(ci))
    widths = [raw["hi"][e, r] - raw["lo"][e, r] for r in ci]
    w = sum(widths) / len(widths)
    sd_w = math.sqrt(sum((x - w) ** 2 for x in widths) / (len(widths) - 1))
    out["ci_width"] = (w, sd_w / math.sqrt(len(widths)), len(widths))
    for a in (0.01, 0.05, 0.10):
        p = sum(raw["p"][e, r] < a for r in valid) / n
        out[f"rejection_{alpha_label(a)}"] = (p, math.sqrt(p * (1 - p) / n), n)
        p_all = sum(raw["p"][e, r] < a for r in valid) / 12
        out[f"rejection_{alpha_label(a)}_all"] = (p_all, math.sqrt(p_all * (1 - p_all) / 12), 12)
    c_all = sum(raw["lo"][e, r] <= TRUTH <= raw["hi"][e, r] for r in ci) / 12
    out["coverage_all"] = (c_all, math.sqrt(c_all * (1 - c_all) / 12), 12)
    p_all = sum(raw["p"][e, r] < ALPHA for r in valid) / 12
    out["rejection_all"] = (p_all, math.sqrt(p_all * (1 - p_all) / 12), 12)

    reference = valid_reps(raw, 0)
    both = [r for r in valid if r in reference]
    x = [raw["estimate"][0, r] for r in both]
    y = [raw["estimate"][e, r] for r in both]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    rho = sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(
        sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    ratio2 = (empse([raw["estimate"][0, r] for r in reference]) / empse(t)) ** 2
    out["relprec"] = (100 * (ratio2 - 1), 200 * ratio2 * math.sqrt(max(1 - rho**2, 0) / (len(both) - 1)), len(both))
    return out


@pytest.mark.parametrize("estimator", ["a", "b"])
def test_new_measures_equal_direct_computation(estimator):
    ds, raw = hand_made()
    # Make the reference's and b's estimates correlated, so that relprec's MCSE is not trivial.
    ds["estimate"].loc[dict(estimator="b")] = ds["estimate"].sel(estimator="b") + 0.5 * ds["estimate"].sel(estimator="a")
    raw["estimate"][1] = ds["estimate"].sel(estimator="b", term="X").values
    summary = summarise(ds)
    for measure, (value, mcse, n) in direct(raw, ["a", "b"].index(estimator)).items():
        cell = summary.sel(estimator=estimator, term="X", measure=measure)
        assert cell["value"].item() == pytest.approx(value, rel=1e-12, abs=1e-12), measure
        assert cell["mcse"].item() == pytest.approx(mcse, rel=1e-10, abs=1e-12), measure
        assert cell["n"].item() == n, measure


def test_measure_names_and_order():
    assert MEASURES == measure_names()
    assert MEASURES[:9] == ("bias", "relbias", "empse", "mse", "rmse", "modelse", "relerror_modelse", "relprec",
                            "coverage")
    assert {"rejection_0.01", "rejection_0.05", "rejection_0.10", "coverage_all", "rejection_all",
            "rejection_0.05_all", "failure_rate"} <= set(MEASURES)
    assert alpha_label(0.1) == "0.10" and alpha_label(0.05) == "0.05" and alpha_label(0.001) == "0.001"
    assert rejection_name(0.025, True) == "rejection_0.025_all"
    ds, _ = hand_made()
    custom = summarise(ds, alphas=(0.001, 0.2))
    assert list(custom["measure"].values) == list(measure_names((0.001, 0.2)))
    assert custom.attrs["alphas"] == "0.001 0.20" and custom.attrs["reference"] == "a"


def test_rejection_at_study_alpha_equals_the_matching_extra_alpha():
    summary = summarise(synthetic_dataset(seed=3))
    for variable in ("value", "mcse", "n"):
        np.testing.assert_array_equal(summary[variable].sel(measure="rejection"),
                                      summary[variable].sel(measure="rejection_0.05"))


def test_failures_as_events_never_raise_coverage_or_rejection():
    summary = summarise(synthetic_dataset(seed=4, n_reps=300))
    flaky = summary.sel(estimator="flaky", term="X")
    failure = flaky["value"].sel(measure="failure_rate").item()
    assert failure > 0.05
    for measure in ("coverage", "rejection"):
        valid, counted = flaky["value"].sel(measure=measure).item(), flaky["value"].sel(measure=f"{measure}_all").item()
        assert counted == pytest.approx(valid * (1 - failure), abs=1e-12)
        assert flaky["n"].sel(measure=f"{measure}_all").item() == 300


def test_relative_bias_undefined_where_truth_is_zero():
    summary = summarise(synthetic_dataset(seed=5))
    assert np.isnan(summary["value"].sel(term="X", measure="relbias")).all()
    assert np.isfinite(summary["value"].sel(term="Intercept", measure="relbias")).all()


def test_reference_estimator_is_chosen_by_argument():
    ds = synthetic_dataset(seed=6)
    summary = summarise(ds, reference="narrow")
    own = summary.sel(estimator="narrow", measure="relprec")
    assert (own["value"] == 0).all() and (own["mcse"] == 0).all()
    assert (summarise(ds).sel(estimator="good", measure="relprec")["value"] == 0).all()
    with pytest.raises(ValueError, match="no estimator 'nope'"):
        summarise(ds, reference="nope")


def test_any_status_but_ok_and_singular_is_a_failure():
    ds, _ = hand_made()
    ds["status"].loc[dict(estimator="a", rep=3)] = 5  # e.g. a time-out, or any code added later
    summary = summarise(ds)
    assert summary["n"].sel(estimator="a", term="X", measure="bias").item() == 11
    assert summary["value"].sel(estimator="a", term="X", measure="failure_rate").item() == pytest.approx(1 / 12)


def test_a_store_read_into_memory_gives_the_bits_of_one_read_pass_by_pass(monkeypatch):
    """Small inputs are read once and, making one block, reduced as numpy arrays: the bits of
    reading the store block by block, pass by pass."""
    pytest.importorskip("dask")
    lazy_input = synthetic_dataset(seed=3, n_reps=60).chunk({"rep": 20})
    in_memory = summarise(lazy_input)
    monkeypatch.setattr(reduction, "IN_MEMORY_BYTES", 0)
    xr.testing.assert_identical(in_memory, summarise(lazy_input))


def test_lazy_dataset_gives_the_same_small_result_with_every_mean_computed_first(monkeypatch):
    """On a dask-backed dataset every mean over replicates is computed before the measures that
    centre on it, so that no measure's graph waits for a mean while holding the store's blocks."""
    pytest.importorskip("dask")
    ds = synthetic_dataset(seed=7, n_reps=120, grid={"n_subjects": [6, 12], "icc": [0.1, 0.5]})
    eager = summarise(ds)
    lazy_input = ds.chunk({"rep": 25, "n_subjects": 1, "icc": 1})
    monkeypatch.setattr(reduction, "IN_MEMORY_BYTES", 0)  # a store too big to read into memory
    asked, missed = [], []
    original = RepMeans.mean

    def spy(self, x):
        asked.append(x.data.name)
        if self.known and x.data.name not in self.known:
            missed.append(x.data.name)
        return original(self, x)

    monkeypatch.setattr(RepMeans, "mean", spy)
    lazy = summarise(lazy_input)
    assert asked and not missed
    assert isinstance(lazy["value"].data, np.ndarray)
    xr.testing.assert_allclose(lazy, eager, rtol=1e-12)
    assert list(to_tidy(lazy).columns) == ["n_subjects", "icc", "estimator", "term", "measure", "value", "mcse", "n"]
