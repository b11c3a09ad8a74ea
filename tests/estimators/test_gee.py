"""GEE (estimators/gee.py): the gaussian family's robust, Mancl-DeRouen and naive variances,
the iteration's convergence status and the vectorised batch path; the binomial and Poisson
families against geepack; the two-column binomial response cbind(k, n - k) on lme4's cbpp."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import estimators
from estimators.gee import GEE
from helpers import REFERENCE
from helpers.trials import BAD_TRIALS, CBPP, CBPP_FORMULA, bernoulli_rows

UNBALANCED = pd.read_csv(REFERENCE / "data" / "unbalanced.csv")
OLS_R = pd.read_csv(REFERENCE / "ols_family.csv")


def statsmodels_gee(correlation: str, cov_type: str):
    """statsmodels' GEE with geepack's moment estimators (ddof_scale=0), iterated to convergence."""
    structure = sm.cov_struct.Exchangeable() if correlation == "exchangeable" else sm.cov_struct.Independence()
    model = smf.gee("y ~ x + z", "cluster", UNBALANCED, cov_struct=structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(cov_type=cov_type, ddof_scale=0, maxiter=200)


@pytest.mark.parametrize("correlation", ["independence", "exchangeable"])
@pytest.mark.parametrize(("variance", "cov_type"), [("robust", "robust"), ("mancl_derouen", "bias_reduced")])
def test_variances_match_statsmodels_at_the_same_fixed_point(correlation, variance, cov_type):
    ours = GEE("y ~ x + z", "cluster", correlation, variance, tol=1e-13, max_iter=500).fit(UNBALANCED)
    theirs = statsmodels_gee(correlation, cov_type)
    np.testing.assert_allclose(ours.estimate, theirs.params.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.std_error, theirs.bse.to_numpy(), rtol=1e-9)


def test_mancl_derouen_under_independence_is_clubsandwich_cr3():
    expected = OLS_R[(OLS_R["dataset"] == "unbalanced") & (OLS_R["vcov"] == "CR3")]
    result = GEE("y ~ x + z", "cluster", "independence", "mancl_derouen").fit(UNBALANCED)
    np.testing.assert_allclose(result.std_error, expected["std_error"].to_numpy(), rtol=1e-10)


def test_naive_independence_variance_is_ols_with_divisor_n():
    ols = estimators.build("ols", formula="y ~ x + z").fit(UNBALANCED)
    naive = GEE("y ~ x + z", "cluster", variance="naive").fit(UNBALANCED)
    n, p = len(UNBALANCED), 3
    np.testing.assert_allclose(naive.std_error**2, ols.std_error**2 * (n - p) / n, rtol=1e-12)


def test_too_few_iterations_is_not_converged_with_numbers_kept():
    result = GEE("y ~ x + z", "cluster", "exchangeable", max_iter=1).fit(UNBALANCED)
    assert result.status == estimators.Status.not_converged
    assert "did not converge" in result.message and np.isfinite(result.estimate).all()
    assert GEE("y ~ x + z", "cluster", "exchangeable").fit(UNBALANCED).status == estimators.Status.ok


def test_batch_is_bit_identical_to_single_fits_whatever_the_chunk():
    dgp = __import__("sims").build("clustered", n_subjects=10)
    frames = [dgp.generate(np.random.default_rng(r)) for r in range(9)]
    for variance in ("robust", "naive", "mancl_derouen"):
        estimator = GEE(correlation="exchangeable", variance=variance)
        whole = estimator.fit_batch(frames)
        pieces = estimator.fit_batch(frames[:4]) + estimator.fit_batch(frames[4:])
        for frame, a, b in zip(frames, whole, pieces):
            single = estimator.fit(frame)
            for column in ("estimate", "std_error", "p_value", "ci_upper"):
                np.testing.assert_array_equal(getattr(a, column), getattr(single, column))
                np.testing.assert_array_equal(getattr(b, column), getattr(single, column))


@pytest.mark.parametrize(("name", "value"), [("correlation", "ar1"), ("variance", "jackknife"), ("tol", 0.0), ("max_iter", 0)])
def test_invalid_parameters_name_themselves(name, value):
    with pytest.raises(ValueError, match=f"^{name}:"):
        GEE(**{name: value})


# --- binomial and Poisson families ---------------------------------------------------------

GLM_REFERENCE = REFERENCE.parent / "reference_glm"
GEE_R = pd.read_csv(GLM_REFERENCE / "gee.csv")
FAMILY_DATA = {"binomial": "binary_clustered", "poisson": "counts_clustered"}


@pytest.mark.parametrize("variance", ["robust", "naive", "mancl_derouen"])
@pytest.mark.parametrize("correlation", ["independence", "exchangeable"])
@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_family_gee_matches_geepack(family, correlation, variance):
    """geepack::geeglm (robust: san.se, naive: vbeta.naiv) and, for mancl_derouen, the hand-written
    R formula of tests/reference_glm/make_references.R, to 1e-6 relative (in practice 1e-13)."""
    dataset = FAMILY_DATA[family]
    data = pd.read_csv(GLM_REFERENCE / "data" / f"{dataset}.csv")
    expected = GEE_R[(GEE_R.dataset == dataset) & (GEE_R.correlation == correlation) & (GEE_R.variance == variance)]
    result = GEE("y ~ X + z", "subject", correlation, variance, tol=1e-12, max_iter=200, family=family).fit(data)
    assert result.status == estimators.Status.ok
    np.testing.assert_allclose(result.estimate, expected.estimate, rtol=1e-6)
    np.testing.assert_allclose(result.std_error, expected.std_error, rtol=1e-6)


def test_family_gee_under_independence_is_the_glm_with_cr0():
    data = pd.read_csv(GLM_REFERENCE / "data" / "binary_clustered.csv")
    gee = GEE("y ~ X + z", "subject", family="binomial", tol=1e-12).fit(data)
    glm = estimators.build("logit_glm", formula="y ~ X + z", vcov="CR0", cluster="subject").fit(data)
    np.testing.assert_allclose(gee.estimate, glm.estimate, rtol=1e-10)
    np.testing.assert_allclose(gee.std_error, glm.std_error, rtol=1e-8)


@pytest.mark.parametrize("family, values", [("binomial", [0, 1, 2]), ("poisson", [0, -2, 1])])
def test_family_gee_refuses_a_response_outside_the_family(family, values):
    data = pd.DataFrame({"y": np.resize(values, 24), "X": np.tile([0, 1], 12), "subject": np.repeat(np.arange(6), 4)})
    with pytest.raises(estimators.design.InputError, match="^column 'y' has "):
        GEE(family=family).fit(data)


@pytest.mark.parametrize("params, key", [({"family": "gamma"}, "family"), ({"family": "poisson", "link": "logit"}, "link"),
                                         ({"link": "logit"}, "link")])
def test_unknown_family_or_link_names_the_key(params, key):
    with pytest.raises(ValueError, match=f"^{key}:"):
        GEE(**params)


def test_family_batch_equals_single_fits():
    frames = __import__("sims").build("crossed_binary").generate_chunk([np.random.default_rng(s) for s in range(4)])
    for variance in ("robust", "naive", "mancl_derouen"):
        estimator = GEE("y ~ condition", "subject", "exchangeable", variance, family="binomial")
        for frame, result in zip(frames, estimator.fit_batch(frames)):
            single = estimator.fit(frame)
            np.testing.assert_allclose(result.estimate, single.estimate, rtol=1e-10)
            np.testing.assert_allclose(result.std_error, single.std_error, rtol=1e-10)


# --- the two-column binomial response cbind(successes, failures) --------------------------------



@pytest.mark.parametrize("variance", ["robust", "naive", "mancl_derouen"])
@pytest.mark.parametrize("correlation", ["independence", "exchangeable"])
def test_cbind_gee_matches_geepack(correlation, variance):
    """geeglm(cbind(incidence, size - incidence) ~ period, id = herd, binomial) on lme4's cbpp:
    geepack's prior weights (the trials) in the estimating equations and its weighted scale and
    exchangeable moment estimators (estimators/gee.py), to 1e-6 relative as above."""
    expected = GEE_R[(GEE_R.dataset == "cbpp") & (GEE_R.correlation == correlation) & (GEE_R.variance == variance)]
    result = GEE(CBPP_FORMULA, "herd", correlation, variance, tol=1e-12, max_iter=200, family="binomial").fit(CBPP)
    assert result.status == estimators.Status.ok and len(result.terms) == len(expected) == 4
    np.testing.assert_allclose(result.estimate, expected.estimate, rtol=1e-6)
    np.testing.assert_allclose(result.std_error, expected.std_error, rtol=1e-6)


def test_cbind_gee_under_independence_is_the_gee_of_its_bernoulli_rows():
    """Under independence beta and the robust variance are those of the trials expanded into 0/1
    rows; the naive variance is not (geepack's scale is weighted by the trials: module docstring)."""
    rows = bernoulli_rows(CBPP)
    for variance, same in (("robust", True), ("naive", False)):
        grouped = GEE(CBPP_FORMULA, "herd", variance=variance, tol=1e-12, family="binomial").fit(CBPP)
        expanded = GEE("y ~ C(period)", "herd", variance=variance, tol=1e-12, family="binomial").fit(rows)
        np.testing.assert_allclose(grouped.estimate, expanded.estimate, rtol=1e-9)
        assert np.allclose(grouped.std_error, expanded.std_error, rtol=1e-9) is same


def test_cbind_of_single_trials_is_the_binary_gee():
    data = pd.read_csv(GLM_REFERENCE / "data" / "binary_clustered.csv")
    for variance in ("robust", "naive", "mancl_derouen"):
        binary = GEE("y ~ X + z", "subject", "exchangeable", variance, family="binomial").fit(data)
        trials = GEE("cbind(y, 1 - y) ~ X + z", "subject", "exchangeable", variance, family="binomial").fit(data)
        np.testing.assert_allclose(trials.estimate, binary.estimate, rtol=1e-12)
        np.testing.assert_allclose(trials.std_error, binary.std_error, rtol=1e-12)


@pytest.mark.parametrize("change, message", BAD_TRIALS)
def test_cbind_gee_refuses_bad_trials_in_one_line_naming_the_column(change, message):
    with pytest.raises(estimators.design.InputError, match=message) as error:
        GEE(CBPP_FORMULA, "herd", "exchangeable", family="binomial").fit(change(CBPP))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("family", ["poisson", "gaussian"])
def test_cbind_gee_of_another_family_is_refused_when_built(family):
    with pytest.raises(ValueError, match=rf"^formula: outcome 'cbind\(k, f\)': cbind\(successes, failures\) is a "
                                         rf"binomial response, not {family}$"):
        GEE("cbind(k, f) ~ X", family=family)


def test_cbind_gee_batch_of_frames_equals_single_fits():
    dgp = __import__("sims").build("clustered_binary", n_subjects=8, n_trials=4, binomial_size=5)
    frames = dgp.generate_chunk([np.random.default_rng(s) for s in range(4)])
    estimator = estimators.build("gee_logit_exch", formula="cbind(successes, failures) ~ X")
    for frame, result in zip(frames, estimator.fit_batch(frames)):
        single = estimator.fit(frame)
        assert result.status == estimators.Status.ok
        np.testing.assert_array_equal(result.estimate, single.estimate)
        np.testing.assert_array_equal(result.std_error, single.std_error)
