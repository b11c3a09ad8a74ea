"""Ordinary least squares with iid, heteroskedasticity-consistent or cluster-robust variances.

Reference distributions: iid and HC0-HC3 use t(n - p) (as ``lmtest::coeftest``); CR0, CR1 and
CR3 use t(G - 1) (Cameron & Miller 2015); CR2 uses t with the Bell-McCaffrey Satterthwaite
degrees of freedom per coefficient (``clubSandwich::coef_test(test = "Satterthwaite")``).
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from estimators import sandwich
from estimators.base import SharedDesignEstimator
from estimators.design import Design, InputError
from estimators.params import require, require_one_of, require_probability
from estimators.result import FitResult, wald_inference_batch

VcovType = Literal["iid", "HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR2", "CR3"]
VCOV_TYPES = get_args(VcovType)


class OLS(SharedDesignEstimator):
    """OLS ``formula`` with the variance ``vcov``; ``cluster`` names the cluster column (CR only).

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``.
    vcov : one of ``iid``, ``HC0``..``HC3``, ``CR0``..``CR3`` (see :mod:`estimators.sandwich`).
    cluster : column with cluster labels; required for ``CR*``.
    alpha : 1 - confidence level of the intervals.
    """

    draws_from_rng = False  # closed-form: the runner builds it no generator

    def __init__(self, formula: str = "y ~ X", vcov: VcovType = "iid", cluster: str | None = None, alpha: float = 0.05):
        self.formula = formula
        self.vcov = vcov
        self.cluster = cluster
        self.alpha = alpha
        require_one_of(vcov, "vcov", VCOV_TYPES)
        require(not (vcov.startswith("CR") and not cluster), "cluster", f"vcov={vcov!r} needs the name of the cluster column")
        require_probability(alpha, "alpha")

    @property
    def design_cluster(self) -> str | None:
        return self.cluster if self.vcov.startswith("CR") else None

    def _fit_columns(self, design: Design, Y: np.ndarray) -> list[FitResult]:
        X = design.X
        n, p = X.shape
        M = design.derived("bread", lambda: sandwich.bread(X))
        beta = sandwich.columnwise(M, sandwich.columnwise(X.T, Y))  # (p, R)
        E = Y - sandwich.columnwise(X, beta)
        V, df = self._vcov_and_df(design, M, E)
        std_errors = np.sqrt(np.diagonal(V, axis1=1, axis2=2))  # (R, p)
        return wald_inference_batch(design.terms, beta.T, std_errors, df, self.alpha)

    def _vcov_and_df(self, design: Design, M: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        X = design.X
        n, p = X.shape
        if self.vcov == "iid":
            return sandwich.vcov_iid(M, E, n - p), float(n - p)
        if self.vcov.startswith("HC"):
            weighted_outer = design.derived(("hc_weighted_outer", self.vcov),
                                            lambda: sandwich.hc_weighted_outer(X, M, self.vcov))
            return sandwich.vcov_hc(X, M, E, self.vcov, weighted_outer), float(n - p)
        clusters, G, kind = design.clusters, design.n_clusters, self.vcov
        try:
            adjustments = design.derived(("cluster_adjustments", kind),
                                         lambda: sandwich.cluster_adjustments(X, M, clusters, G, kind))
        except sandwich.UndefinedAdjustment as error:
            raise InputError(f"cluster {self.cluster!r}: {error}") from None
        adjusted_X = None if adjustments is None else design.derived(
            ("adjusted_design", kind), lambda: sandwich.adjusted_design(X, clusters, adjustments))
        V = sandwich.vcov_cr(X, M, E, clusters, G, kind, adjusted_X, design.indicator)
        if kind == "CR2":
            return V, design.derived("cr2_satterthwaite_df",
                                     lambda: sandwich.cr2_satterthwaite_df(X, M, clusters, G, adjustments))
        return V, float(G - 1)
