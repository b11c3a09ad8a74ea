"""The profiled criterion and its gradient from one dense Cholesky factor per evaluation, for
designs with few random effects fitted one replicate at a time.

The blocked factor of :mod:`.cholesky` vectorises over levels and replicates; with one
replicate and q + p of about a hundred its few dozen numpy calls per evaluation cost more than
the arithmetic. Here the whole matrix is factored by LAPACK at once (Bates et al. 2015,
eqs. 18-20 without the partition): with D = blockdiag(Lambda_theta, I_p) and A = [Z X]'[Z X],

    L L' = Omega = D'A D + diag(I_q, 0_p),   l = L^-1 D'[Z X]'y*,   r^2 = y*'y* - |l|^2,
    log|L_theta|^2 = 2 sum_{i<q} log L_ii,    log|R_X|^2 = 2 sum_{i>=q} log L_ii,

[u; beta] = L^-T l, and with D_k = dD/dtheta_k (one entry per level and lower-triangle
position), Sigma the inverse of Omega's leading block (all of it for REML, the first q rows
and columns for ML) and e = y* - [Z X] D [u; beta],

    d log det / d theta_k = 2 tr(D_k' A D Sigma) = 2 sum_{(i, j) in D_k} (A D Sigma)_ij,
    d r^2 / d theta_k     = -2 u' D_k' [Z X]'e   (the envelope theorem, as in :mod:`.cholesky`).

The numbers equal the blocked factor's to rounding (tests/estimators/lmm/test_dense.py); the
optimiser path then differs in the last bits, so the engine uses it only where asked
(``MixedModel.fit(..., dense=True)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from estimators.lmm.criterion import profiled_criterion, profiled_gradient
from estimators.lmm.crossprod import DesignProducts, OutcomeProducts
from estimators.lmm.theta import ThetaLayout


@dataclass(frozen=True)
class DenseSystem:
    """A (dense) design's [Z_1 W]'[Z_1 W] in the blocked order and where theta enters D."""

    A: np.ndarray  # (N, N), N = q + p
    q: int
    base: np.ndarray  # D at theta = 0: the identity on the fixed effects
    positions: np.ndarray  # flat positions in D (N x N) of every theta entry, per level
    which: np.ndarray  # the theta element of each position
    rows: np.ndarray  # positions' rows and columns
    cols: np.ndarray
    n_theta: int

    @classmethod
    def of(cls, products: DesignProducts, layout: ThetaLayout) -> "DenseSystem":
        """The dense matrix of the products (component-major effects, :mod:`.crossprod`) and
        the pattern of D: entry T_t[a, c] at (o_t + a l_t + j, o_t + c l_t + j) per level j."""
        P = products
        k1, l1 = P.k1, P.l1
        q1 = k1 * l1
        m = P.BRR.shape[0]
        N = q1 + m
        A = np.zeros((N, N))
        level = np.arange(l1)
        for a in range(k1):
            for c in range(k1):
                A[a * l1 + level, c * l1 + level] = P.B11[a, c]
        BR1 = P.BR1.reshape(m, q1)
        A[q1:, :q1] = BR1
        A[:q1, q1:] = BR1.T
        A[q1:, q1:] = P.BRR
        terms = [(0, l1, k1)] + [(q1 + offset, levels, k) for offset, levels, k in P.rest_terms]
        rows, cols, which = [], [], []
        for (offset, levels, k), theta_offset in zip(terms, layout.offsets):
            r, c = layout.lower_positions(k)
            for i, (a, b) in enumerate(zip(r, c)):
                rows.append(offset + a * levels + np.arange(levels))
                cols.append(offset + b * levels + np.arange(levels))
                which.append(np.full(levels, theta_offset + i))
        rows, cols, which = np.concatenate(rows), np.concatenate(cols), np.concatenate(which)
        q = q1 + P.q_rest
        base = np.zeros((N, N))
        base[np.arange(q, N), np.arange(q, N)] = 1.0
        return cls(A, q, base, rows * N + cols, which, rows, cols, layout.n_theta)

    def evaluate(self, theta: np.ndarray, c: np.ndarray, yy: float, n: int, p: int, reml: bool):
        """Criterion and gradient (n_theta,) at one theta for the outcome products c = [Z X]'y*
        and yy = y*'y*; NaN where Omega is not numerically positive definite."""
        q, N = self.q, self.A.shape[0]
        D = self.base.copy()
        D.flat[self.positions] = theta[self.which]
        AD = self.A @ D
        Omega = D.T @ AD
        Omega.flat[:q * (N + 1):N + 1] += 1.0
        L, info = lapack.dpotrf(Omega, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            return np.nan, np.full(self.n_theta, np.nan)
        l, _ = lapack.dtrtrs(L, D.T @ c, lower=1)
        r2 = yy - l @ l
        log_diagonal = np.log(L.diagonal())
        logdet_L = 2.0 * log_diagonal[:q].sum()
        logdet_RX = 2.0 * log_diagonal[q:].sum()
        x, _ = lapack.dtrtrs(L, l, lower=1, trans=1)  # [u; beta]
        Ze = (c - AD @ x)[:q]
        nl = N if reml else q
        Linv, _ = lapack.dtrtri(L[:nl, :nl], lower=1)
        # (A D Sigma)_ij = B_i . Linv_j with B = A D Linv' (Sigma = Linv'Linv), at D's pattern only.
        B = AD[:q, :nl] @ Linv.T
        G = np.einsum("ij,ji->i", B[self.rows], Linv[:, self.cols])
        grad_logdet = 2.0 * np.bincount(self.which, G, minlength=self.n_theta)
        grad_r2 = -2.0 * np.bincount(self.which, Ze[self.rows] * x[self.cols], minlength=self.n_theta)
        value = profiled_criterion(logdet_L, logdet_RX, r2, n, p, reml)
        return value, profiled_gradient(grad_logdet, grad_r2, r2, n, p, reml)


def dense_objective(products: DesignProducts, layout: ThetaLayout, outcomes: OutcomeProducts, reml: bool):
    """The profiled criterion and its gradient as a function of (theta rows, replicate rows),
    as ``MixedModel.objective``, one dense factor per row (``products`` without a sparse
    coupling)."""
    system = products.derived.get("dense")
    if system is None:
        system = products.derived["dense"] = DenseSystem.of(products, layout)
    R = outcomes.count
    c = np.concatenate([outcomes.Z1y.reshape(R, -1), outcomes.Wy], axis=1)

    def value_and_gradient(theta: np.ndarray, rows: np.ndarray):
        values = np.empty(len(rows))
        gradients = np.empty((len(rows), system.n_theta))
        for i, (t, r) in enumerate(zip(theta, rows)):
            values[i], gradients[i] = system.evaluate(t, c[r], outcomes.yy[r], products.n, products.p, reml)
        return values, gradients

    return value_and_gradient
