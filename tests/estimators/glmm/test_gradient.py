"""The exact gradient of the Laplace deviance (estimators.glmm.gradient) against central
differences of the deviance itself, for logistic and Poisson models with one and two random
terms, at points away from the optimum (where every part of the gradient counts)."""
from __future__ import annotations

import numpy as np
import pytest

from estimators.glmm import GLMM
from estimators.glmm.gradient import has_exact_gradient, laplace_gradient
from estimators.glmm.pirls import Laplace
from helpers.glmm_data import ClusteredOutcome, CrossedBinary

CASES = {
    "logit, correlated intercept and slope": (ClusteredOutcome(), "y ~ X + (1 + X | subject)", "binomial"),
    "poisson, correlated intercept and slope": (ClusteredOutcome(family="poisson"), "y ~ X + (1 + X | subject)",
                                                "poisson"),
    "logit, crossed with slopes": (CrossedBinary(), "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
                                   "binomial"),
}
STEP = 1e-5


@pytest.mark.parametrize("case", CASES)
def test_gradient_equals_central_differences(case):
    dgp, formula, family = CASES[case]
    rng = np.random.default_rng(11)
    frames = [dgp.generate(rng) for _ in range(3)]
    model, _, _ = GLMM(formula, family=family).model(frames[0])
    Y = np.column_stack([frame.y.to_numpy() for frame in frames])
    laplace = Laplace(model.design, model.family, model.layout.factors, Y, np.ones_like(Y))
    assert has_exact_gradient(laplace, 1)
    n_theta, k = model.layout.n_theta, model.layout.n_theta + model.design.p
    x = model.layout.start() * 0.7 + rng.uniform(-0.2, 0.2, (3, n_theta))
    x = np.hstack([x, rng.uniform(-0.5, 0.5, (3, model.design.p))])
    rows = np.arange(3)
    first = model.design.blocks[0]
    zeros = np.zeros((3, first.n_levels, first.k)), np.zeros((3, laplace.q_r))
    f, u1, u_r, converged = laplace.deviance(x[:, :n_theta], x[:, n_theta:], rows, *zeros)
    assert converged.all()
    f_exact, gradient = laplace_gradient(laplace, model.layout, x[:, :n_theta], x[:, n_theta:], rows, u1, u_r)
    np.testing.assert_array_equal(f_exact, f)
    numeric = np.empty_like(gradient)
    for j in range(k):
        step = STEP * np.eye(k)[j]
        up = laplace.deviance((x + step)[:, :n_theta], (x + step)[:, n_theta:], rows, u1, u_r)[0]
        down = laplace.deviance((x - step)[:, :n_theta], (x - step)[:, n_theta:], rows, u1, u_r)[0]
        numeric[:, j] = (up - down) / (2 * STEP)
    # Central differences err by about STEP^2 |f'''| + 1e-16 |f| / STEP: ~1e-7 here.
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


def test_probit_and_quadrature_are_differentiated_numerically():
    frame = ClusteredOutcome().generate(np.random.default_rng(2))
    for params in ({"link": "probit"}, {"formula": "y ~ X + (1 | subject)", "nAGQ": 5}):
        estimator = GLMM(**{"formula": "y ~ X + (1 + X | subject)", **params})
        model, y, m = estimator.model(frame)
        laplace = Laplace(model.design, model.family, model.layout.factors, y[:, None], m[:, None])
        assert not has_exact_gradient(laplace, model.n_agq)
