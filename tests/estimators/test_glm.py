"""Logistic and Poisson regression against R on the committed fixtures
(tests/reference_glm/make_references.R): vcov(glm), sandwich::vcovHC (HC0-HC3),
sandwich::vcovCL (CR0: type HC0 without cadjust; CR1: its glm default; CR1S: type HC1) to
1e-8 relative, and clubSandwich::coef_test(vcov = "CR2") with Satterthwaite df; then the
input checks and the batched path; then the same for the two-column response cbind(k, n - k)
on lme4's cbpp."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators.design import InputError
from estimators.glm import GLM
from estimators.params import InvalidParameter
from helpers import TESTS
from helpers.trials import BAD_TRIALS, CBPP, CBPP_FORMULA, bernoulli_rows

REFERENCE = TESTS / "reference_glm"
GLM_R = pd.read_csv(REFERENCE / "glm.csv")
DATA = {name: pd.read_csv(REFERENCE / "data" / f"{name}.csv") for name in ("binary_clustered", "counts_clustered")}
CASES = {"binary_logit": ("binary_clustered", "binomial", "logit"), "binary_probit": ("binary_clustered", "binomial", "probit"),
         "counts_log": ("counts_clustered", "poisson", "log")}
RTOL = 1e-8


@pytest.mark.parametrize("model", ["iid", "HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR1S", "CR2"])
@pytest.mark.parametrize("case", CASES)
def test_glm_matches_r(case, model):
    dataset, family, link = CASES[case]
    expected = GLM_R[(GLM_R.dataset == case) & (GLM_R.model == model)]
    result = GLM("y ~ X + z", family, link, vcov=model, cluster="subject", tol=1e-13).fit(DATA[dataset])
    assert list(result.terms) == list(expected.term)
    np.testing.assert_allclose(result.estimate, expected.estimate, rtol=RTOL)
    np.testing.assert_allclose(result.std_error, expected.std_error, rtol=RTOL)
    # clubSandwich's Satterthwaite df are computed at its own fixed point: 1e-6
    np.testing.assert_allclose(result.df, expected.df.astype(float), rtol=1e-6 if model == "CR2" else 0)


def test_cr2_adjustment_is_the_ols_one_when_the_variance_is_constant():
    """With V(mu) constant (a logit model whose fitted probabilities are all 1/2) clubSandwich's
    glm CR2 reduces to the OLS CR2 on the weighted design."""
    data = pd.DataFrame({"y": [0, 1, 1, 0, 1, 0] * 4, "X": np.repeat([0.0, 1.0], 12), "subject": np.tile(np.arange(6), 4)})
    glm = GLM("y ~ X", vcov="CR2", cluster="subject").fit(data)
    ols = estimators.build("ols_cr2").fit(data)
    # w = V = 1/4: B = 4 (X'X)^-1, X~ = X / 2, r = 2 e, so every SE is 4 times the OLS one
    np.testing.assert_allclose(glm.std_error, 4.0 * ols.std_error, rtol=1e-10)
    np.testing.assert_allclose(glm.df, ols.df, rtol=1e-10)


@pytest.mark.parametrize("family, link, values, problem", [
    ("binomial", "logit", [0, 1, 2], "values other than 0 and 1"),
    ("binomial", "probit", [0.0, 0.5, 1.0], "values other than 0 and 1"),
    ("poisson", "log", [0, -1, 3], "negative or non-integer"),
    ("poisson", "log", [0, 1.5, 3], "negative or non-integer"),
])
def test_a_response_outside_the_family_is_refused_naming_the_column(family, link, values, problem):
    data = pd.DataFrame({"y": np.resize(values, 24), "X": np.tile([0, 1], 12), "subject": np.repeat(np.arange(6), 4)})
    with pytest.raises(InputError, match=f"^column 'y' has {problem}"):
        GLM(family=family, link=link).fit(data)


@pytest.mark.parametrize("params, key", [({"family": "gamma"}, "family"), ({"link": "log"}, "link"),
                                         ({"family": "poisson", "link": "logit"}, "link"),
                                         ({"vcov": "CR3", "cluster": "subject"}, "vcov"), ({"vcov": "CR1"}, "cluster")])
def test_unknown_family_link_or_vcov_names_the_key(params, key):
    with pytest.raises(InvalidParameter, match=f"^{key}: "):
        GLM(**params)


def test_separation_is_flagged_not_converged():
    data = pd.DataFrame({"y": np.tile([0, 0, 1, 1], 6), "X": np.tile([0, 0, 1, 1], 6), "subject": np.repeat(np.arange(6), 4)})
    result = GLM().fit(data)
    assert result.status == estimators.Status.not_converged and "separation" in result.message


@pytest.mark.parametrize("preset, dgp", [("logit_glm_cr2", "clustered_binary"), ("poisson_glm_cr1", "clustered_counts")])
def test_batch_equals_single_fits(preset, dgp):
    frames = sims.build(dgp, n_subjects=10, n_trials=5).generate_chunk([np.random.default_rng(s) for s in range(5)])
    estimator = estimators.build(preset)
    batch = estimator.fit_batch(frames)
    for frame, result in zip(frames, batch):
        single = estimator.fit(frame)
        np.testing.assert_allclose(result.estimate, single.estimate, rtol=1e-12)
        np.testing.assert_allclose(result.std_error, single.std_error, rtol=1e-12)


def test_link_defaults_to_the_canonical_one():
    for dataset, family, link in (("counts_clustered", "poisson", "log"), ("binary_clustered", "binomial", "logit")):
        default, explicit = (GLM("y ~ X + z", family, *given).fit(DATA[dataset]) for given in ((), (link,)))
        np.testing.assert_array_equal(default.estimate, explicit.estimate)
        np.testing.assert_array_equal(default.std_error, explicit.std_error)


# --- the two-column binomial response cbind(successes, failures) --------------------------------



@pytest.mark.parametrize("model", ["iid", "HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR1S", "CR2"])
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_cbind_glm_matches_r(link, model):
    """glm(cbind(incidence, size - incidence) ~ period, binomial) on lme4's cbpp, clustered by
    herd, with every sandwich of the R script (prior weights = trials)."""
    expected = GLM_R[(GLM_R.dataset == f"cbpp_{link}") & (GLM_R.model == model)]
    result = GLM(CBPP_FORMULA, "binomial", link, vcov=model, cluster="herd", tol=1e-13).fit(CBPP)
    assert result.status == estimators.Status.ok and len(result.terms) == len(expected) == 4
    np.testing.assert_allclose(result.estimate, expected.estimate, rtol=RTOL)
    np.testing.assert_allclose(result.std_error, expected.std_error, rtol=RTOL)
    np.testing.assert_allclose(result.df, expected.df.astype(float), rtol=1e-6 if model == "CR2" else 0)


@pytest.mark.parametrize("model", ["iid", "HC2", "CR1S", "CR2"])
def test_cbind_of_single_trials_is_the_binary_fit(model):
    data = DATA["binary_clustered"]
    binary = GLM("y ~ X + z", vcov=model, cluster="subject").fit(data)
    trials = GLM("cbind(y, 1 - y) ~ X + z", vcov=model, cluster="subject").fit(data)
    assert trials.terms == binary.terms
    for column in ("estimate", "std_error", "df"):
        np.testing.assert_allclose(getattr(trials, column), getattr(binary, column), rtol=1e-12)


@pytest.mark.parametrize("model", ["iid", "CR0", "CR1"])
def test_cbind_equals_its_trials_as_bernoulli_rows(model):
    """Coefficients, model-based and cluster sandwiches depend on the trials only through their
    sums per row and per cluster (HC and CR1S count rows, CR2 adjusts per row: they differ)."""
    grouped = GLM(CBPP_FORMULA, vcov=model, cluster="herd", tol=1e-13).fit(CBPP)
    expanded = GLM("y ~ C(period)", vcov=model, cluster="herd", tol=1e-13).fit(bernoulli_rows(CBPP))
    np.testing.assert_allclose(grouped.estimate, expanded.estimate, rtol=1e-10)
    np.testing.assert_allclose(grouped.std_error, expanded.std_error, rtol=1e-10)


@pytest.mark.parametrize("change, message", BAD_TRIALS)
def test_bad_trials_are_refused_in_one_line_naming_the_column(change, message):
    with pytest.raises(InputError, match=message) as error:
        GLM(CBPP_FORMULA, vcov="CR1", cluster="herd").fit(change(CBPP))
    assert "\n" not in str(error.value)


def test_cbind_for_poisson_is_refused_when_built():
    with pytest.raises(InvalidParameter, match=r"^formula: outcome 'cbind\(k, f\)': cbind\(successes, failures\) is a "
                                               "binomial response, not poisson$"):
        GLM("cbind(k, f) ~ X", "poisson")


def test_cbind_batch_of_frames_equals_single_fits():
    """A k-of-n DGP's frames are fitted one by one (the two columns change between replicates)."""
    dgp = sims.build("clustered_binary", n_subjects=8, n_trials=4, binomial_size=5)
    frames = dgp.generate_chunk([np.random.default_rng(s) for s in range(4)])
    estimator = estimators.build("logit_glm_cr2", formula="cbind(successes, failures) ~ X")
    for frame, result in zip(frames, estimator.fit_batch(frames)):
        single = estimator.fit(frame)
        np.testing.assert_array_equal(result.estimate, single.estimate)
        np.testing.assert_array_equal(result.std_error, single.std_error)
        assert result.status == estimators.Status.ok


