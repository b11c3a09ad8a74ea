"""The blocked Cholesky factor of Omega(theta) for a batch of thetas, and what it yields.

For Lambda = blockdiag(Lambda_1, Lambda_R), D = blockdiag(Lambda, I_p) and the partition
[Z_1 | W | y] of :mod:`.crossprod`, the lower Cholesky factor of

    Omega(theta) = D'[Z X]'[Z X]D + diag(I_q, 0_p)

is computed in two blocks (Bates et al. 2015, eqs. 18-20), the first one level by level:

    L_11 L_11' = Lambda_1' Z_1'Z_1 Lambda_1 + I      (block-diagonal: one k_1 x k_1 factor per level)
    L_R1 = D_R' W'Z_1 Lambda_1 L_11^-T
    L_RR L_RR' = D_R' W'W D_R + diag(I, 0) - L_R1 L_R1'   (dense; its last p rows are R_X')

and the outcome enters through l_1 = L_11^-1 Lambda_1' Z_1'y, l_R = L_RR^-1 (D_R' W'y - L_R1 l_1)
and the penalised residual sum of squares r^2 = y'y - |l_1|^2 - |l_R|^2. Then

    log|L_theta|^2 = 2 sum log diag L_11 + 2 sum log diag L_RR[:q_R],
    log|R_X|^2     = 2 sum log diag L_RR[q_R:],

the spherical random effects and fixed effects solve L'[u; beta] = [l_1; l_R], and
vcov(beta) = sigma^2 (R_X'R_X)^-1.

Every array carries a leading batch axis b: one theta per batch item, each with its own outcome
products, so a chunk of replicates (and finite-difference perturbations) share one pass.
Per-level blocks of term 1 use the (b, k, k, l) layout of :mod:`.levelwise`; W-side blocks
flatten the (k_1, l_1) axes into q_1 so that sums over levels are matrix products.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimators.lmm import levelwise as lw

import scipy.linalg.lapack as sla

try:  # the gufunc behind np.linalg.cholesky, without its checks (NaN factors for matrices that
    # are not positive definite, where np.linalg.cholesky raises)
    from numpy.linalg._umath_linalg import cholesky_lo as _cholesky_gufunc
except ImportError:  # pragma: no cover - another numpy layout
    _cholesky_gufunc = None
from estimators.lmm.crossprod import DesignProducts, OutcomeProducts
from estimators.lmm.sparse import factorize_sparse
from estimators.lmm.theta import ThetaLayout


def _swap(a: np.ndarray) -> np.ndarray:
    return a.swapaxes(-1, -2)


def scale_rest(M: np.ndarray, rest_factors: list[np.ndarray], products: DesignProducts, axis: int,
               transposed: bool = True) -> np.ndarray:
    """D_R' M (``transposed``) or D_R M along ``axis`` (of length m) of M, batch axis first.

    Term t's block holds k_t components of l_t levels; T_t' (or T_t) mixes the components
    level by level: (T' v)_c = sum_a T[a, c] v_a, one (k_t x k_t) @ (k_t x levels...) product
    per batch item. The result has the factors' batch size.
    """
    if not rest_factors:
        return M
    b = rest_factors[0].shape[0]
    M = M if axis == 1 else np.moveaxis(M, axis, 1)
    trailing = M.shape[2:]
    out = np.empty((b,) + M.shape[1:])
    out[:, products.q_rest:] = M[:, products.q_rest:]  # the fixed effects' rows: D_R is I there
    for (offset, levels, k), T in zip(products.rest_terms, rest_factors):
        block = M[:, offset:offset + k * levels].reshape((M.shape[0], k, -1))
        mixed = (_swap(T) if transposed else T) @ block
        out[:, offset:offset + k * levels] = mixed.reshape((b, k * levels) + trailing)
    return out if axis == 1 else np.moveaxis(out, 1, axis)


@dataclass
class BlockedCholesky:
    """The factor at a batch of thetas and the quantities the criterion and its gradient use."""

    products: DesignProducts
    outcomes: OutcomeProducts
    factors: list[np.ndarray]  # T_t per term, (b, k_t, k_t)
    L11: np.ndarray  # (b, k1, k1, l1)
    L11inv: np.ndarray  # (b, k1, k1, l1)
    Ct: np.ndarray  # D_R' W'Z_1, (b, m, k1, l1) (batch axis 1 without later terms)
    LR1: np.ndarray  # (b, m, k1, l1)
    LRR: np.ndarray  # (b, m, m)
    LRRinv: np.ndarray  # (b, m, m)
    l1: np.ndarray  # (b, k1, l1)
    lR: np.ndarray  # (b, m)
    r2: np.ndarray  # (b,)
    B11T1: np.ndarray | None = None  # Z_1'Z_1 T_1 per level, (b, k1, k1, l1)
    DRtBRR: np.ndarray | None = None  # D_R' W'W, (b, m, m), when there are later terms

    @property
    def logdet_L(self) -> np.ndarray:
        """log|L_theta|^2 = log det(Lambda'Z'Z Lambda + I)."""
        q_rest = self.products.q_rest
        diagRR = self.LRR.diagonal(axis1=-2, axis2=-1)[:, :q_rest]
        return 2.0 * (lw.row_sum(np.log(lw.diagonal(self.L11))) + lw.row_sum(np.log(diagRR)))

    @property
    def logdet_RX(self) -> np.ndarray:
        """log|R_X|^2 = log det(X'V^-1 X) with V = Z Lambda Lambda'Z' + I."""
        diagRR = self.LRR.diagonal(axis1=-2, axis2=-1)[:, self.products.q_rest:]
        return 2.0 * lw.row_sum(np.log(diagRR))

    def _flat(self, A: np.ndarray) -> np.ndarray:
        return A.reshape(A.shape[0], A.shape[1], A.shape[2] * A.shape[3])

    def solution(self) -> tuple[np.ndarray, np.ndarray]:
        """Spherical random effects and fixed effects, L'[u; beta] = [l_1; l_R]: (u_1, x_R).

        ``u_1`` is (b, k1, l1); ``x_R`` (b, m) holds u_2..u_T then beta (for y*, see
        :class:`~estimators.lmm.crossprod.OutcomeProducts`).
        """
        x_R = (_swap(self.LRRinv) @ self.lR[:, :, None])[:, :, 0]  # L_RR^-T l_R
        rhs = self.l1 - (_swap(self._flat(self.LR1)) @ x_R[:, :, None]).reshape(self.l1.shape)
        u_1 = lw.matvec(lw.transpose(self.L11inv), rhs)  # L_11^-T per level
        return u_1, x_R

    def fixed_effects(self) -> np.ndarray:
        """beta-hat of the original outcome: the solution for y* plus the OLS shift."""
        return self.solution()[1][:, self.products.q_rest:] + self.outcomes.beta_shift

    def unscaled_fixed_covariance(self) -> np.ndarray:
        """(R_X'R_X)^-1 = R_X^-1 R_X^-T, from the trailing p x p block of L_RR^-1."""
        q_rest = self.products.q_rest
        RXinv_t = self.LRRinv[:, q_rest:, q_rest:]  # inverse of R_X' (lower)
        return _swap(RXinv_t) @ RXinv_t

    def gradients(self, layout: ThetaLayout, include_fixed: bool) -> tuple[np.ndarray, np.ndarray]:
        """d log det / d theta and d r^2 / d theta, each (b, n_theta).

        The log-determinant is log|L_theta|^2 + log|R_X|^2 when ``include_fixed`` (REML) and
        log|L_theta|^2 alone otherwise (ML). With Sigma = Omega^-1 (or the inverse of its
        random-effects block for ML), G = [Z'Z Z'X] D Sigma[:, u] and Lambda_k = dLambda/dtheta_k,

            d log det / d theta_k = 2 tr(Lambda_k' G),
            d r^2 / d theta_k     = -2 u' Lambda_k' Z'e,   e = y - X beta - Z Lambda u

        (the second by the envelope theorem on the penalised least squares problem, Bates et al.
        2015, eq. 14). Only the level-diagonal blocks of G enter, since Lambda_k is block-diagonal.
        """
        P = self.products
        b, m, k1, l1 = self.LR1.shape
        q1 = k1 * l1
        nl = m if include_fixed else P.q_rest
        T1 = self.factors[0][..., None]
        rest_factors = self.factors[1:]

        # Sigma = Omega^-1 in the partition [u_1 | rows :nl of R].
        LRRinv = self.LRRinv[:, :nl, :nl]
        Pf = self._flat(lw.matmul(self.LR1, self.L11inv))[:, :nl]  # L_R1 L_11^-1
        K = LRRinv @ Pf  # (b, nl, q1)
        Kl = K.reshape(b, nl, k1, l1)
        S11 = lw.matmul(lw.transpose(self.L11inv), self.L11inv) + lw.crossprod(Kl, Kl)
        SR1 = -(_swap(LRRinv) @ K)  # (b, nl, q1)
        SRR = _swap(LRRinv) @ LRRinv  # (b, nl, nl)

        grad_logdet = np.zeros((b, layout.n_theta))
        grad_r2 = np.zeros((b, layout.n_theta))
        u_1, x_R = self.solution()
        Ze_1, We = self._residual_products(u_1, x_R)

        # Term 1: G_j = Z_1'Z_1[j] T_1 Sigma_11[j] + (D_R'W'Z_1)[:, j]' Sigma_R1[:, j]
        B11T1 = lw.matmul(P.B11[None], T1) if self.B11T1 is None else self.B11T1
        G1 = lw.matmul(B11T1, S11) + lw.crossprod(self.Ct[:, :nl], SR1.reshape(b, nl, k1, l1))
        rows, cols = layout.lower_positions(k1)
        sl = slice(layout.offsets[0], layout.offsets[0] + len(rows))
        grad_logdet[:, sl] = 2.0 * lw.sum_axis(G1, -1)[:, rows, cols]
        grad_r2[:, sl] = -2.0 * lw.sum_axis(Ze_1[:, rows] * u_1[:, cols], -1)

        if rest_factors:
            BR1T = self._flat(_times_factor(P.BR1, self.factors[0]))  # W'Z_1 Lambda_1, (b, m, q1)
            DRtBRR = scale_rest(P.BRR[None], rest_factors, P, axis=1) if self.DRtBRR is None else self.DRtBRR
            BRRD = _swap(DRtBRR)  # W'W D_R (W'W symmetric)
            for t, ((offset, levels, k), T) in enumerate(zip(P.rest_terms, rest_factors), start=1):
                block = slice(offset, offset + k * levels)
                E1 = BR1T[:, block].reshape(b, k, levels, q1)
                F1 = SR1[:, block].reshape(b, k, levels, q1)
                E2 = BRRD[:, block, :nl].reshape(b, k, levels, nl)
                F2 = SRR[:, block].reshape(b, k, levels, nl)
                rows, cols = layout.lower_positions(k)
                sl = slice(layout.offsets[t], layout.offsets[t] + len(rows))
                G_diag = _per_level_products(E1, F1) + _per_level_products(E2, F2)  # (b, levels, k, k)
                grad_logdet[:, sl] = 2.0 * lw.sum_axis(G_diag[:, :, rows, cols].swapaxes(1, 2), -1)
                u_t = x_R[:, block].reshape(b, k, levels)
                Ze_t = We[:, block].reshape(b, k, levels)
                grad_r2[:, sl] = -2.0 * lw.sum_axis(Ze_t[:, rows] * u_t[:, cols], -1)
        return grad_logdet, grad_r2

    def _residual_products(self, u_1: np.ndarray, x_R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Z_1'e and W'e for e = y* - [Z X] D [u; beta]."""
        P = self.products
        b = u_1.shape[0]
        m, k1, l1 = P.BR1.shape
        BR1f = P.BR1.reshape(m, k1 * l1)
        v1 = lw.matvec(self.factors[0][..., None], u_1)  # b_1 = Lambda_1 u_1, (b, k1, l1)
        vR = scale_rest(x_R, self.factors[1:], P, axis=1, transposed=False)  # [b_R; beta]
        # Stacked (1 x m) products, one per batch item: a single (b x m) product could round
        # differently for different b.
        fitted_1 = lw.matvec(P.B11[None], v1) + (vR[:, None, :] @ BR1f[None])[:, 0].reshape(b, k1, l1)
        fitted_R = (v1.reshape(b, 1, -1) @ BR1f.T[None])[:, 0] + (vR[:, None, :] @ P.BRR[None])[:, 0]
        return self.outcomes.Z1y - fitted_1, self.outcomes.Wy - fitted_R


def _times_factor(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """A T level by level for a design block A (m, k, l) and factors T (b, k, k) shared by the
    levels: (b, m, k, l), one (m l x k) @ (k x k) product per batch item."""
    m, k, levels = A.shape
    rows = np.ascontiguousarray(A.transpose(0, 2, 1)).reshape(m * levels, k)
    return np.ascontiguousarray((rows @ T).reshape(-1, m, levels, k).transpose(0, 1, 3, 2))


def _per_level_products(E: np.ndarray, F: np.ndarray) -> np.ndarray:
    """sum_q E[:, a, j, q] F[:, c, j, q] for each level j, as (b, levels, k, k) matrix products:
    one small product per batch item and level, of operands in one memory layout whatever the
    batch (numpy picks its product kernel by layout), so each item's numbers do not depend on
    the batch."""
    E = np.ascontiguousarray(np.moveaxis(E, 2, 1))
    F = np.ascontiguousarray(np.moveaxis(F, 2, 1))
    return E @ F.swapaxes(-1, -2)


def factorize(products: DesignProducts, outcomes: OutcomeProducts, layout: ThetaLayout, theta: np.ndarray) -> BlockedCholesky:
    """The blocked Cholesky factor at each row of ``theta`` (b, n_theta), with outcome products
    ``outcomes`` aligned with those rows (b replicates)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        if products.coupling is not None:
            return factorize_sparse(products, outcomes, layout, theta)
        return _factorize(products, outcomes, layout, theta)


def _factorize(products: DesignProducts, outcomes: OutcomeProducts, layout: ThetaLayout, theta: np.ndarray) -> BlockedCholesky:
    b = theta.shape[0]
    factors = layout.factors(theta)
    T1, rest_factors = factors[0][..., None], factors[1:]
    P = products
    m, k1, l1 = P.BR1.shape

    B11T1 = lw.matmul(P.B11[None], T1)  # Z_1'Z_1 Lambda_1 per level, also in the gradient
    Omega11 = lw.matmul(lw.transpose(T1), B11T1)
    for a in range(k1):
        Omega11[:, a, a] += 1.0
    L11 = lw.cholesky(Omega11)
    L11inv = lw.lower_inverse(L11)

    # D_R' W'Z_1, shared by the batch (a batch axis of 1 broadcasts) when there is no D_R.
    Ct = scale_rest(P.BR1[None], rest_factors, P, axis=1)
    if rest_factors:  # Ct has the batch's size: the small product first
        LR1 = lw.matmul(Ct, lw.matmul(T1, lw.transpose(L11inv)))  # D_R' W'Z_1 Lambda_1 L_11^-T
    else:
        LR1 = lw.matmul(lw.matmul(Ct, T1), lw.transpose(L11inv))
    LR1f = LR1.reshape(b, m, k1 * l1)

    DRtBRR = scale_rest(P.BRR[None], rest_factors, P, axis=1) if rest_factors else None  # also in the gradient
    OmegaRR = scale_rest(P.BRR[None] if DRtBRR is None else DRtBRR, rest_factors, P, axis=2)
    S = OmegaRR - LR1f @ _swap(LR1f)
    if P.q_rest:
        idx = np.arange(P.q_rest)
        S[:, idx, idx] += 1.0
    LRR = _cholesky_rows(S)
    LRRinv = _lower_inverse(LRR)

    c1 = lw.matvec(lw.transpose(T1), outcomes.Z1y)  # Lambda_1' Z_1'y
    cR = scale_rest(outcomes.Wy, rest_factors, P, axis=1)  # D_R' W'y
    l1v = lw.matvec(L11inv, c1)
    sy = cR - (LR1f @ l1v.reshape(b, -1, 1))[:, :, 0]
    lR = (LRRinv @ sy[:, :, None])[:, :, 0]
    r2 = outcomes.yy - lw.row_sum(l1v**2) - lw.row_sum(lR**2)
    return BlockedCholesky(P, outcomes, factors, L11, L11inv, Ct, LR1, LRR, LRRinv, l1v, lR, r2, B11T1, DRtBRR)


def _cholesky_rows(S: np.ndarray) -> np.ndarray:
    """Cholesky factors of a stack; a row that is not numerically positive definite (an extreme
    trial theta) gets NaNs, which the optimiser rejects, instead of failing the whole batch.

    numpy's own gufunc does exactly that when called directly (np.linalg.cholesky raises
    instead, and its checks cost more than the factorisation of a 2 x 2 block)."""
    if _cholesky_gufunc is not None:
        return _cholesky_gufunc(S, signature="d->d")
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        out = np.full(S.shape, np.nan)
        for r in range(S.shape[0]):
            try:
                out[r] = np.linalg.cholesky(S[r])
            except np.linalg.LinAlgError:
                pass
        return out


def _lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverse of a stack of dense lower-triangular matrices (b, m, m). Up to 3 x 3 by forward
    substitution with the batch as the fast axis (:func:`.levelwise.lower_inverse` on the stack
    seen as levels, written out; the result keeps that memory layout); larger ones by LAPACK's
    triangular inverse ``dtrtri``, one matrix at a time (a quarter of the work of a general
    inverse, and each matrix's result independent of the batch around it)."""
    m = L.shape[-1]
    if m > 3:
        inv = np.array(L, order="C")
        for item in inv:
            # item.T is the upper-triangular U = L' in Fortran order, inverted in place: the
            # memory then holds (U^-1)' = L^-1; the zeros above L's diagonal are not touched.
            _, info = sla.dtrtri(item.T, lower=0, overwrite_c=1)
            if info != 0:  # a zero pivot: no inverse, rejected by the optimiser like a NaN factor
                item[...] = np.nan
        return inv
    inv = np.zeros((m, m, L.shape[0]))
    for j in range(m):
        inv[j, j] = 1.0 / L[:, j, j]
        for i in range(j + 1, m):
            total = 0.0 + L[:, i, j] * inv[j, j]
            for t in range(j + 1, i):
                total = total + L[:, i, t] * inv[t, j]
            inv[i, j] = -total / L[:, i, i]
    return inv.transpose(2, 0, 1)
