"""Logistic and Poisson regression (generalised linear models) fitted by iteratively reweighted
least squares, with model-based, heteroskedasticity-consistent or cluster-robust variances,
vectorised over replicates that share a design.

The binomial response is a 0/1 column or ``cbind(successes, failures)`` (R's
``glm(cbind(k, n - k) ~ x, binomial)``): proportions y = k / m with prior weights m = k + f
(:mod:`estimators.response`); a 0/1 or count response has m = 1. Every formula below is R's with
these prior weights.

Fit (McCullagh & Nelder 1989, sec. 2.5; R's ``glm.fit``): from R's starting means
(:func:`estimators.families.starting_mean`), repeat
    eta = X beta,  mu = g^{-1}(eta),  d = d mu/d eta,  w = m d^2 / V(mu),  z = eta + (y - mu) / d,
    beta <- (X'WX)^{-1} X'W z
until the coefficients change by at most ``tol`` relative, max|beta - beta_old| / (max|beta| +
0.1) <= tol, at most ``max_iter`` times; otherwise the fit is ``not_converged``. (R's glm stops
on the deviance, |D - D_old| / (|D| + 0.1) < 1e-8, which leaves the coefficients about
sqrt(1e-8) from the optimum where Fisher scoring converges linearly, as for the probit link.) So is a binomial fit with a fitted probability within 1e-8 of 0
or 1 (separation: the estimate diverges).

Every variance is a sandwich of the bread B = (X'WX)^{-1} (the dispersion is 1 for both
families) and the scores s_i = m_i x_i (y_i - mu_i) d_i / V(mu_i). In standardised form, with
X~ = W^{1/2} X and Pearson residuals r = m^{1/2} (y - mu) / V(mu)^{1/2}, s_i = x~_i r_i: the OLS
sandwiches of :mod:`estimators.sandwich` on (X~, r) are the GLM ones (n the number of rows):

- ``iid``: B (``vcov(glm)``), Wald z.
- ``HC0``..``HC3``: ``sandwich::vcovHC`` on the glm, with its hat values h_i = w_i x_i' B x_i;
  Wald z (as ``lmtest::coeftest``).
- ``CR0``: B (sum_g s_g s_g') B, s_g = sum_{i in g} s_i (``sandwich::vcovCL(type = "HC0",
  cadjust = FALSE)``, clubSandwich's CR0).
- ``CR1``: CR0 x G/(G-1): ``vcovCL``'s default for a glm (its default ``type`` is HC1 for lm
  objects only and HC0 otherwise, with ``cadjust = TRUE``), clubSandwich's CR1 and Stata's
  ``vce(cluster)`` for maximum-likelihood models.
- ``CR1S``: CR0 x G/(G-1) x (n-1)/(n-p) (``vcovCL(type = "HC1")``, clubSandwich's CR1S; the
  OLS estimator's CR1).
  CR0, CR1 and CR1S use t(G - 1), as the OLS estimator.
- ``CR2``: clubSandwich's ``vcovCR(type = "CR2")`` for a glm (Pustejovsky & Tipton 2018, JBES
  36:672, with the working model Phi = diag V(mu) / m and inverse-variance weights, its
  ``targetVariance.glm``): with S_g = diag V(mu_g) / m_g and Ht_gg = X~_g B X~_g',
  G_g = S_g (I - Ht_gg) S_g and the adjusted score
  X~_g' A_g r_g, A_g = G_g^{-1/2} S_g (symmetric inverse square root); t with the
  Satterthwaite degrees of freedom of ``clubSandwich::coef_test``
  (:func:`estimators.sandwich.cr2_satterthwaite_df` on X~ with the adjustments A_g', the
  residuals r having the identity as working covariance). For a constant V / m this is the OLS
  CR2.
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from estimators import families, sandwich
from estimators.base import TrialsEstimator
from estimators.design import Design, InputError
from estimators.params import require, require_one_of, require_positive, require_positive_int, require_probability
from estimators.result import FitResult, Status, wald_inference_batch

GLMVcov = Literal["iid", "HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR1S", "CR2"]
GLM_VCOV_TYPES = get_args(GLMVcov)
# A binomial fitted probability this close to 0 or 1 signals separation (R: 10 x machine epsilon).
SEPARATION_EPSILON = 1e-8


class IRLSFit:
    """An IRLS fit of every column of Y (n, R) on X (n, p) with prior weights M (n, R; None:
    1): beta (R, p), the means, weights and variance function (n, R) at beta, and which
    replicates converged (R,)."""

    def __init__(self, family: str, link: str, X: np.ndarray, Y: np.ndarray, tol: float, max_iter: int,
                 M: np.ndarray | None = None):
        M = np.ones_like(Y) if M is None else M
        self.prior_weights = M
        mu = families.starting_mean(family, Y, M)
        eta = families.link_function(link, mu)
        R = Y.shape[1]
        beta = np.zeros((R, X.shape[1]))
        active = np.ones(R, dtype=bool)
        for _ in range(max_iter):
            d = families.mean_derivative(link, eta, mu)
            w = M * d**2 / families.variance_function(family, mu)
            z = eta + (Y - mu) / d
            XtWX = np.einsum("ip,ir,iq->rpq", X, w, X)
            new_beta = np.linalg.solve(XtWX, np.einsum("ip,ir->rp", X, w * z)[:, :, None])[:, :, 0]
            new_eta = sandwich.columnwise(X, new_beta.T)
            new_mu = families.clip_mean(family, families.inverse_link(link, new_eta))
            done = np.abs(new_beta - beta).max(axis=1) / (np.abs(new_beta).max(axis=1) + 0.1) <= tol
            beta[active], eta[:, active], mu[:, active] = new_beta[active], new_eta[:, active], new_mu[:, active]
            active &= ~done
            if not active.any():
                break
        self.beta, self.mu, self.converged = beta, mu, ~active
        d = families.mean_derivative(link, eta, mu)
        self.variance = families.variance_function(family, mu)
        self.weights = M * d**2 / self.variance


def clubsandwich_cr2_adjustments(Xw: np.ndarray, B: np.ndarray, variance: np.ndarray, clusters: np.ndarray,
                                 n_clusters: int) -> list[np.ndarray]:
    """A_g = G_g^{-1/2} S_g, G_g = S_g (I - X~_g B X~_g') S_g, S_g = diag ``variance``_g, the
    working variances V(mu) / m (module docstring).
    Clusters of equal size are decomposed in one stacked ``eigh``."""
    members = [np.flatnonzero(clusters == g) for g in range(n_clusters)]
    adjustments: list[np.ndarray] = [np.empty(0)] * n_clusters
    for size in sorted({len(rows) for rows in members}):
        group = [g for g in range(n_clusters) if len(members[g]) == size]
        rows = np.stack([members[g] for g in group])  # (k, size)
        Xg, v = Xw[rows], variance[rows]  # (k, size, p), (k, size)
        G = v[:, :, None] * (np.eye(size) - Xg @ B @ Xg.transpose(0, 2, 1)) * v[:, None, :]
        values, vectors = np.linalg.eigh(G)
        singular = values.min(axis=1) <= 1e-12 * np.maximum(1.0, values.max(axis=1))
        if singular.any():
            raise ValueError(f"I - H_gg is singular for cluster {group[int(np.argmax(singular))]}: CR2 is undefined "
                             "when a cluster alone determines a coefficient")
        roots = (vectors * values[:, None, :] ** -0.5) @ vectors.transpose(0, 2, 1) * v[:, None, :]
        for k, g in enumerate(group):
            adjustments[g] = roots[k]
    return adjustments


class GLM(TrialsEstimator):
    """Logistic or Poisson regression of ``formula`` with the variance ``vcov`` (module docstring).

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``; the outcome is 0/1 or ``cbind(successes,
        failures)`` (binomial; each side a column or an expression such as ``size - incidence``),
        or a count (poisson). A two-column response is fitted frame by frame (TrialsEstimator).
    family : ``binomial`` or ``poisson``.
    link : ``logit`` or ``probit`` (binomial), ``log`` (poisson); None: the canonical link.
    vcov : ``iid``, ``HC0``..``HC3``, ``CR0``, ``CR1``, ``CR1S`` or ``CR2``.
    cluster : column with cluster labels; required for ``CR*``.
    tol, max_iter : IRLS convergence (relative change of the coefficients) and iteration cap.
    alpha : 1 - confidence level of the intervals.
    """

    draws_from_rng = False  # deterministic (IRLS): the runner builds it no generator

    def __init__(self, formula: str = "y ~ X", family: families.FamilyName = "binomial", link: families.LinkName | None = None,
                 vcov: GLMVcov = "iid", cluster: str | None = None, tol: float = 1e-10, max_iter: int = 50,
                 alpha: float = 0.05):
        self.formula = formula
        self.family = family
        self.link = link
        self.vcov = vcov
        self.cluster = cluster
        self.tol = tol
        self.max_iter = max_iter
        self.alpha = alpha
        require_one_of(family, "family", families.FAMILIES)
        families.require_family_and_link(family, families.link_or_canonical(family, link))
        self._require_trials_family()
        require_one_of(vcov, "vcov", GLM_VCOV_TYPES)
        require(not (vcov.startswith("CR") and not cluster), "cluster", f"vcov={vcov!r} needs the name of the cluster column")
        require_positive(tol, "tol")
        require_positive_int(max_iter, "max_iter")
        require_probability(alpha, "alpha")

    @property
    def design_cluster(self) -> str | None:
        return self.cluster if self.vcov.startswith("CR") else None

    def _fit_columns(self, design: Design, Y: np.ndarray, M: np.ndarray | None = None) -> list[FitResult]:
        """Each column of Y (n, R) with prior weights M (None: a 0/1 or count column, checked here;
        else proportions of M trials, checked by :func:`estimators.response.response`)."""
        problem = families.response_problem(self.family, Y) if M is None else None
        if problem:
            raise InputError(f"column {design.outcome!r} {problem}")
        X = design.X
        design.derived("bread", lambda: sandwich.bread(X))  # refuses a rank-deficient design
        fit = IRLSFit(self.family, families.link_or_canonical(self.family, self.link), X, Y, self.tol, self.max_iter, M)
        R, p = fit.beta.shape
        std_errors, df = np.empty((R, p)), np.empty((R, p))
        for r in range(R):
            V, df[r] = self._vcov_and_df(design, fit, Y, r)
            std_errors[r] = np.sqrt(np.diagonal(V))
        results = wald_inference_batch(design.terms, fit.beta, std_errors, df, self.alpha)
        separated = np.zeros(R, dtype=bool)
        if self.family == "binomial":
            separated = ((fit.mu <= SEPARATION_EPSILON) | (fit.mu >= 1.0 - SEPARATION_EPSILON)).any(axis=0)
        for r in np.flatnonzero(~fit.converged | separated):
            message = ("fitted probabilities numerically 0 or 1 (separation)" if separated[r]
                       else f"IRLS did not converge in {self.max_iter} iterations (tol {self.tol:g})")
            results[r] = FitResult(results[r].terms, results[r].estimate, results[r].std_error, results[r].df,
                                   results[r].ci_lower, results[r].ci_upper, results[r].p_value,
                                   Status.not_converged, message)
        return results

    def _vcov_and_df(self, design: Design, fit: IRLSFit, Y: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray | float]:
        """Replicate r's (p, p) covariance and the df of its reference distribution."""
        Xw = design.X * np.sqrt(fit.weights[:, r])[:, None]
        B = np.linalg.inv(Xw.T @ Xw)
        if self.vcov == "iid":
            return B, np.inf
        pearson = (np.sqrt(fit.prior_weights[:, r]) * (Y[:, r] - fit.mu[:, r]) / np.sqrt(fit.variance[:, r]))[:, None]
        if self.vcov.startswith("HC"):
            return sandwich.vcov_hc(Xw, B, pearson, self.vcov)[0], np.inf
        clusters, G = design.clusters, design.n_clusters
        if self.vcov in ("CR0", "CR1", "CR1S"):
            kind = "CR1" if self.vcov == "CR1S" else "CR0"
            V = sandwich.vcov_cr(Xw, B, pearson, clusters, G, kind, indicator=design.indicator)[0]
            return V * (G / (G - 1) if self.vcov == "CR1" else 1.0), float(G - 1)
        # The adjusted score is X~_g' A_g r_g = (A_g' X~_g)' r_g: the OLS functions, which take
        # symmetric adjustments W_g and use W_g X~_g, get A_g'.
        working_variance = fit.variance[:, r] / fit.prior_weights[:, r]
        transposed = [A.T for A in clubsandwich_cr2_adjustments(Xw, B, working_variance, clusters, G)]
        adjusted = sandwich.adjusted_design(Xw, clusters, transposed)
        V = sandwich.vcov_cr(Xw, B, pearson, clusters, G, "CR2", adjusted, design.indicator)[0]
        return V, sandwich.cr2_satterthwaite_df(Xw, B, clusters, G, transposed)
