"""Adaptive Gauss-Hermite quadrature of a GLMM with one scalar random-effect term (glmer's
``nAGQ > 1``; Pinheiro & Chao 2006, J. Comput. Graph. Stat. 15:58, section 3; Pinheiro & Bates
1995).

With one scalar term the likelihood factors over its levels j. Centred at the conditional mode
u*_j and scaled by s_j = 1 / L_jj (L_jj^2 = 1 + sum_{i in j} w_i v_i^2, the curvature of the
penalised deviance there), and with the K-point Gauss-Hermite rule (z_k, w_k) for the standard
normal density phi,

    -2 log int prod_i p(y_i | u) phi(u) du
        ~ g_j(0) + log L_jj^2 - 2 log sum_k w_k exp(z_k^2 / 2 - (g_j(z_k) - g_j(0)) / 2),

where g_j(z) = sum_{i in j} -2 log p(y_i | u_j = u*_j + s_j z) + (u*_j + s_j z)^2 (the 2 pi of
phi cancels against the density of the rule). K = 1 (z = 0, w = 1) is the Laplace deviance.
lme4 sums the deviance residuals instead of -2 log p in g_j, so its ``nAGQ > 1`` objective (and
logLik) omits the saturated log-likelihood, sum_i -2 log p(y_i | mu = y_i): :func:`agq_deviance`
returns the full -2 log-likelihood, :attr:`GLMMFit.objective` lme4's number.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial import hermite_e

from estimators.lmm.levelwise import row_sum


@functools.lru_cache(maxsize=None)
def rule(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``points``-point Gauss-Hermite rule for N(0, 1) (weights sum to 1)."""
    z, w = hermite_e.hermegauss(points)
    return z, w / w.sum()


def agq_deviance(laplace, theta: np.ndarray, beta: np.ndarray, cols: np.ndarray, u1: np.ndarray,
                 u_r: np.ndarray, points: int):
    """-2 log-likelihood by adaptive Gauss-Hermite quadrature (b,), the modes and PIRLS flags.

    ``laplace`` is the :class:`~estimators.glmm.pirls.Laplace` of a design with one scalar term."""
    u1, u_r, _, _, converged, level_log_det, eta = laplace.modes(theta, beta, cols, u1, u_r)
    z, w = rule(points)
    scale = np.exp(-0.5 * level_log_det)                         # 1 / L_jj, (b, l)
    v1, _ = laplace.local_values(theta)
    v = v1[:, :, 0]                                               # (b, n)
    levels = laplace.scatter.first_index
    fixed_part = eta - v * u1[:, levels, 0]
    y, m, constant = laplace.responses(cols)
    g0 = None
    terms = []
    for node in z:
        u = u1[:, :, 0] + node * scale
        mu, _ = laplace.family.mean(fixed_part + v * u[:, levels])
        per_row = laplace.family.minus_two_loglik(y, m, constant, mu)
        g = (laplace.scatter.first_sum @ per_row.T).T + u * u     # (b, l)
        terms.append(g)
        if node == 0.0:
            g0 = g
    if g0 is None:  # an even rule has no node at 0: g_j(0) from the mode itself
        mu, _ = laplace.family.mean(eta)
        g0 = (laplace.scatter.first_sum @ laplace.family.minus_two_loglik(y, m, constant, mu).T).T + u1[:, :, 0] ** 2
    mix = sum(wk * np.exp(0.5 * zk * zk - 0.5 * (g - g0)) for zk, wk, g in zip(z, w, terms))
    total = row_sum(g0 + level_log_det - 2.0 * np.log(mix))
    return total, u1, u_r, converged
