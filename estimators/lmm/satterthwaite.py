"""Satterthwaite degrees of freedom for fixed-effect contrasts, as lmerTest computes them (Kuznetsova, Brockhoff & Christensen 2017, "lmerTest Package: Tests in Linear
Mixed Effects Models", JSS 82(13), section 3.1; Satterthwaite 1946).

With phi = (theta, sigma), C(phi) = sigma^2 (R_X'R_X)^-1 the covariance of beta-hat, and
D(phi) the REML (or, for ML fits, ML) deviance before sigma is profiled out (lmerTest's
``devfun_vp``; the ML one drops log|R_X|^2 and has n for n - p),

    D(theta, sigma) = log|L_theta|^2 + log|R_X|^2 + r^2 / sigma^2 + (n - p) log(2 pi sigma^2),

    A = 2 H^+,   H = d^2 D / d phi d phi'   (pseudo-inverse over eigenvalues > 1e-8, as lmerTest),
    g = d (l'C l) / d phi,
    nu = 2 (l'C l)^2 / (g'A g).

lmerTest takes H and g from numDeriv. Here the derivatives in sigma are analytic,

    dD/dsigma = -2 r^2/sigma^3 + 2 nu/sigma,    d^2D/dsigma^2 = 6 r^2/sigma^4 - 2 nu/sigma^2  (nu = n - p or n),
    d^2D/dtheta dsigma = -2 (dr^2/dtheta) / sigma^3,  dC/dsigma = 2 sigma (R_X'R_X)^-1,

and those in theta are central differences of the analytic gradient of D and of C, every
perturbation of every replicate evaluated in one batched call.
"""
from __future__ import annotations

import numpy as np

from estimators.lmm import levelwise as lw
from estimators.lmm.criterion import residual_dof
from estimators.lmm.crossprod import OutcomeProducts

# lmerTest's tolerance on the eigenvalues of the Hessian.
EIGEN_TOLERANCE = 1e-8


def satterthwaite_df(model, outcomes: OutcomeProducts, theta: np.ndarray, sigma: np.ndarray,
                     step: float = 1e-4) -> np.ndarray:
    """Satterthwaite df (R, p) of each fixed effect (contrast e_j) at the optimum ``theta``
    (R, n_theta), ``sigma`` (R,) of each replicate of ``outcomes``, for the REML or ML
    criterion of ``model`` (a :class:`~estimators.lmm.fit.MixedModel`).
    """
    return coefficient_df(curvature(model, outcomes, theta, sigma, step), sigma)


def satterthwaite_parts(model, outcomes: OutcomeProducts, theta: np.ndarray, sigma: np.ndarray,
                        step: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the df of any contrast need (lmerTest's ``vcov_varpar``, ``vcov_beta`` and
    ``Jac_list``): A (R, m + 1, m + 1), C = sigma^2 (R_X'R_X)^-1 (R, p, p) and the Jacobian
    J (R, m + 1, p, p) of C in phi = (theta, sigma), so that for a contrast l,
    g_k = l'J_k l and nu = 2 (l'Cl)^2 / (g'Ag)."""
    return contrast_parts(curvature(model, outcomes, theta, sigma, step), sigma)


def coefficient_df(curvature_: tuple, sigma: np.ndarray) -> np.ndarray:
    """The df (R, p) of the contrasts e_j from :func:`curvature`'s result."""
    A, U, h, sigma2 = curvature_
    R, m = h.shape
    p = U.shape[-1]
    variance = sigma2[:, None] * np.diagonal(U[0], axis1=1, axis2=2)  # l'C l for l = e_j, (R, p)
    g = np.empty((R, p, m + 1))
    for k in range(m):
        dU = (np.diagonal(U[1 + k], axis1=1, axis2=2) - np.diagonal(U[1 + m + k], axis1=1, axis2=2)) / (2.0 * h[:, k:k + 1])
        g[:, :, k] = sigma2[:, None] * dU
    g[:, :, m] = 2.0 * sigma[:, None] * np.diagonal(U[0], axis1=1, axis2=2)
    denominator = lw.sum_axis((g @ A) * g, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * variance**2 / denominator


def contrast_parts(curvature_: tuple, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, C, J) of :func:`satterthwaite_parts` from :func:`curvature`'s result."""
    A, U, h, sigma2 = curvature_
    m = h.shape[1]
    J = np.empty((h.shape[0], m + 1) + U.shape[2:])
    for k in range(m):
        J[:, k] = sigma2[:, None, None] * (U[1 + k] - U[1 + m + k]) / (2.0 * h[:, k, None, None])
    J[:, m] = 2.0 * sigma[:, None, None] * U[0]
    return A, sigma2[:, None, None] * U[0], J


def curvature(model, outcomes: OutcomeProducts, theta: np.ndarray, sigma: np.ndarray, step: float = 1e-4):
    """A = 2 H^+ (R, m + 1, m + 1), the unscaled covariances (R_X'R_X)^-1 at theta and at the
    central-difference points (2m + 1, R, p, p: theta, theta + h e_k, theta - h e_k), the steps
    h (R, m) and sigma^2."""
    R, m = theta.shape
    nu = residual_dof(model.products.n, model.products.p, model.reml)
    p = model.products.p
    rows = np.arange(R)
    h = step * np.maximum(1.0, np.abs(theta))  # (R, m)
    shifts = [np.where(np.arange(m) == k, h, 0.0) for k in range(m)]
    points = np.concatenate([theta] + [theta + s for s in shifts] + [theta - s for s in shifts])
    F = model.factorize(outcomes, points, np.tile(rows, 2 * m + 1))
    grad_logdet, grad_r2 = F.gradients(model.layout, include_fixed=model.reml)
    unscaled = F.unscaled_fixed_covariance()  # (R(2m+1), p, p)

    sigma2 = sigma**2
    r2 = F.r2[:R]
    grad_theta = (grad_logdet + grad_r2 / np.tile(sigma2, 2 * m + 1)[:, None]).reshape(2 * m + 1, R, m)
    U = unscaled.reshape(2 * m + 1, R, p, p)

    H = np.empty((R, m + 1, m + 1))
    for k in range(m):
        H[:, :m, k] = (grad_theta[1 + k] - grad_theta[1 + m + k]) / (2.0 * h[:, k:k + 1])
    H[:, :m, :m] = 0.5 * (H[:, :m, :m] + np.swapaxes(H[:, :m, :m], 1, 2))
    H[:, :m, m] = H[:, m, :m] = -2.0 * grad_r2[:R] / sigma[:, None] ** 3
    H[:, m, m] = 6.0 * r2 / sigma2**2 - 2.0 * nu / sigma2

    values, vectors = np.linalg.eigh(H)
    keep = values > EIGEN_TOLERANCE
    inverse_values = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    A = 2.0 * (vectors * inverse_values[:, None, :]) @ np.swapaxes(vectors, 1, 2)
    return A, U, h, sigma2