def test_the_cbind_example_of_docs_binary_runs_as_printed(monkeypatch, capsys):
    text = (TESTS.parent / "docs" / "binary.md").read_text()
    example = re.search(r"^```python\n(.*?cbind\(incidence.*?)^```", text, flags=re.MULTILINE | re.DOTALL).group(1)
    monkeypatch.chdir(TESTS.parent)
    namespace: dict = {}
    exec(compile(example, "docs/binary.md", "exec"), namespace)
    glm, gee = namespace["glm"], namespace["gee"]
    # the values its comments print, to their digits
    assert (round(glm.estimate[0], 3), round(glm.std_error[0], 3), round(glm.df[0], 1)) == (-1.269, 0.287, 12.5)
    assert (round(gee.estimate[0], 3), round(gee.std_error[0], 3)) == (-1.270, 0.276)
    assert "Intercept" in capsys.readouterr().out


def test_cbind_on_frames_of_one_outcome_column_names_the_missing_column():
    """A fixed-design chunk (one outcome column, SharedDesignFrames) has no successes column."""
    frames = sims.build("clustered_binary", n_subjects=6, n_trials=4).generate_chunk([np.random.default_rng(s) for s in range(3)])
    with pytest.raises(InputError, match=r"^response 'successes' is not a column of the data .*\(columns: y, X, subject\)$"):
        GLM("cbind(successes, failures) ~ X").fit_batch(frames)
