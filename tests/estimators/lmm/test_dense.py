"""The dense single-factor evaluation (estimators/lmm/dense.py), the nested model's products
(``MixedModel.without_fixed``) and the warm start of a nested fit, against the blocked factor,
a rebuild and a fresh fit, on every design of the lme4 fixtures and on Barr et al.'s design."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sims
from estimators.lmm import MixedModel
from estimators.lmm.dense import dense_objective
from estimators.lmm.design import build_mixed_design
from helpers.lmm_references import reference_cases

CASES = [(path, formula, reml, float(rows.criterion.iloc[0])) for path, formula, reml, rows in reference_cases()]
IDS = [f"{path.stem}-{formula.split('~')[1].replace(' ', '')}-{'REML' if reml else 'ML'}" for path, formula, reml, _ in CASES]


def barr_frame(layout: str, seed: int) -> pd.DataFrame:
    dgp = sims.build("crossed", layout=layout, n_items=12, effect=0.0, random_parameters=True, max_missing_share=0.05)
    return dgp.generate(np.random.default_rng(seed))


BARR = "y ~ condition + (1 + condition | subject) + (1 + condition | item)"


@pytest.mark.parametrize("path, formula, reml, criterion", CASES, ids=IDS)
def test_dense_evaluation_and_fit_equal_the_blocked_ones(path, formula, reml, criterion):
    design, y = build_mixed_design(formula, pd.read_csv(path))
    model = MixedModel.from_design(design, reml)
    outcomes = model.outcomes(y[:, None])
    theta = model.layout.start() + 0.3 * np.random.default_rng(1).standard_normal((3, model.layout.n_theta))
    rows = np.zeros(3, dtype=int)
    blocked_value, blocked_gradient = model.objective(outcomes)(theta, rows)
    value, gradient = dense_objective(model.products, model.layout, outcomes, reml)(theta, rows)
    np.testing.assert_allclose(value, blocked_value, rtol=1e-12)
    scale = np.max(np.abs(blocked_gradient), axis=1, keepdims=True)
    assert np.all(np.abs(gradient - blocked_gradient) <= 1e-9 * scale)
    blocked, dense = model.fit(outcomes)[0], model.fit(outcomes, dense=True)[0]
    assert dense.criterion <= blocked.criterion + 1e-10 * abs(blocked.criterion)
    assert (dense.criterion - criterion) / abs(criterion) <= 1e-6  # lme4's, as test_vs_lme4.py
    assert dense.converged == blocked.converged and dense.singular == blocked.singular
    np.testing.assert_allclose(dense.beta, blocked.beta, rtol=1e-6, atol=1e-6 * np.max(blocked.std_errors))
    np.testing.assert_allclose(dense.std_errors, blocked.std_errors, rtol=1e-5)


def test_dense_gradient_matches_finite_differences():
    design, y = build_mixed_design(BARR, barr_frame("counterbalanced", 3))
    model = MixedModel.from_design(design, reml=False)
    objective = dense_objective(model.products, model.layout, model.outcomes(y[:, None]), False)
    theta = np.array([0.8, -0.3, 0.5, 0.6, 0.2, 0.4])
    _, gradient = objective(theta[None], np.array([0]))
    h = 1e-6
    numeric = [(objective((theta + h * e)[None], np.array([0]))[0][0] - objective((theta - h * e)[None], np.array([0]))[0][0]) / (2 * h)
               for e in np.eye(len(theta))]
    np.testing.assert_allclose(gradient[0], numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path, formula, reml", [case[:3] for case in CASES[:6]] + [(None, BARR, False)])
def test_products_without_a_fixed_effect_equal_a_rebuild(path, formula, reml):
    data = barr_frame("counterbalanced", 4) if path is None else pd.read_csv(path)
    design, y = build_mixed_design(formula, data)
    model = MixedModel.from_design(design, reml)
    for j in range(design.p):
        derived, rebuilt = model.without_fixed(j), MixedModel.from_design(design.without_fixed(j), reml)
        P, Q = derived.products, rebuilt.products
        assert derived.design.fixed_names == rebuilt.design.fixed_names and P.p == Q.p
        for name in ("B11", "BR1", "BRR"):
            assert np.array_equal(getattr(P, name), getattr(Q, name)), name
        assert np.array_equal(P.operators.X_pinv, Q.operators.X_pinv)
        assert (P.operators.Wt != Q.operators.Wt).nnz == 0
        a, b = derived.fit(derived.outcomes(y[:, None]))[0], rebuilt.fit(rebuilt.outcomes(y[:, None]))[0]
        assert a.criterion == b.criterion and np.array_equal(a.theta, b.theta) and np.array_equal(a.vcov, b.vcov)


@pytest.mark.parametrize("layout", ["between_items", "counterbalanced"])
def test_a_nested_fit_from_the_full_optimum_reaches_the_fresh_fits_criterion(layout):
    """The LRT's fit without the predictor, started at the full fit's optimum and curvature,
    ends at least as low as a fresh fit (to 1e-10 relative) in fewer evaluations."""
    formula = BARR if layout == "counterbalanced" else "y ~ condition + (1 + condition | subject) + (1 | item)"
    warm_evaluations = fresh_evaluations = 0
    for seed in range(5):
        design, y = build_mixed_design(formula, barr_frame(layout, seed))
        model = MixedModel.from_design(design, reml=False)
        full = model.fit(model.outcomes(y[:, None]), dense=True)[0]
        reduced = model.without_fixed(design.fixed_names.index("condition"))
        outcomes = reduced.outcomes(y[:, None])
        x, H = full.optimum
        warm = reduced.fit(outcomes, dense=True, start=(x[None], H[None]))[0]
        fresh = reduced.fit(outcomes, dense=True)[0]
        assert warm.criterion <= fresh.criterion + 1e-10 * abs(fresh.criterion)
        assert warm.converged == fresh.converged
        warm_evaluations += warm.evaluations
        fresh_evaluations += fresh.evaluations
    assert warm_evaluations < fresh_evaluations / 2
