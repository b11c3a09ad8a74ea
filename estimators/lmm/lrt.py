"""Likelihood-ratio tests of fixed effects: ML fits of the model with and without the term.

    LR_j = d_ML(model without column j) - d_ML(model),   p_j = P(chi^2_1 > LR_j)

(Pinheiro & Bates 2000, section 2.4.2; lme4's ``anova`` refits REML models by ML for the same
reason: REML criteria of models with different fixed effects are not comparable.)
Both fits keep the random-effects structure, and every replicate of a chunk is refitted in the
same batch.
"""
from __future__ import annotations

import numpy as np
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


def likelihood_ratio_tests(design: MixedDesign, Y: np.ndarray, full_deviance: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LR statistics and p-values (R, p) for dropping each fixed-effect column in turn, and a
    mask (R, p) of the tests whose two ML fits both converged."""
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
