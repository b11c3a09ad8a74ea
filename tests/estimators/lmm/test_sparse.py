"""The sparse coupling path of the blocked Cholesky factor (estimators/lmm/sparse.py) against the
dense path and against lme4.

The path is chosen for large crossed designs only; here it is forced on every design of the lme4
fixtures (tests/reference/lmm.csv, tests/reference_lmm/lmm_extra.csv) and on synthetic crossed
and nested designs, and must give the dense path's numbers to rounding and lme4's to the
tolerances of test_vs_lme4.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from estimators.lmm import MixedModel, sparse
from estimators.lmm.crossprod import design_products
from estimators.lmm.design import build_mixed_design
from estimators.lmm.satterthwaite import satterthwaite_df
from helpers.lmm_references import reference_cases

CASES = reference_cases()
IDS = [f"{path.stem}-{formula.split('~')[1].replace(' ', '')}-{'REML' if reml else 'ML'}" for path, formula, reml, _ in CASES]


def models(formula: str, data: pd.DataFrame, reml: bool, monkeypatch) -> tuple[MixedModel, MixedModel, np.ndarray]:
    """The dense and the sparse model of one design, and the outcome."""
    design, y = build_mixed_design(formula, data)
    dense = MixedModel.from_design(design, reml)
    with monkeypatch.context() as patch:
        patch.setattr(sparse, "SPARSE_MIN_WORK", 0.0)
        patch.setattr(sparse, "SPARSE_MAX_DENSITY", 1.0)
        coupled = MixedModel.from_design(design, reml)
    assert dense.products.coupling is None and coupled.products.coupling is not None
    return dense, coupled, y


@pytest.mark.parametrize("path, formula, reml, ref", CASES, ids=IDS)
def test_sparse_path_reproduces_the_dense_path_and_lme4(path, formula, reml, ref, monkeypatch):
    dense, coupled, y = models(formula, pd.read_csv(path), reml, monkeypatch)
    fits = {}
    for name, model in (("dense", dense), ("sparse", coupled)):
        outcomes = model.outcomes(y[:, None])
        fit = model.fit(outcomes)[0]
        df = satterthwaite_df(model, outcomes, fit.theta[None], np.array([fit.sigma]))[0]
        fits[name] = fit, df
    (d, d_df), (s, s_df) = fits["dense"], fits["sparse"]
    assert s.criterion == pytest.approx(d.criterion, rel=1e-11)
    assert (s.criterion - ref.criterion[0]) / abs(ref.criterion[0]) <= 1e-6
    assert s.converged == d.converged and s.singular == d.singular == bool(ref.is_singular[0])
    np.testing.assert_allclose(s.theta, d.theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.beta, d.beta, rtol=1e-7, atol=1e-7 * np.max(d.std_errors))
    np.testing.assert_allclose(s.std_errors, d.std_errors, rtol=1e-6)
    se = ref.std_error.to_numpy()
    assert np.all(np.abs(s.beta - ref.estimate) <= 1e-4 * np.maximum(np.abs(ref.estimate), se))
    np.testing.assert_allclose(s.std_errors, se, rtol=1e-4)
    if not ref.df_satterthwaite.isna().all():
        np.testing.assert_allclose(s_df, ref.df_satterthwaite, rtol=0.01)
    np.testing.assert_allclose(s_df, d_df, rtol=1e-4)


def crossed(n_subjects: int, n_items: int, per_subject: int, seed: int) -> pd.DataFrame:
    """Each subject sees ``per_subject`` random items: a partly crossed design, sparse W'Z_1."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n_subjects), per_subject)
    item = np.concatenate([rng.choice(n_items, per_subject, replace=False) for _ in range(n_subjects)])
    x = rng.normal(size=subject.size)
    c = rng.choice([-0.5, 0.5], size=subject.size)
    y = (1 + rng.normal(0, 0.7, n_subjects)[subject] + rng.normal(0, 0.5, n_items)[item]
         + (0.3 + rng.normal(0, 0.3, n_items)[item]) * c + 0.4 * x + rng.normal(size=subject.size))
    return pd.DataFrame({"y": y, "subject": subject, "item": item, "x": x, "c": c, "block": item % 7})


