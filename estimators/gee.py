"""Generalised estimating equations for a gaussian outcome with identity link (Liang & Zeger
1986, Biometrika 73:13), with independence or exchangeable working correlation, fitted as
R's ``geepack::geeglm`` does and vectorised over replicates that share a design.

Working covariance of cluster g: phi R_g(a), R_g = (1 - a) I + a 11'. Its inverse is
    R_g^{-1} = (I - c_g 11') / (1 - a),    c_g = a / (1 + (n_g - 1) a),
so with A(a) = sum_g X_g'(I - c_g 11')X_g the estimating equations give
    beta(a) = A(a)^{-1} sum_g X_g'(I - c_g 11') y_g       (generalised least squares).
Moment estimators as geepack (divisor n, no correction for p):
    phi = sum_i e_i^2 / n,    a = sum_g sum_{j<k} e_gj e_gk / (phi sum_g n_g (n_g - 1)/2).
The iteration is geepack's (``gee_est`` in its src/gee2.cc): from beta = OLS, a = 0 and
phi = mean(e^2), repeat {beta <- beta(a); phi <- phi(beta); a <- a(beta, phi)} until the largest
absolute change of beta, phi and a is at most ``tol`` (geepack's epsilon, default 1e-4), at most
``max_iter`` times (default 25); otherwise the fit is ``not_converged``. Independence stops after
one pass with beta = OLS.

Variances of beta, with u_g = X_g'(I - c_g 11') e_g:
- ``robust`` (geepack's default ``san.se``): A^{-1} (sum_g u_g u_g') A^{-1}.
- ``naive`` (model-based, geepack's ``vbeta.naiv``): phi (1 - a) A^{-1}.
- ``mancl_derouen`` (bias-reduced; Mancl & DeRouen 2001, Biometrics 57:126): u_g computed
  from (I - H_gg)^{-1} e_g instead of e_g, with H_gg = X_g A^{-1} X_g'(I - c_g 11'). Under
  independence this is the CR3 sandwich of OLS (clubSandwich's CR3).
Tests are Wald z (df = inf), as geepack reports them.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import numpy as np

from estimators import sandwich
from estimators.base import SharedDesignEstimator
from estimators.design import Design
from estimators.params import require_one_of, require_positive, require_positive_int, require_probability
from estimators.result import FitResult, Status, wald_inference_batch

Correlation = Literal["independence", "exchangeable"]
CORRELATIONS = get_args(Correlation)
Variance = Literal["robust", "naive", "mancl_derouen"]
VARIANCES = get_args(Variance)


@dataclasses.dataclass(frozen=True)
class ClusterSums:
    """Design-only sums per cluster: sizes n_g, X_g'X_g (G, p, p), X_g'1 (G, p)."""

    sizes: np.ndarray
    XtX: np.ndarray
    Xt1: np.ndarray
    n_pairs: float

    @classmethod
    def of(cls, design: Design) -> "ClusterSums":
        X, indicator = design.X, design.indicator
        sizes = np.bincount(design.clusters, minlength=design.n_clusters).astype(float)
        XtX = sandwich.cluster_crossprod(indicator, X, X)
        return cls(sizes, XtX, np.asarray(indicator @ X), float(np.sum(sizes * (sizes - 1) / 2)))


def exchangeable_weights(a: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """c_g = a / (1 + (n_g - 1) a) for each replicate's a (R,) and cluster size (G,): (R, G)."""
    return a[:, None] / (1.0 + (sizes[None, :] - 1.0) * a[:, None])


def working_information(sums: ClusterSums, c: np.ndarray) -> np.ndarray:
    """A = sum_g X_g'(I - c_g 11')X_g for every replicate's c (R, G): (R, p, p)."""
    return sums.XtX.sum(axis=0)[None] - np.einsum("rg,gp,gq->rpq", c, sums.Xt1, sums.Xt1)


def gls_coefficients(sums: ClusterSums, XtY: np.ndarray, sumY: np.ndarray, c: np.ndarray) -> np.ndarray:
    """beta(a) = A^{-1} sum_g X_g'(I - c_g 11') y_g for every replicate: (R, p).

    XtY: X_g'y_g (G, p, R); sumY: 1'y_g (G, R); c: (R, G).
    """
    b = XtY.sum(axis=0).T - np.einsum("rg,gp,gr->rp", c, sums.Xt1, sumY)
    return np.linalg.solve(working_information(sums, c), b[:, :, None])[:, :, 0]


def scale_estimate(E: np.ndarray) -> np.ndarray:
    """phi = sum_i e_i^2 / n per replicate (geepack's divisor n)."""
    return np.einsum("ir,ir->r", E, E) / E.shape[0]


def exchangeable_estimate(sumE: np.ndarray, sumE2: np.ndarray, phi: np.ndarray, n_pairs: float) -> np.ndarray:
    """a = sum_g sum_{j<k} e_gj e_gk / (phi * n_pairs), from per-cluster sums of e and e^2 (G, R)."""
    return ((sumE**2 - sumE2) / 2.0).sum(axis=0) / (phi * n_pairs)


