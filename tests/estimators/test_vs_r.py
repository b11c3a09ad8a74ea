"""The estimators against R on the committed fixtures (R is not needed to run these tests).

- OLS with iid / HC0-HC3 / CR0-CR3 variances: tests/reference/ols_family.csv (summary.lm,
  sandwich::vcovHC / vcovCL, clubSandwich::vcovCR and coef_test with Satterthwaite df).
- Cluster fixed effects, CR1: tests/reference_fe/fe_cr1.csv (lm with cluster dummies and
  sandwich::vcovCL type HC1; tests/reference_fe/make_fe_reference.R).
- GEE, independence and exchangeable, robust SEs: tests/reference/gee.csv (geepack::geeglm).
- F1, F2 and min F': tests/reference/anova_f1f2.csv (afex::aov_ez, cross-checked with aov).

Estimates, standard errors, dfs and p-values agree to 1e-6 relative (in practice to about
1e-12). p-values below 1e-15 are compared absolutely: R writes geepack's 1 - pchisq(W, 1),
which is rounding noise there (tests/reference/README.md).

Tests marked ``r`` rerun R live (Rscript with geepack) for what no fixture covers: geepack's
naive (model-based) GEE standard errors.
"""
from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import estimators
from estimators.clark import ClarkTest
from estimators.fixed_effects import FixedEffects
from estimators.gee import GEE
from estimators.ols import OLS
from helpers import TESTS

REFERENCE = TESTS / "reference"
RTOL = 1e-6
P_ATOL = 1e-15
GEE_IDS = {"seed_balanced": "subject", "unbalanced": "cluster", "few_clusters": "cluster"}


@cache
def dataset(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / f"{name}.csv")


def reference(path: Path, keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    frame = pd.read_csv(path)
    return list(frame.groupby(keys, sort=False))


def assert_close(actual, expected, column: str, atol: float = 0.0) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=RTOL, atol=atol, err_msg=column)


def assert_matches(result, expected: pd.DataFrame, columns: dict[str, str]) -> None:
    """Our ``to_frame`` columns (keys) against the fixture's (values), term by term."""
    ours = result.to_frame().set_index("term").loc[expected["term"]]
    for mine, theirs in columns.items():
        atol = P_ATOL if mine == "p_value" else 0.0
        assert_close(ours[mine], expected[theirs], f"{mine} vs R {theirs}", atol)


OLS_CASES = reference(REFERENCE / "ols_family.csv", ["dataset", "formula", "cluster", "vcov"])


@pytest.mark.parametrize(("key", "expected"), OLS_CASES, ids=["-".join(key) for key, _ in OLS_CASES])
def test_ols_family_matches_sandwich_and_clubsandwich(key, expected):
    name, formula, cluster, vcov = key
    estimator = OLS(formula=formula, vcov=vcov, cluster=cluster if vcov.startswith("CR") else None)
    result = estimator.fit(dataset(name))
    assert_matches(result, expected, {c: c for c in ("estimate", "std_error", "df", "p_value")})


@pytest.mark.parametrize("vcov", ["iid", "HC2", "CR1", "CR2", "CR3"])
def test_ols_presets_batch_path_matches_r(vcov):
    """The vectorised fit_batch path gives the fixture's numbers too (two copies of the data
    with the outcome shifted, so that only the outcome differs)."""
    name, formula, cluster = "unbalanced", "y ~ x + z", "cluster"
    expected = next(e for (n, _, _, v), e in OLS_CASES if n == name and v == vcov)
    data = dataset(name)
    shifted = data.assign(y=data["y"] + 1.0)
    estimator = OLS(formula=formula, vcov=vcov, cluster=cluster if vcov.startswith("CR") else None)
    first, second = estimator.fit_batch([data, shifted])
    assert_matches(first, expected, {c: c for c in ("estimate", "std_error", "df", "p_value")})
    intercept = first.terms.index("Intercept")
    np.testing.assert_allclose(second.estimate[intercept], first.estimate[intercept] + 1.0, rtol=1e-12)
    np.testing.assert_allclose(second.std_error, first.std_error, rtol=1e-10)


MORTALITY_FORMULA = "mrate ~ 0 + legal + beertaxa + C(state) + C(year)"


def test_cr2_with_cluster_fixed_effects_matches_clubsandwich():
    """clubSandwich's panel-data vignette model (tests/reference/make_mortality_reference.R):
    with a fixed effect per cluster every I - H_gg is singular, and CR2 uses the generalised
    inverse square root, as coef_test(vcov = "CR2", test = "Satterthwaite") does."""
    expected = pd.read_csv(REFERENCE / "cr2_mortality.csv")
    result = OLS(formula=MORTALITY_FORMULA, vcov="CR2", cluster="state").fit(dataset("mortality_rates"))
    assert_matches(result, expected, {c: c for c in ("estimate", "std_error", "df", "p_value")})


def test_cr3_with_cluster_fixed_effects_is_an_input_error():
    """Leaving a state out leaves its fixed effect unidentified: CR3 (the jackknife) is undefined."""
    with pytest.raises(estimators.design.InputError, match="cluster 'state': .*CR3"):
        OLS(formula=MORTALITY_FORMULA, vcov="CR3", cluster="state").fit(dataset("mortality_rates"))


