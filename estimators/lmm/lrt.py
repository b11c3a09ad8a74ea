"""Likelihood-ratio tests of fixed effects: ML fits of the model with and without the term.

    LR_j = d_ML(model without column j) - d_ML(model),   p_j = P(chi^2_1 > LR_j)

and of a hypothesis L beta = 0 of rank q (a term's columns, several coefficients, a contrast):
the reduced model has the columns X N, N an orthonormal basis of the null space of L (the
columns of X that L does not name, when L selects columns), and LR ~ chi^2_q.

(Pinheiro & Bates 2000, section 2.4.2; lme4's ``anova`` refits REML models by ML for the same
reason: REML criteria of models with different fixed effects are not comparable.)
Both fits keep the random-effects structure, and every replicate of a chunk is refitted in the
same batch.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg as la
from scipy import special

from estimators.lmm.design import MixedDesign
from estimators.lmm.fit import MixedFit, MixedModel


def chi2_sf(x, df):
    """P(chi^2_df > x): ``scipy.stats.chi2.sf``'s numbers from the function it calls
    (``scipy.special.chdtrc``), without importing scipy.stats (a large share of a single fit's
    start-up time and memory); NaN for df < 1 as there."""
    return special.chdtrc(df, x) if df >= 1 else np.full(np.shape(x), np.nan)[()]


def deviances(design: MixedDesign, Y: np.ndarray) -> tuple[np.ndarray, list[MixedFit]]:
    """ML deviances (R,) of ``design`` for each column of Y, and the fits."""
    model = MixedModel.from_design(design, reml=False)
    fits = model.fit(model.outcomes(Y))
    return np.array([fit.criterion for fit in fits]), fits


def likelihood_ratio_tests(design: MixedDesign, Y: np.ndarray, full_deviance: np.ndarray | None = None,
                           converged_full: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LR statistics and p-values (R, p) for dropping each fixed-effect column in turn, and a
    mask (R, p) of the tests whose two ML fits both converged."""
    if converged_full is None:
        converged_full = np.ones(Y.shape[1], dtype=bool)
    if full_deviance is None:
        full_deviance, fits = deviances(design, Y)
        converged_full = np.array([fit.converged for fit in fits])
    statistics = np.empty((Y.shape[1], design.p))
    converged = np.empty((Y.shape[1], design.p), dtype=bool)
    for j in range(design.p):
        reduced, fits = deviances(design.without_fixed(j), Y)
        # The reduced model is nested, so a negative difference is optimiser noise.
        statistics[:, j] = np.maximum(reduced - full_deviance, 0.0)
        converged[:, j] = converged_full & np.array([fit.converged for fit in fits])
    return statistics, chi2_sf(statistics, 1), converged


def reduced_design(design: MixedDesign, L: np.ndarray) -> MixedDesign:
    """The design under L beta = 0: without the columns L selects when every row of L is a unit
    vector, else with the columns X N (N an orthonormal basis of the null space of L)."""
    L = np.atleast_2d(L)
    if np.all(np.count_nonzero(L, axis=1) == 1):
        drop = set(np.flatnonzero(L.any(axis=0)))
        keep = [j for j in range(design.p) if j not in drop]
        return dataclasses.replace(design, X=design.X[:, keep], fixed_names=tuple(design.fixed_names[j] for j in keep))
    N = la.null_space(L)
    return dataclasses.replace(design, X=design.X @ N, fixed_names=tuple(f"N{j}" for j in range(N.shape[1])))


def hypothesis_test(design: MixedDesign, Y: np.ndarray, L: np.ndarray, full_deviance: np.ndarray,
                    converged_full: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """LR statistics (R,) of L beta = 0 against the full ML deviances, q = rank(L), and a mask of
    the tests whose two ML fits converged."""
    reduced, fits = deviances(reduced_design(design, L), Y)
    converged = converged_full & np.array([fit.converged for fit in fits])
    return np.maximum(reduced - full_deviance, 0.0), int(np.linalg.matrix_rank(np.atleast_2d(L))), converged
