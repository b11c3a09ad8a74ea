"""Cluster fixed effects by the within transformation, with CR1 cluster-robust standard errors.

Every column of the formula's model matrix except the intercept, and the outcome, is centred
at its cluster mean (x_gi - mean_g x): the within (demeaned) regression gives the same slopes
and residuals as OLS with one dummy per cluster (LSDV; Frisch-Waugh-Lovell). With demeaned
design X~ (n x k) and residuals e,

    V = c (X~'X~)^{-1} (sum_g X~_g' e_g e_g' X~_g) (X~'X~)^{-1},

which is also the slope block of the cluster sandwich of the LSDV fit (its dummies' scores
vanish). The small-sample factor c has two conventions (Cameron & Miller 2015, "A
practitioner's guide to cluster-robust inference", J. Human Resources 50:317):

- ``lsdv`` (default): c = G/(G-1) * (n-1)/(n-k-G), counting the G cluster intercepts as
  parameters: R ``sandwich::vcovCL(lm(y ~ x + factor(cluster)), cluster = ~cluster,
  type = "HC1")``, and Stata's ``areg``. This is what tests/reference_fe/ checks.
- ``nested``: c = G/(G-1) * (n-1)/(n-k-1), not counting fixed effects nested in the clusters
  (Stata's ``xtreg, fe vce(cluster)``); less conservative when clusters are small.

Inference uses t(G-1), as for CR1. A predictor that is constant within every cluster (a
between-cluster predictor) is removed by the demeaning and cannot be estimated: its row is
NaN and the fit's status is ``not_estimable``, while the other slopes are still reported.
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from estimators import sandwich
from estimators.base import SharedDesignEstimator
from estimators.design import Design
from estimators.params import require_one_of, require_probability
from estimators.result import FitResult, Status, wald_inference_batch

SmallSample = Literal["lsdv", "nested"]
SMALL_SAMPLE = get_args(SmallSample)

# A demeaned column whose norm is below this share of its norm around the grand mean holds
# nothing but rounding: the predictor is (numerically) constant within clusters.
WITHIN_TOLERANCE = 1e-10


def within(values: np.ndarray, clusters: np.ndarray, n_clusters: int, indicator=None) -> np.ndarray:
    """Each row minus its cluster's mean (the within transformation), column by column.
    ``indicator``: :func:`sandwich.cluster_indicator` of the clusters, built when not given."""
    if indicator is None:
        indicator = sandwich.cluster_indicator(clusters, n_clusters)
    counts = np.bincount(clusters, minlength=n_clusters).astype(float)
    flat = values.reshape(len(values), -1)
    means = np.asarray(indicator @ flat) / counts[:, None]
    return (flat - means[clusters]).reshape(values.shape)


def between_cluster_columns(X: np.ndarray, X_within: np.ndarray) -> np.ndarray:
    """Mask of columns the within transformation annihilates (constant within every cluster)."""
    spread = np.linalg.norm(X - X.mean(axis=0), axis=0)
    return np.linalg.norm(X_within, axis=0) <= WITHIN_TOLERANCE * np.maximum(spread, 1.0)


def within_design(design: Design) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Slope names, the demeaned slope columns and the mask of between-cluster columns."""
    slopes = [j for j, term in enumerate(design.terms) if term != "Intercept"]
    X = design.X[:, slopes]
    X_within = within(X, design.clusters, design.n_clusters, design.indicator)
    return tuple(design.terms[j] for j in slopes), X_within, between_cluster_columns(X, X_within)


def cr1_fixed_effects_factor(n: int, k: int, n_clusters: int, convention: SmallSample) -> float:
    """G/(G-1) (n-1)/(n-k-G) (``lsdv``) or G/(G-1) (n-1)/(n-k-1) (``nested``); k slopes: the
    CR1 factor with the fixed effects counted as G parameters or as one."""
    return sandwich.cr1_factor(n, k + (n_clusters if convention == "lsdv" else 1), n_clusters)


class FixedEffects(SharedDesignEstimator):
    """Cluster fixed-effects regression of ``formula`` by the within transformation, CR1 SEs.

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``; its intercept is absorbed by the fixed effects.
    cluster : column with cluster labels (the fixed effects and the clustering).
    small_sample : ``lsdv`` or ``nested`` (see the module docstring).
    alpha : 1 - confidence level of the intervals.
    """

    draws_from_rng = False  # closed-form: the runner builds it no generator

    def __init__(self, formula: str = "y ~ X", cluster: str = "subject", small_sample: SmallSample = "lsdv",
                 alpha: float = 0.05):
        self.formula = formula
        self.cluster = cluster
        self.small_sample = small_sample
        self.alpha = alpha
        require_one_of(small_sample, "small_sample", SMALL_SAMPLE)
        require_probability(alpha, "alpha")

    def _fit_columns(self, design: Design, Y: np.ndarray) -> list[FitResult]:
        terms, X_within, dropped = design.derived("fixed_effects_within", lambda: within_design(design))
        clusters, G = design.clusters, design.n_clusters
        kept = ~dropped
        R = Y.shape[1]
        estimate = np.full((R, len(terms)), np.nan)
        std_error = np.full((R, len(terms)), np.nan)
        if kept.any():
            Xk = design.derived("fixed_effects_kept", lambda: X_within[:, kept])
            n, k = Xk.shape
            M = design.derived("fixed_effects_bread", lambda: sandwich.bread(Xk))
            indicator = design.indicator
            Y_within = within(Y, clusters, G, indicator)
            beta = sandwich.columnwise(M, sandwich.columnwise(Xk.T, Y_within))
            E = Y_within - sandwich.columnwise(Xk, beta)
            V = sandwich.vcov_cr(Xk, M, E, clusters, G, "CR0", indicator=indicator)
            V *= cr1_fixed_effects_factor(n, k, G, self.small_sample)
            estimate[:, kept] = beta.T
            std_error[:, kept] = np.sqrt(np.diagonal(V, axis1=1, axis2=2))
        status, message = Status.ok, ""
        if dropped.any():
            names = ", ".join(t for t, d in zip(terms, dropped) if d)
            status = Status.not_estimable
            message = f"{names}: constant within each cluster of {self.cluster!r}, so not estimable with cluster fixed effects"
        df = np.where(kept, float(G - 1), np.nan)
        return wald_inference_batch(terms, estimate, std_error, df, self.alpha, status, message)
