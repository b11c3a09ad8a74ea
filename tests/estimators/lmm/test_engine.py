"""The mixed-model engine against closed forms and invariants (no R needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sims
from estimators.batch import stack_outcomes
from estimators.lmm import LMM, MixedModel
from estimators.lmm import estimator as estimator_module
from estimators.lmm import fit as fit_module
from estimators.lmm import levelwise as lw
from estimators.lmm.design import build_mixed_design
from estimators.lmm.theta import ThetaLayout
from helpers import REFERENCE

DATA = REFERENCE / "data"


def model_of(formula: str, data: pd.DataFrame, reml: bool = True):
    design, y = build_mixed_design(formula, data)
    model = MixedModel.from_design(design, reml)
    return model, model.outcomes(y[:, None])


@pytest.mark.parametrize("formula, dataset", [
    ("y ~ X + (1 + X | subject)", "seed_balanced"),
    ("y ~ condition + (1 + condition | subject) + (1 + condition | item)", "crossed_within"),
    ("y ~ condition + (1 + condition || subject) + (1 | item)", "crossed_between"),
])
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_matches_finite_differences(formula, dataset, reml):
    model, outcomes = model_of(formula, pd.read_csv(DATA / f"{dataset}.csv"), reml)
    objective = model.objective(outcomes)
    rng = np.random.default_rng(1)
    theta = model.layout.start() + 0.3 * rng.standard_normal(model.layout.n_theta)
    _, gradient = objective(theta[None], np.array([0]))
    h = 1e-6
    numeric = [(objective((theta + h * e)[None], np.array([0]))[0][0] - objective((theta - h * e)[None], np.array([0]))[0][0]) / (2 * h)
               for e in np.eye(len(theta))]
    np.testing.assert_allclose(gradient[0], numeric, rtol=1e-5, atol=1e-5)


def one_way(a: int, n: int, sd_between: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(a), n)
    y = 10 + rng.normal(0, sd_between, a)[group] + rng.normal(0, 1, a * n)
    return pd.DataFrame({"y": y, "g": group})


@pytest.mark.parametrize("reml", [True, False])
def test_balanced_one_way_equals_anova_estimators(reml):
    """Balanced y_ij = mu + b_i + e_ij: REML gives sigma^2 = MSW, sigma_b^2 = (MSB - MSW)/n;
    ML gives sigma_b^2 = ((a - 1)/a MSB - MSW)/n (Searle, Casella & McCulloch 1992, ch. 3-4)."""
    a, n = 12, 7
    data = one_way(a, n, 1.5, seed=3)
    means = data.groupby("g")["y"].mean().to_numpy()
    msb = n * np.sum((means - means.mean()) ** 2) / (a - 1)
    msw = np.sum((data["y"] - means[data["g"]]) ** 2) / (a * (n - 1))
    fit = LMM("y ~ 1 + (1 | g)", reml=reml).fit_model(data)
    between = (msb - msw) / n if reml else ((a - 1) / a * msb - msw) / n
    assert fit.sigma**2 == pytest.approx(msw, rel=1e-7)
    assert fit.components[0].sds[0] ** 2 == pytest.approx(between, rel=1e-6)
    assert fit.beta[0] == pytest.approx(data["y"].mean(), rel=1e-12)
    if reml:
        assert fit.std_errors[0] ** 2 == pytest.approx(msb / (a * n), rel=1e-6)


@pytest.mark.parametrize("seed", [2, 7])  # MSB/MSW = 0.46 and 0.994 (a flat criterion near 0)
def test_negative_anova_estimate_gives_a_singular_fit(seed):
    """MSB < MSW: the REML variance estimate is on the boundary, theta exactly 0, and the model
    collapses to OLS."""
    data = one_way(10, 5, 0.0, seed=seed)
    means = data.groupby("g")["y"].mean().to_numpy()
    msb = 5 * np.var(means, ddof=1)
    msw = np.sum((data["y"] - means[data["g"]]) ** 2) / (50 - 10)
    assert msb < msw
    fit = LMM("y ~ 1 + (1 | g)").fit_model(data)
    assert fit.singular and fit.converged and fit.theta[0] == 0.0
    assert fit.sigma**2 == pytest.approx(np.var(data["y"], ddof=1), rel=1e-9)


def test_affine_invariance():
    """y -> s y + X c moves beta to s beta + c and scales sigma by s; theta is unchanged."""
    data = pd.read_csv(DATA / "crossed_within.csv")
    formula = "y ~ condition + (1 + condition | subject) + (1 | item)"
    base = LMM(formula).fit_model(data)
    moved = LMM(formula).fit_model(data.assign(y=3.0 * data["y"] + 50.0 - 2.0 * data["condition"]))
    np.testing.assert_allclose(moved.beta, 3.0 * base.beta + [50.0, -2.0], rtol=1e-7)
    np.testing.assert_allclose(moved.theta, base.theta, rtol=1e-5, atol=1e-7)
    assert moved.sigma == pytest.approx(3.0 * base.sigma, rel=1e-6)


def test_criterion_even_in_column_signs():
    model, outcomes = model_of("y ~ X + (1 + X | subject)", pd.read_csv(DATA / "seed_balanced.csv"))
    theta = np.array([[2.0, -0.5, -0.7], [-2.0, 0.5, 0.7], [2.0, -0.5, 0.7]])
    values = model.criterion(model.factorize(outcomes, theta, np.zeros(3, dtype=int)))
    np.testing.assert_allclose(values, values[0], rtol=1e-13)
    np.testing.assert_array_equal(model.layout.rectify(theta), [[2.0, -0.5, 0.7]] * 3)


def test_theta_layout():
    layout = ThetaLayout((2, 1, 3))
    assert layout.n_theta == 3 + 1 + 6 and layout.offsets == (0, 3, 4)
    np.testing.assert_array_equal(layout.diagonal, [1, 0, 1, 1, 1, 0, 0, 1, 0, 1])
    T = layout.factors(np.arange(1.0, 11.0))
    np.testing.assert_array_equal(T[0], [[1, 0], [2, 3]])
    np.testing.assert_array_equal(T[2], [[5, 0, 0], [6, 8, 0], [7, 9, 10]])


def test_levelwise_algebra_matches_numpy():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 3, 3, 5))
    S = lw.matmul(A, lw.transpose(A)) + 3 * np.eye(3)[None, :, :, None]
    L = lw.cholesky(S)
    expected = np.linalg.cholesky(np.moveaxis(S, -1, 1))
    np.testing.assert_allclose(np.moveaxis(L, -1, 1), expected, rtol=1e-12)
    np.testing.assert_allclose(np.moveaxis(lw.lower_inverse(L), -1, 1), np.linalg.inv(expected), rtol=1e-10)
    v = rng.normal(size=(4, 3, 5))
    np.testing.assert_allclose(lw.matvec(A, v), np.einsum("bijl,bjl->bil", A, v), rtol=1e-12)
    np.testing.assert_allclose(lw.crossprod(A, A), np.einsum("bril,brjl->bijl", A, A), rtol=1e-12)


def _table(results):
    return np.array([np.concatenate([r.estimate, r.std_error, r.df, r.ci_lower, r.p_value, [r.status]]) for r in results])


@pytest.mark.parametrize("formula, inference", [
    ("y ~ X + (1 | subject)", "satterthwaite"),
    ("y ~ X + (1 + X | subject)", "lrt"),
])
def test_batch_results_do_not_depend_on_the_chunk(formula, inference):
    """A replicate's numbers are bitwise the same fitted alone, in a chunk, or in another chunk,
    so a study does not depend on runner.chunk_size."""
    dgp = sims.build("clustered", n_subjects=10)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(12)]
    estimator = LMM(formula, inference=inference)
    together = _table(estimator.fit_batch(frames))
    alone = _table([estimator.fit(frame) for frame in frames])
    chunked = _table(estimator.fit_batch(frames[:5]) + estimator.fit_batch(frames[5:]))
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, chunked)


def test_crossed_maximal_results_do_not_depend_on_the_chunk():
    """The same for two crossed terms (the later term's per-level products, LAPACK's triangular
    inverse of the dense block)."""
    dgp = sims.build("crossed", n_subjects=12, n_items=8)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(7)]
    estimator = LMM("y ~ condition + (1 + condition | subject) + (1 + condition | item)", inference="satterthwaite")
    together = _table(estimator.fit_batch(frames))
    np.testing.assert_array_equal(together, _table([estimator.fit(frame) for frame in frames]))
    np.testing.assert_array_equal(together, _table(estimator.fit_batch(frames[:3]) + estimator.fit_batch(frames[3:])))


def test_a_chunk_is_fitted_in_batches_of_the_models_batch_size(monkeypatch):
    """A chunk longer than a batch is cut into batches (their arrays stay in cache), with the
    numbers of one batch."""
    dgp = sims.build("clustered", n_subjects=10)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(11)]
    estimator = LMM("y ~ X + (1 + X | subject)", inference="satterthwaite")
    whole = _table(estimator.fit_batch(frames))
    monkeypatch.setattr(fit_module, "MAX_BATCH", 4)
    sizes = []
    original = estimator_module.fit_and_infer
    monkeypatch.setattr(estimator_module, "fit_and_infer", lambda model, Y, *args: sizes.append(Y.shape[1]) or original(model, Y, *args))
    np.testing.assert_array_equal(_table(estimator.fit_batch(frames)), whole)
    assert sizes == [4, 4, 3]


def test_stacking_refuses_different_designs():
    dgp = sims.build("clustered", n_subjects=6)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(3)]
    assert stack_outcomes("y ~ X + (1 | subject)", frames) is not None
    frames[2] = frames[2].assign(X=frames[2]["X"].to_numpy()[::-1])
    assert stack_outcomes("y ~ X + (1 | subject)", frames) is None
    estimator = LMM("y ~ X + (1 | subject)", inference="wald_z")
    np.testing.assert_array_equal(_table(estimator.fit_batch(frames)), _table([estimator.fit(f) for f in frames]))


def test_intercept_only_fixed_part_and_lrt_of_the_intercept():
    data = pd.read_csv(DATA / "seed_balanced.csv")
    result = LMM("y ~ 1 + (1 | subject)", reml=False, inference="lrt").fit(data)
    assert result.terms == ("Intercept",)
    # lme4: anova(lmer(y ~ 0 + (1|subject)), lmer(y ~ 1 + (1|subject))) gives Chisq 156.19
    assert result.p_value[0] < 1e-30
