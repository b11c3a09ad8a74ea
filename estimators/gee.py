"""Generalised estimating equations (Liang & Zeger 1986, Biometrika 73:13) for a gaussian
(identity link), binomial or Poisson outcome, with independence or exchangeable working
correlation, fitted as R's ``geepack::geeglm`` does and vectorised over replicates that share a
design.

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

Binomial and Poisson families (``family``, ``link``; :mod:`estimators.families`): with
d = d mu/d eta, V(mu) the variance function, the working covariance is
phi A_g^{1/2} R_g(a) A_g^{1/2}, A_g = diag V(mu_g). In the standardised design
X~_i = x_i d_i / V(mu_i)^{1/2} and Pearson residuals r_i = (y_i - mu_i) / V(mu_i)^{1/2} every
formula above holds with X~ for X and r for e (D_g'V_g^{-1}(y_g - mu_g) = X~_g'R_g^{-1} r_g /
phi, and the Mancl-DeRouen H_gg is similar to X~_g A^{-1} X~_g'(I - c_g 11')), except that
beta solves the estimating equations by Fisher scoring,
    beta <- beta + A(a)^{-1} sum_g X~_g'(I - c_g 11') r_g,
with X~ and r at the current beta, from the GLM estimate (:class:`estimators.glm.IRLSFit`,
the independence solution) and a = 0, as geepack starts. phi and a are geepack's moment
estimators of the Pearson residuals; ``naive`` is geepack's ``vbeta.naiv``.

A binomial response may be ``cbind(successes, failures)`` (:mod:`estimators.response`):
proportions y = k / m with prior weights m = k + f, which ``geeglm`` hands to geese as its
``weights``. As geepack does with weights (``update_beta``, ``update_gamma``, ``update_alpha``,
``HiandGi`` in its src/gee2.cc), X~_i and r_i are multiplied by m_i^{1/2} (working covariance
phi A_g^{1/2} R_g(a) A_g^{1/2}, A_g = diag V(mu_g) / m_g) and the moment estimators weighted:
    phi = sum_i r_i^2 / sum_i m_i,
    a = sum_g sum_{j<k} m_j m_k u_j u_k / (phi sum_g sum_{j<k} m_j m_k),  u_i = r_i / m_i^{1/2};
every other formula above is unchanged; with m = 1 these are the estimators above. This is a
GEE of the rows, not of the trials: expanded into k + f Bernoulli rows the same data give the
same beta and robust variance under independence (a row's scores are the sum of its trials'),
but another phi and naive variance, and an exchangeable a that also correlates the trials of
one row.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, get_args

import numpy as np

from estimators import families, sandwich
from estimators.base import TrialsEstimator
from estimators.design import Design, InputError
from estimators.glm import IRLSFit
from estimators.params import require, require_one_of, require_positive, require_positive_int, require_probability
from estimators.result import FitResult, Status, wald_inference_batch

Correlation = Literal["independence", "exchangeable"]
CORRELATIONS = get_args(Correlation)
Variance = Literal["robust", "naive", "mancl_derouen"]
VARIANCES = get_args(Variance)
GEEFamily = Literal["gaussian", "binomial", "poisson"]
GEE_FAMILIES = get_args(GEEFamily)


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


def scale_estimate(E: np.ndarray, total_weight: np.ndarray | None = None) -> np.ndarray:
    """phi = sum_i e_i^2 / n per replicate (geepack's divisor n), or / sum_i m_i given the
    prior weights' ``total_weight`` (R,)."""
    return np.einsum("ir,ir->r", E, E) / (E.shape[0] if total_weight is None else total_weight)


def exchangeable_estimate(sumE: np.ndarray, sumE2: np.ndarray, phi: np.ndarray, n_pairs: float | np.ndarray
                          ) -> np.ndarray:
    """a = sum_g sum_{j<k} e_gj e_gk / (phi * n_pairs), from per-cluster sums of e and e^2 (G, R)."""
    return ((sumE**2 - sumE2) / 2.0).sum(axis=0) / (phi * n_pairs)


def weighted_pairs(indicator, M: np.ndarray) -> np.ndarray:
    """sum_g sum_{j<k} m_j m_k = sum_g ((sum m)^2 - sum m^2) / 2 per replicate (R,), the
    denominator of geepack's weighted exchangeable estimate; sum_g n_g (n_g - 1) / 2 for m = 1."""
    return ((np.asarray(indicator @ M) ** 2 - np.asarray(indicator @ M**2)) / 2.0).sum(axis=0)


class GEE(TrialsEstimator):
    """GEE of ``formula`` with clusters ``cluster`` (see module docstring).

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``; for family binomial the outcome may be
        ``cbind(successes, failures)`` (geepack's prior weights, module docstring), fitted frame
        by frame (TrialsEstimator).
    cluster : column with cluster labels.
    correlation : working correlation, ``independence`` or ``exchangeable``.
    variance : ``robust`` (sandwich), ``naive`` (model-based) or ``mancl_derouen`` (bias-reduced).
    family : ``gaussian`` (identity link), ``binomial`` (0/1 outcome) or ``poisson`` (counts).
    link : None for the family's canonical link, or ``logit`` / ``probit`` (binomial), ``log``
        (poisson).
    tol, max_iter : geepack's convergence criterion (largest absolute change) and iteration cap.
    alpha : 1 - confidence level of the intervals.
    """

    draws_from_rng = False  # deterministic: the runner builds it no generator

    def __init__(self, formula: str = "y ~ X", cluster: str = "subject", correlation: Correlation = "independence",
                 variance: Variance = "robust", tol: float = 1e-4, max_iter: int = 25, alpha: float = 0.05,
                 family: GEEFamily = "gaussian", link: str | None = None):
        self.formula = formula
        self.cluster = cluster
        self.correlation = correlation
        self.variance = variance
        self.family = family
        self.link = link
        self.tol = tol
        self.max_iter = max_iter
        self.alpha = alpha
        require_one_of(correlation, "correlation", CORRELATIONS)
        require_one_of(variance, "variance", VARIANCES)
        require_positive(tol, "tol")
        require_positive_int(max_iter, "max_iter")
        require_probability(alpha, "alpha")
        require_one_of(family, "family", GEE_FAMILIES)
        if family == "gaussian":
            require(link in (None, "identity"), "link", f"must be identity (or unset) for family 'gaussian', got {link!r}")
        else:
            families.require_family_and_link(family, self.glm_link)
        self._require_trials_family()

    @property
    def glm_link(self) -> str:
        """The link of a binomial or Poisson family (``link``, or the canonical one)."""
        return families.link_or_canonical(self.family, self.link)

    def _fit_columns(self, design: Design, Y: np.ndarray, M: np.ndarray | None = None) -> list[FitResult]:
        """Each column of Y (n, R); M: the prior weights of proportions Y (binomial families),
        None for weights 1 (a 0/1 or count column, checked here)."""
        X = design.X
        # the bread refuses a rank-deficient design with a clear message
        design.derived("bread", lambda: sandwich.bread(X))
        sums = design.derived("gee_cluster_sums", lambda: ClusterSums.of(design))
        if self.family == "gaussian":
            indicator = design.indicator
            XtY = sandwich.cluster_crossprod(indicator, X, Y)
            sumY = np.asarray(indicator @ Y)
            beta, phi, a, converged = self._iterate(design, sums, indicator, XtY, sumY, Y)
            valid = self._valid(a, sums)
            c = exchangeable_weights(np.where(valid, a, 0.0), sums.sizes)
            E = Y - sandwich.columnwise(X, beta.T)
            A_inv = np.linalg.inv(working_information(sums, c))
            V = self._vcov(design, sums, A_inv, E, c, phi, a)
        else:
            problem = families.response_problem(self.family, Y) if M is None else None
            if problem:
                raise InputError(f"column {design.outcome!r} {problem}")
            beta, phi, a, converged, V = self._fit_family(design, sums, Y, np.ones_like(Y) if M is None else M)
            valid = self._valid(a, sums)
        results = wald_inference_batch(design.terms, beta, np.sqrt(np.diagonal(V, axis1=1, axis2=2)), np.inf, self.alpha)
        for r in np.flatnonzero(~converged | ~valid):
            if not valid[r]:
                results[r] = FitResult.failure(design.terms, f"exchangeable correlation estimate {a[r]:.4g} is outside its range")
            else:
                results[r] = dataclasses.replace(results[r], status=Status.not_converged,
                                                 message=f"GEE did not converge in {self.max_iter} iterations (tol {self.tol:g})")
        return results

    @staticmethod
    def _valid(a: np.ndarray, sums: ClusterSums) -> np.ndarray:
        """Whether each exchangeable correlation keeps every R_g(a) positive definite."""
        return (a < 1.0) & (a > -1.0 / max(sums.sizes.max() - 1.0, 1.0))

    def _standardised(self, design: Design, beta: np.ndarray, Y: np.ndarray, root_m: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """sqrt(w) = m^{1/2} d / V(mu)^{1/2} (the row scale of X~) and the Pearson residuals
        r = m^{1/2} (y - mu) / V(mu)^{1/2}, (n, R); ``root_m`` = m^{1/2}."""
        eta = sandwich.columnwise(design.X, beta.T)
        mu = families.clip_mean(self.family, families.inverse_link(self.glm_link, eta))
        root_v = np.sqrt(families.variance_function(self.family, mu))
        return root_m * families.mean_derivative(self.glm_link, eta, mu) / root_v, root_m * (Y - mu) / root_v

    def _family_information(self, design: Design, sums: ClusterSums, scale: np.ndarray, c: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        """A(a) = sum_g X~_g'(I - c_g 11')X~_g (R, p, p) and X~_g'1 (R, G, p) for X~ = scale * X."""
        X = design.X
        Xt1 = sandwich.cluster_crossprod(design.indicator, X, scale).transpose(2, 0, 1)
        A = np.einsum("ip,ir,iq->rpq", X, scale**2, X) - np.einsum("rg,rgp,rgq->rpq", c, Xt1, Xt1)
        return A, Xt1

    def _family_scores(self, design: Design, scale: np.ndarray, r: np.ndarray, c: np.ndarray,
                       Xt1: np.ndarray) -> np.ndarray:
        """u_g = X~_g'(I - c_g 11') r_g for every cluster and replicate: (R, G, p)."""
        U = sandwich.cluster_scores(design.X, scale * r, design.indicator)
        return U - (c * np.asarray(design.indicator @ r).T)[:, :, None] * Xt1

    def _fit_family(self, design: Design, sums: ClusterSums, Y: np.ndarray, M: np.ndarray):
        """Fisher scoring of the binomial or Poisson estimating equations (module docstring) for
        every replicate with prior weights M (n, R), then the requested variance: beta, phi, a,
        converged, V."""
        start = IRLSFit(self.family, self.glm_link, design.X, Y, 1e-10, 50, M)
        R = Y.shape[1]
        root_m, total_weight = np.sqrt(M), M.sum(axis=0)
        n_pairs = weighted_pairs(design.indicator, M) if self.correlation == "exchangeable" else None
        beta, a = start.beta, np.zeros(R)
        scale, r = self._standardised(design, beta, Y, root_m)
        phi = scale_estimate(r, total_weight)
        active = np.ones(R, dtype=bool)
        for _ in range(self.max_iter):
            c = exchangeable_weights(a, sums.sizes)
            A, Xt1 = self._family_information(design, sums, scale, c)
            step = np.linalg.solve(A, self._family_scores(design, scale, r, c, Xt1).sum(axis=1)[:, :, None])[:, :, 0]
            new_beta = beta + step
            new_scale, new_r = self._standardised(design, new_beta, Y, root_m)
            new_phi = scale_estimate(new_r, total_weight)
            new_a = a
            if self.correlation == "exchangeable":
                # m_j m_k u_j u_k = m_j^{1/2} r_j m_k^{1/2} r_k and m_j^2 u_j^2 = m_j r_j^2
                new_a = exchangeable_estimate(np.asarray(design.indicator @ (root_m * new_r)),
                                              np.asarray(design.indicator @ (M * new_r**2)), new_phi, n_pairs)
            change = np.maximum(np.abs(step).max(axis=1), np.maximum(np.abs(new_phi - phi), np.abs(new_a - a)))
            beta[active], phi[active], a[active] = new_beta[active], new_phi[active], new_a[active]
            scale[:, active], r[:, active] = new_scale[:, active], new_r[:, active]
            active &= ~(change <= self.tol)
            if not active.any():
                break
        c = exchangeable_weights(np.where(self._valid(a, sums), a, 0.0), sums.sizes)
        A, Xt1 = self._family_information(design, sums, scale, c)
        A_inv = np.linalg.inv(A)
        if self.variance == "naive":
            return beta, phi, a, ~active, (phi * (1.0 - a))[:, None, None] * A_inv
        if self.variance == "mancl_derouen":
            r = mancl_derouen_residuals(design, A_inv, r, c, scale)
        U = self._family_scores(design, scale, r, c, Xt1)
        return beta, phi, a, ~active, A_inv @ np.einsum("rgp,rgq->rpq", U, U) @ A_inv

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


def mancl_derouen_residuals(design: Design, A_inv: np.ndarray, E: np.ndarray, c: np.ndarray,
                            scale: np.ndarray | None = None) -> np.ndarray:
    """(I - H_gg)^{-1} e_g for every cluster and replicate, H_gg = X_g A^{-1} X_g'(I - c_g 11');
    with ``scale`` (n, R), X~ = scale * X in place of X (binomial and Poisson families)."""
    X, clusters = design.X, design.clusters
    out = np.empty_like(E)
    for g in range(design.n_clusters):
        rows = np.flatnonzero(clusters == g)
        Xg = X[rows]
        if scale is None:
            XAX = np.einsum("ip,rpq,jq->rij", Xg, A_inv, Xg)  # (R, n_g, n_g)
        else:
            Xtg = scale[rows].T[:, :, None] * Xg[None]  # (R, n_g, p)
            XAX = np.einsum("rip,rpq,rjq->rij", Xtg, A_inv, Xtg)
        H = XAX - c[:, g, None, None] * XAX.sum(axis=2, keepdims=True)  # X_g A^-1 X_g' (I - c_g 11')
        I_minus_H = np.eye(len(rows))[None] - H
        out[rows] = np.linalg.solve(I_minus_H, E[rows].T[:, :, None])[:, :, 0].T
    return out