FORMULAS = [
    "y ~ x + (1 | subject) + (1 | item)",
    "y ~ x + c + (1 + x | subject) + (1 + c | item)",
    "y ~ c + (1 | subject) + (1 + c || item) + (1 | block)",
    "y ~ c + (1 | subject) + (1 | block/item)",
]


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_factor_and_gradient_equal_the_dense_path(formula, reml, monkeypatch):
    dense, coupled, y = models(formula, crossed(60, 25, 8, seed=1), reml, monkeypatch)
    rng = np.random.default_rng(2)
    Y = np.column_stack([y, y + rng.normal(size=y.size)])
    theta = dense.layout.start() + 0.4 * rng.standard_normal((2, dense.layout.n_theta))
    rows = np.arange(2)
    F, G = dense.factorize(dense.outcomes(Y), theta, rows), coupled.factorize(coupled.outcomes(Y), theta, rows)
    np.testing.assert_allclose(G.r2, F.r2, rtol=1e-12)
    np.testing.assert_allclose(coupled.criterion(G), dense.criterion(F), rtol=1e-13)
    np.testing.assert_allclose(G.fixed_effects(), F.fixed_effects(), rtol=1e-10, atol=1e-12)
    for got, expected in zip(G.solution(), F.solution()):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(G.unscaled_fixed_covariance(), F.unscaled_fixed_covariance(), rtol=1e-10, atol=1e-15)
    for got, expected in zip(G.gradients(coupled.layout, reml), F.gradients(dense.layout, reml)):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_gradient_matches_finite_differences(monkeypatch):
    _, coupled, y = models("y ~ x + c + (1 + x | subject) + (1 + c | item) + (1 | block)", crossed(40, 20, 6, seed=3), True, monkeypatch)
    objective = coupled.objective(coupled.outcomes(y[:, None]))
    theta = coupled.layout.start() + 0.3 * np.random.default_rng(4).standard_normal(coupled.layout.n_theta)
    _, gradient = objective(theta[None], np.array([0]))
    h = 1e-6
    numeric = [(objective((theta + h * e)[None], np.array([0]))[0][0] - objective((theta - h * e)[None], np.array([0]))[0][0]) / (2 * h)
               for e in np.eye(len(theta))]
    np.testing.assert_allclose(gradient[0], numeric, rtol=1e-5, atol=1e-5)


def test_batch_results_do_not_depend_on_the_chunk(monkeypatch):
    dense, coupled, y = models("y ~ x + (1 | subject) + (1 + c | item)", crossed(50, 20, 6, seed=5), True, monkeypatch)
    rng = np.random.default_rng(6)
    Y = y[:, None] + rng.normal(size=(y.size, 3))
    together = coupled.fit(coupled.outcomes(Y))
    alone = [coupled.fit(coupled.outcomes(Y[:, [r]]))[0] for r in range(3)]
    for a, b in zip(together, alone):
        assert a.criterion == b.criterion and np.array_equal(a.theta, b.theta) and np.array_equal(a.beta, b.beta)
        assert np.array_equal(a.vcov, b.vcov)


def test_the_sparse_path_is_chosen_for_large_crossed_designs_only():
    small, _ = build_mixed_design("y ~ x + (1 | subject) + (1 | item)", crossed(30, 20, 20, seed=7))
    assert design_products(small).coupling is None
    large, _ = build_mixed_design("y ~ x + (1 | subject) + (1 | item)", crossed(1500, 400, 10, seed=7))
    products = design_products(large)
    assert products.coupling is not None and products.BR1 is None
    # A coupling block without many zeros stays dense, whatever its size.
    assert sparse.use_sparse(402, 1500, 95_000) and not sparse.use_sparse(402, 1500, 402 * 1500 // 2)
