"""The covariance parameter theta: one lower-triangular relative factor T_t per random term.

Var(b_tj) = sigma^2 T_t T_t' for every level j of term t, so Lambda_theta = blockdiag_t(I_{l_t}
kron T_t) and theta lists the lower triangle of each T_t column by column (Bates et al. 2015,
section 2.2 and eq. 4; the same order as lme4's ``getME(fit, "theta")``).

lme4 bounds the diagonal of T_t below by 0. Here theta is optimised without bounds: T_t and
T_t D (D diagonal with entries +-1) give the same T_t T_t', so the criterion is even in the sign
of each column, and :func:`rectify` flips columns with a negative diagonal after the fit.
A fit is singular (on the boundary of the parameter space) when some diagonal element is
below 1e-4, lme4's ``isSingular`` rule.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SINGULAR_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ThetaLayout:
    """Where each term's factor lives in theta: offsets, sizes and lower-triangle positions."""

    sizes: tuple[int, ...]  # k_t per term

    # Derived once per layout (the optimiser asks for them at every evaluation); the arrays are
    # read-only, as they are shared.
    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        out, start = [], 0
        for k in self.sizes:
            out.append(start)
            start += k * (k + 1) // 2
        return tuple(out)

    @functools.cached_property
    def n_theta(self) -> int:
        return sum(k * (k + 1) // 2 for k in self.sizes)

    @staticmethod
    def lower_positions(k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the lower triangle of a k x k matrix, column by column."""
        return _lower_positions(k)

    @functools.cached_property
    def diagonal(self) -> np.ndarray:
        """Boolean mask of the theta elements on a diagonal (lme4's lower bound 0)."""
        mask = np.zeros(self.n_theta, dtype=bool)
        for offset, k in zip(self.offsets, self.sizes):
            rows, cols = self.lower_positions(k)
            mask[offset + np.flatnonzero(rows == cols)] = True
        mask.flags.writeable = False
        return mask

    def start(self) -> np.ndarray:
        """lme4's starting value: identity factors (theta = 1 on diagonals, 0 elsewhere)."""
        return self.diagonal.astype(float)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """T_t for each term from theta of shape (..., n_theta): arrays (..., k_t, k_t)."""
        theta = np.asarray(theta, dtype=float)
        out = []
        for offset, k in zip(self.offsets, self.sizes):
            rows, cols = self.lower_positions(k)
            T = np.zeros(theta.shape[:-1] + (k * k,))
            T[..., rows * k + cols] = theta[..., offset:offset + len(rows)]
            out.append(T.reshape(theta.shape[:-1] + (k, k)))
        return out

    def rectify(self, theta: np.ndarray) -> np.ndarray:
        """Flip the columns of each T_t whose diagonal element is negative (T T' unchanged)."""
        theta = np.array(theta, dtype=float, copy=True)
        for offset, k in zip(self.offsets, self.sizes):
            rows, cols = self.lower_positions(k)
            block = theta[..., offset:offset + len(rows)]
            diagonal = block[..., rows == cols]  # (..., k), one per column
            sign = np.where(diagonal < 0, -1.0, 1.0)
            block *= sign[..., cols]
            theta[..., offset:offset + len(rows)] = block
        return theta

    def is_singular(self, theta: np.ndarray, tolerance: float = SINGULAR_TOLERANCE) -> np.ndarray:
        """lme4's isSingular: some diagonal element of a (rectified) factor below ``tolerance``."""
        return np.any(np.abs(np.asarray(theta)[..., self.diagonal]) < tolerance, axis=-1)


@functools.lru_cache(maxsize=None)
def _lower_positions(k: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = [], []
    for c in range(k):
        for r in range(c, k):
            rows.append(r)
            cols.append(c)
    out = np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)
    for array in out:
        array.flags.writeable = False
    return out


def covariance(T: np.ndarray, sigma: float) -> np.ndarray:
    """Var(b_j) = sigma^2 T T' of one term (Bates et al. 2015, eq. 4)."""
    return sigma**2 * T @ T.T


def sds_and_correlations(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations and the correlation matrix of a covariance matrix, or of a stack of
    them (..., k, k) (NaN where an SD is 0)."""
    sds = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / (sds[..., :, None] * sds[..., None, :])
    k = cov.shape[-1]
    corr[..., np.arange(k), np.arange(k)] = 1.0
    return sds, corr


def pca_proportions(T: np.ndarray) -> np.ndarray:
    """Proportion of variance per principal component of a relative covariance factor (or of
    each of a stack of them, (..., k, k) -> (..., k)).

    The singular values d_i of T are the SDs (relative to sigma) of the principal components of
    T T'; the proportions are d_i^2 / sum d^2 (Bates, Kliegl, Vasishth & Baayen 2015,
    "Parsimonious mixed models", lme4's ``rePCA``). Components with proportion ~0 carry no
    variance and point to an overparameterised random-effects structure.
    """
    d = np.linalg.svd(T, compute_uv=False)
    squares = d**2
    total = np.sum(squares, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, squares / total, 0.0)
