"""Profiled REML and ML criteria (-2 log-likelihood) of a linear mixed model, their gradients
in theta, the residual SD at the optimum and the information criteria. (The deviance in
(theta, sigma) before sigma is profiled out, which Satterthwaite's df need, is in
:mod:`.satterthwaite`.)

Bates, Mächler, Bolker & Walker (2015), eqs. 34 (ML) and 41 (REML), with r^2 the penalised
residual sum of squares and L_theta, R_X the blocks of the Cholesky factor (:mod:`.cholesky`):

    ML:   d(theta)   = log|L_theta|^2 + n [1 + log(2 pi r^2 / n)]
    REML: d_R(theta) = log|L_theta|^2 + log|R_X|^2 + (n - p) [1 + log(2 pi r^2 / (n - p))]

Their derivatives follow from d log r^2 = d r^2 / r^2.
"""
from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def residual_dof(n: int, p: int, reml: bool) -> int:
    """n - p for REML, n for ML: the divisor of r^2 in sigma^2 and the weight of log r^2."""
    return n - p if reml else n


def profiled_criterion(logdet_L, logdet_RX, r2, n: int, p: int, reml: bool):
    """ML or REML criterion at sigma^2 = r^2 / (n - p) (REML) or r^2 / n (ML)."""
    nu = residual_dof(n, p, reml)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = logdet_L + nu * (1.0 + LOG_2PI + np.log(r2 / nu))
    return value + logdet_RX if reml else value


def profiled_gradient(grad_logdet, grad_r2, r2, n: int, p: int, reml: bool):
    """d criterion / d theta = d log det / d theta + nu (d r^2 / d theta) / r^2."""
    nu = residual_dof(n, p, reml)
    return grad_logdet + nu * grad_r2 / np.asarray(r2)[..., None]


def sigma_hat(r2, n: int, p: int, reml: bool):
    """Residual SD at the optimum: sqrt(r^2 / (n - p)) for REML, sqrt(r^2 / n) for ML."""
    return np.sqrt(np.asarray(r2) / residual_dof(n, p, reml))


def information_criteria(criterion, n: int, n_params: int) -> tuple[float, float]:
    """AIC = criterion + 2 k and BIC = criterion + k log n, with k = p + n_theta + 1 (lme4's
    ``logLik`` df; the REML criterion for REML fits, as lme4's ``AIC`` and ``BIC`` use)."""
    return criterion + 2.0 * n_params, criterion + np.log(n) * n_params
