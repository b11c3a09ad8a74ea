"""The GLMM estimator: bad input stops with one line naming the key or column, the
likelihood-ratio p-values equal glmer's anova(reduced, full), fit_batch (the batched path
of a fixed design) equals fit replicate by replicate, bit for bit, on every path of the engine."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from estimators.design import InputError
from estimators.glmm import GLMM, pirls
from estimators.params import InvalidParameter
from helpers import TESTS
from helpers.glmm_data import ClusteredOutcome, CrossedBinary

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


# Every path of the engine: the exact gradient with one term and with a dense coupling block,
# numerical gradients (probit, quadrature), the coupling summed over pairs of rows, Poisson.
BATCH_CASES = {
    "one term": (ClusteredOutcome(), "y ~ X + (1 + X | subject)", {}),
    "probit": (ClusteredOutcome(), "y ~ X + (1 + X | subject)", {"link": "probit"}),
    "nAGQ 5": (ClusteredOutcome(), "y ~ X + (1 | subject)", {"nAGQ": 5}),
    "crossed": (CrossedBinary(), "y ~ condition + (1 + condition | subject) + (1 | item)", {}),
    "crossed, pairs of rows": (CrossedBinary(), "y ~ condition + (1 + condition | subject) + (1 | item)", {}),
    "poisson": (ClusteredOutcome(family="poisson"), "y ~ X + (1 + X | subject)", {"family": "poisson"}),
}


@pytest.mark.parametrize("case", BATCH_CASES)
def test_fit_batch_is_fit_bit_for_bit(case, monkeypatch):
    dgp, formula, params = BATCH_CASES[case]
    if case == "crossed, pairs of rows":
        monkeypatch.setattr(pirls, "DENSE_COUPLING", 0)
    rng = np.random.default_rng(5)
    frames = [dgp.generate(rng) for _ in range(4)]
    frames = [frames[0].assign(y=frame.y) for frame in frames]
    estimator = GLMM(formula, **params)
    batch = estimator.fit_batch(frames)
    part = estimator.fit_batch(frames[1:3])
    for r, frame in enumerate(frames):
        single = estimator.fit(frame)
        for name in ("estimate", "std_error", "p_value", "ci_lower", "ci_upper"):
            np.testing.assert_array_equal(getattr(batch[r], name), getattr(single, name), err_msg=name)
        assert batch[r].status == single.status
        if 1 <= r < 3:
            np.testing.assert_array_equal(part[r - 1].estimate, single.estimate)


def test_fit_batch_of_cbind_responses_fits_one_by_one(binary):
    trials = binary.assign(k=binary.y * 2, f=(1 - binary.y) * 2)
    estimator = GLMM("cbind(k, f) ~ X + (1 + X | subject)")
    batch = estimator.fit_batch([trials, trials.assign(k=trials.f, f=trials.k)])
    np.testing.assert_array_equal(batch[1].estimate, estimator.fit(trials.assign(k=trials.f, f=trials.k)).estimate)