FE_CASES = reference(TESTS / "reference_fe" / "fe_cr1.csv", ["dataset", "formula", "cluster"])


@pytest.mark.parametrize(("key", "expected"), FE_CASES, ids=["-".join(key) for key, _ in FE_CASES])
def test_fixed_effects_match_lsdv_vcovcl_hc1(key, expected):
    name, formula, cluster = key
    result = FixedEffects(formula=formula, cluster=cluster).fit(dataset(name))
    aliased = expected["estimate"].isna().to_numpy()
    assert result.status == (estimators.Status.not_estimable if aliased.any() else estimators.Status.ok)
    ours = result.to_frame().set_index("term").loc[expected["term"]]
    assert ours["estimate"].isna().to_numpy().tolist() == aliased.tolist()
    estimable = expected[~aliased]
    if len(estimable):
        assert_matches(result, estimable, {c: c for c in ("estimate", "std_error", "df", "p_value")})
    if aliased.any():
        assert "not estimable" in result.message


def test_fixed_effects_nested_convention_rescales_lsdv():
    """``nested`` does not count the G cluster intercepts: V_nested / V_lsdv = (n-k-G)/(n-k-1)."""
    data = dataset("unbalanced")
    lsdv = FixedEffects("y ~ x", "cluster").fit(data)
    nested = FixedEffects("y ~ x", "cluster", small_sample="nested").fit(data)
    n, k, G = len(data), 1, data["cluster"].nunique()
    np.testing.assert_allclose(nested.std_error**2 / lsdv.std_error**2, (n - k - G) / (n - k - 1), rtol=1e-12)
    np.testing.assert_array_equal(nested.estimate, lsdv.estimate)


GEE_CASES = reference(REFERENCE / "gee.csv", ["dataset", "formula", "corstr"])


@pytest.mark.parametrize(("key", "expected"), GEE_CASES, ids=["-".join(key) for key, _ in GEE_CASES])
def test_gee_matches_geepack(key, expected):
    name, formula, corstr = key
    result = GEE(formula=formula, cluster=GEE_IDS[name], correlation=corstr).fit(dataset(name))
    assert result.status == estimators.Status.ok
    assert np.all(np.isinf(result.df))
    assert_matches(result, expected, {"estimate": "estimate", "std_error": "std_error", "p_value": "p_value"})


ANOVA = pd.read_csv(REFERENCE / "anova_f1f2.csv")


@pytest.mark.parametrize("name", ["crossed_within", "crossed_between"])
@pytest.mark.parametrize("test", ["F1", "F2", "minF"])
def test_clark_tests_match_afex(name, test):
    expected = ANOVA[(ANOVA["dataset"] == name) & (ANOVA["test"] == test)].iloc[0]
    result = ClarkTest(test=test).fit(dataset(name))
    assert result.terms == ("condition",)
    assert_close(result.estimate, [expected["estimate"]], "estimate")
    assert_close(result.df, [expected["df2"]], "denominator df")
    assert_close(result.p_value, [expected["p_value"]], "p_value")
    if test == "minF":
        assert np.isnan(result.std_error).all() and np.isnan(result.ci_lower).all()
    else:  # F = t^2 of the reported estimate and SE
        assert_close((result.estimate / result.std_error) ** 2, [expected["F"]], "F")


@pytest.mark.parametrize("name", ["crossed_within", "crossed_between"])
def test_f1xf2_takes_the_larger_p_value(name):
    rows = ANOVA[ANOVA["dataset"] == name].set_index("test")
    result = ClarkTest(test="F1xF2").fit(dataset(name))
    assert_close(result.p_value, [max(rows.loc["F1", "p_value"], rows.loc["F2", "p_value"])], "p_value")
    assert result.status == estimators.Status.ok and np.isnan(result.std_error).all()


GEEPACK_NAIVE = """
suppressPackageStartupMessages(library(geepack))
d <- read.csv("{path}"); for (v in names(d)) if (is.double(d[[v]])) d[[v]] <- round(d[[v]], 6)
d <- d[order(d${cluster}), ]; d$.id <- d${cluster}
fit <- geeglm({formula}, id = .id, data = d, family = gaussian, corstr = "{corstr}")
cat(sprintf("%.17g", sqrt(diag(fit$geese$vbeta.naiv))), sep = "\\n")
"""


@pytest.mark.r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript with geepack")
@pytest.mark.parametrize("corstr", ["independence", "exchangeable"])
def test_gee_naive_variance_matches_geepack_live(corstr):
    script = GEEPACK_NAIVE.format(path=REFERENCE / "data" / "unbalanced.csv", cluster="cluster",
                                  formula="y ~ x + z", corstr=corstr)
    output = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True).stdout
    expected = np.array([float(v) for v in output.split()])
    result = GEE("y ~ x + z", "cluster", correlation=corstr, variance="naive").fit(dataset("unbalanced"))
    np.testing.assert_allclose(result.std_error, expected, rtol=RTOL)
