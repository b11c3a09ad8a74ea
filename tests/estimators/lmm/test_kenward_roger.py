"""The Kenward-Roger adjustment against a literal n x n transcription of pbkrtest's
``vcovAdj16_internal``, and as an estimator option (R comparisons: test_vs_pbkrtest.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators.lmm import LMM, MixedModel
from estimators.lmm.crossprod import random_block_matrix
from estimators.lmm.design import build_mixed_design
from estimators.lmm.kenward_roger import kenward_roger
from estimators.params import InvalidParameter
from estimators.presets import ConfigError
from helpers import REFERENCE, TESTS

CASES = [
    (REFERENCE / "data" / "crossed_within.csv", "y ~ condition + (1 + condition | subject) + (1 + condition | item)"),
    (REFERENCE / "data" / "unbalanced.csv", "y ~ x + z + (1 + x | cluster)"),
    (TESTS / "reference_lmm" / "data" / "nested.csv", "y ~ x + (1 | school/class)"),
    (TESTS / "reference_lmm" / "data" / "factor3.csv", "y ~ condition + (1 | subject)"),
]


def dense_vcov_adjusted(design, layout, theta, sigma):
    """pbkrtest's vcovAdj16_internal with V, its derivatives G_i and V^-1 as n x n matrices."""
    n, X = design.n, design.X
    G, V = [], sigma**2 * np.eye(n)
    for block, T in zip(design.blocks, layout.factors(theta)):
        Z = random_block_matrix(block).toarray()
        covariance = sigma**2 * T @ T.T
        for a, c in zip(*layout.lower_positions(block.k)):
            E = np.zeros((block.k, block.k))
            E[a, c] = E[c, a] = 1.0
            G.append(Z @ np.kron(E, np.eye(block.n_levels)) @ Z.T)  # component-major Z
            V = V + covariance[a, c] * G[-1]
    G.append(np.eye(n))
    Vinv = np.linalg.inv(V)
    Phi = np.linalg.inv(X.T @ Vinv @ X)
    H = [g @ Vinv for g in G]
    O = [h @ X for h in H]
    P = [-(o.T @ Vinv @ X) for o in O]
    Q = [[O[r].T @ Vinv @ O[s] for s in range(len(G))] for r in range(len(G))]
    information = np.array([[np.sum(H[i].T * H[j]) - 2 * np.sum(Phi * Q[i][j]) + np.sum((Phi @ P[i]) * (P[j] @ Phi))
                             for j in range(len(G))] for i in range(len(G))])
    W = 2 * np.linalg.inv(information)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(len(G)) for j in range(len(G)))
    return Phi, Phi + 2 * Phi @ U @ Phi, W


@pytest.mark.parametrize("path, formula", CASES, ids=[p.stem for p, _ in CASES])
def test_woodbury_form_equals_the_dense_computation(path, formula):
    design, y = build_mixed_design(formula, pd.read_csv(path))
    model = MixedModel.from_design(design)
    fit = model.fit(model.outcomes(y[:, None]))[0]
    kr = kenward_roger(model, fit.theta[None], np.array([fit.sigma]))[0]
    Phi, adjusted, W = dense_vcov_adjusted(design, model.layout, fit.theta, fit.sigma)
    np.testing.assert_allclose(kr.vcov, fit.vcov, rtol=1e-10)
    np.testing.assert_allclose(kr.vcov, Phi, rtol=1e-10)
    np.testing.assert_allclose(kr.vcov_adjusted, adjusted, rtol=1e-10, atol=1e-12 * np.abs(adjusted).max())
    np.testing.assert_allclose(kr.W, W, rtol=1e-8, atol=1e-10 * np.abs(W).max())


def test_ml_is_refused_with_the_parameter_name():
    with pytest.raises(InvalidParameter, match=r"^inference: kenward_roger needs reml: true$"):
        LMM("y ~ X + (1 | subject)", reml=False, inference="kenward_roger")
    for preset in ("lmm", "lmm_select_lrt"):
        with pytest.raises(ConfigError, match=rf"^estimator\.{preset}\.inference: kenward_roger needs reml: true"):
            estimators.build(preset, reml=False, inference="kenward_roger")


def test_batch_and_single_fits_agree_bitwise():
    """A chunk's KR numbers are each replicate's own (every adjustment is computed per fit)."""
    dgp = sims.build("clustered", slope=0.3)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(5)]
    estimator = LMM("y ~ X + (1 + X | subject)", inference="kenward_roger")
    batch = estimator.fit_batch(frames)
    for frame, result in zip(frames, batch):
        single = estimator.fit(frame)
        for column in ("std_error", "df", "p_value", "ci_lower"):
            np.testing.assert_array_equal(getattr(result, column), getattr(single, column))
    # Balanced, within-subject slope: the df of the slope are subjects - 1, as the exact test.
    assert all(r.df[1] == pytest.approx(frames[0].subject.nunique() - 1, rel=1e-8) for r in batch)