class GEE(SharedDesignEstimator):
    """Gaussian identity-link GEE of ``formula`` with clusters ``cluster`` (see module docstring).

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``.
    cluster : column with cluster labels.
    correlation : working correlation, ``independence`` or ``exchangeable``.
    variance : ``robust`` (sandwich), ``naive`` (model-based) or ``mancl_derouen`` (bias-reduced).
    tol, max_iter : geepack's convergence criterion (largest absolute change) and iteration cap.
    alpha : 1 - confidence level of the intervals.
    """

    def __init__(self, formula: str = "y ~ X", cluster: str = "subject", correlation: Correlation = "independence",
                 variance: Variance = "robust", tol: float = 1e-4, max_iter: int = 25, alpha: float = 0.05):
        self.formula = formula
        self.cluster = cluster
        self.correlation = correlation
        self.variance = variance
        self.tol = tol
        self.max_iter = max_iter
        self.alpha = alpha
        require_one_of(correlation, "correlation", CORRELATIONS)
        require_one_of(variance, "variance", VARIANCES)
        require_positive(tol, "tol")
        require_positive_int(max_iter, "max_iter")
        require_probability(alpha, "alpha")

    def _fit_columns(self, design: Design, Y: np.ndarray) -> list[FitResult]:
        X = design.X
        # the bread refuses a rank-deficient design with a clear message
        design.derived("bread", lambda: sandwich.bread(X))
        sums = design.derived("gee_cluster_sums", lambda: ClusterSums.of(design))
        indicator = design.indicator
        XtY = sandwich.cluster_crossprod(indicator, X, Y)
        sumY = np.asarray(indicator @ Y)

        beta, phi, a, converged = self._iterate(design, sums, indicator, XtY, sumY, Y)
        valid = (a < 1.0) & (a > -1.0 / max(sums.sizes.max() - 1.0, 1.0))
        c = exchangeable_weights(np.where(valid, a, 0.0), sums.sizes)
        E = Y - sandwich.columnwise(X, beta.T)
        A_inv = np.linalg.inv(working_information(sums, c))
        V = self._vcov(design, sums, A_inv, E, c, phi, a)
        results = wald_inference_batch(design.terms, beta, np.sqrt(np.diagonal(V, axis1=1, axis2=2)), np.inf, self.alpha)
        for r in np.flatnonzero(~converged | ~valid):
            if not valid[r]:
                results[r] = FitResult.failure(design.terms, f"exchangeable correlation estimate {a[r]:.4g} is outside its range")
            else:
                results[r] = dataclasses.replace(results[r], status=Status.not_converged,
                                                 message=f"GEE did not converge in {self.max_iter} iterations (tol {self.tol:g})")
        return results

    def _iterate(self, design: Design, sums: ClusterSums, indicator, XtY: np.ndarray, sumY: np.ndarray,
                 Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """geepack's iteration (module docstring) for every replicate: beta (R, p), phi, a and
        whether it converged (R,). A replicate that has converged keeps its values."""
        X = design.X
        R = Y.shape[1]
        a = np.zeros(R)
        beta = gls_coefficients(sums, XtY, sumY, np.zeros((R, design.n_clusters)))
        phi = scale_estimate(Y - sandwich.columnwise(X, beta.T))
        active = np.ones(R, dtype=bool)
        for _ in range(self.max_iter):
            new_beta = gls_coefficients(sums, XtY, sumY, exchangeable_weights(a, sums.sizes))
            E = Y - sandwich.columnwise(X, new_beta.T)
            new_phi = scale_estimate(E)
            new_a = a
            if self.correlation == "exchangeable":
                new_a = exchangeable_estimate(np.asarray(indicator @ E), np.asarray(indicator @ E**2), new_phi, sums.n_pairs)
            change = np.maximum(np.abs(new_beta - beta).max(axis=1), np.maximum(np.abs(new_phi - phi), np.abs(new_a - a)))
            beta[active], phi[active], a[active] = new_beta[active], new_phi[active], new_a[active]
            active &= ~(change <= self.tol)
            if not active.any():
                break
        return beta, phi, a, ~active

    def _vcov(self, design: Design, sums: ClusterSums, A_inv: np.ndarray, E: np.ndarray, c: np.ndarray,
              phi: np.ndarray, a: np.ndarray) -> np.ndarray:
        """(R, p, p) covariance of beta of the requested kind (module docstring)."""
        if self.variance == "naive":
            return (phi * (1.0 - a))[:, None, None] * A_inv
        if self.variance == "mancl_derouen":
            E = mancl_derouen_residuals(design, A_inv, E, c)
        indicator = design.indicator
        U = sandwich.cluster_scores(design.X, E, indicator)  # X_g'e_g   (R, G, p)
        U -= (c * np.asarray(indicator @ E).T)[:, :, None] * sums.Xt1[None]  # - c_g X_g'1 1'e_g
        return A_inv @ np.einsum("rgp,rgq->rpq", U, U) @ A_inv


def mancl_derouen_residuals(design: Design, A_inv: np.ndarray, E: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(I - H_gg)^{-1} e_g for every cluster and replicate, H_gg = X_g A^{-1} X_g'(I - c_g 11')."""
    X, clusters = design.X, design.clusters
    out = np.empty_like(E)
    for g in range(design.n_clusters):
        rows = np.flatnonzero(clusters == g)
        Xg = X[rows]
        XAX = np.einsum("ip,rpq,jq->rij", Xg, A_inv, Xg)  # (R, n_g, n_g)
        H = XAX - c[:, g, None, None] * XAX.sum(axis=2, keepdims=True)  # X_g A^-1 X_g' (I - c_g 11')
        I_minus_H = np.eye(len(rows))[None] - H
        out[rows] = np.linalg.solve(I_minus_H, E[rows].T[:, :, None])[:, :, 0].T
    return out
