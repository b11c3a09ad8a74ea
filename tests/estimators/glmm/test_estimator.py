"""The GLMM estimator: bad input stops with one line naming the key or column, the
likelihood-ratio p-values equal glmer's anova(reduced, full), fit_outcomes (the batched path
of a fixed design) equals fit column by column to 1e-8."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from estimators.design import InputError
from estimators.glmm import GLMM
from estimators.params import InvalidParameter
from helpers import TESTS
from helpers.glmm_data import ClusteredOutcome

REFERENCE = TESTS / "reference_glmm"


@pytest.fixture(scope="module")
def binary() -> pd.DataFrame:
    return ClusteredOutcome().generate(np.random.default_rng(3))


@pytest.mark.parametrize("params, key", [
    ({"family": "gaussian"}, "family"),
    ({"family": "binomial", "link": "log"}, "link"),
    ({"family": "poisson", "link": "logit"}, "link"),
    ({"formula": "y ~ X"}, "formula"),
    ({"formula": "y ~ X + (1 | subject) + (1 | item)", "nAGQ": 5}, "nAGQ"),
    ({"formula": "y ~ X + (1 + X | subject)", "nAGQ": 5}, "nAGQ"),
    ({"nAGQ": 0}, "nAGQ"),
    ({"inference": "satterthwaite"}, "inference"),
    ({"formula": "cbind(s, f) ~ X + (1 | subject)", "family": "poisson"}, "formula"),
])
def test_bad_parameters_name_their_key(params, key):
    with pytest.raises(InvalidParameter) as error:
        GLMM(**params)
    assert str(error.value).startswith(key) and "\n" not in str(error.value)


@pytest.mark.parametrize("change, formula, family, column", [
    (lambda d: d.assign(y=d.y * 2), "y ~ X + (1 | subject)", "binomial", "y"),
    (lambda d: d.assign(y=d.y - 1), "y ~ X + (1 | subject)", "poisson", "y"),
    (lambda d: d.assign(y=d.y + 0.5), "y ~ X + (1 | subject)", "poisson", "y"),
    (lambda d: d.assign(k=d.y * 3, f=d.y - 1), "cbind(k, f) ~ X + (1 | subject)", "binomial", "f"),
    (lambda d: d.assign(k=d.y + 0.5, f=1.0), "cbind(k, f) ~ X + (1 | subject)", "binomial", "k"),
    (lambda d: d.drop(columns="y"), "y ~ X + (1 | subject)", "binomial", "y"),
])
def test_bad_responses_name_their_column(binary, change, formula, family, column):
    with pytest.raises(InputError) as error:
        GLMM(formula, family=family).fit(change(binary))
    assert repr(column) in str(error.value) and "\n" not in str(error.value)


def test_cbind_of_single_trials_is_the_binary_fit(binary):
    a = GLMM("y ~ X + (1 | subject)").fit_model(binary)
    b = GLMM("cbind(y, 1 - y) ~ X + (1 | subject)").fit_model(binary)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-7)
    assert b.minus_two_loglik == pytest.approx(a.minus_two_loglik, rel=1e-10)


def test_lrt_matches_glmer_anova():
    data = pd.read_csv(REFERENCE / "data" / "crossed_binary.csv")
    ref = json.loads((REFERENCE / "glmer_crossed_slope_lrt.json").read_text())
    result = GLMM("y ~ condition + (1 + condition | subject) + (1 | item)", inference="lrt").fit(data)
    np.testing.assert_allclose(result.p_value, [ref["Intercept"], ref["condition"]], rtol=1e-4)


def test_fit_outcomes_is_fit_per_column(binary):
    rng = np.random.default_rng(5)
    Y = np.column_stack([ClusteredOutcome().generate(rng).y for _ in range(3)])
    estimator = GLMM("y ~ X + (1 + X | subject)")
    batch = estimator.fit_outcomes(binary, Y)
    for r in range(3):
        single = estimator.fit(binary.assign(y=Y[:, r]))
        np.testing.assert_allclose(batch[r].estimate, single.estimate, rtol=1e-8)
        np.testing.assert_allclose(batch[r].std_error, single.std_error, rtol=1e-7)
