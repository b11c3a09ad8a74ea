"""The Laplace and adaptive Gauss-Hermite deviance of a GLMM for given (theta, beta), with the
conditional modes of the spherical random effects u found by penalised iteratively reweighted
least squares (PIRLS), for a batch of parameter points and outcomes at once.

Model: eta = X beta + Z Lambda_theta u, u ~ N(0, I), y_i | u from the family (Bates, Mächler,
Bolker & Walker 2015, JSS 67(1), section 5 and eq. 6; lme4's ``glmer``). For fixed (theta, beta)
the mode u* minimises the penalised deviance

    D(u) = sum_i -2 log p(y_i | mu_i(u)) + ||u||^2,

and PIRLS takes Fisher-scoring steps  M du = Lambda'Z's - u,  M = Lambda'Z'WZ Lambda + I  (W, s
the IRLS weights and scores at u; :mod:`.family`), halving a step that does not lower D, until
the step is below 1e-13 in the max norm. The Laplace deviance (lme4's nAGQ = 1 objective,
-2 log-likelihood with the family's constants) is

    f(theta, beta) = D(u*) + log |M(u*)|.

M is factored blockwise as in the LMM engine (:mod:`estimators.lmm.cholesky`): the first random
term (most levels) gives a block-diagonal A of one k_1 x k_1 block per level j, the rest a dense
block C and a coupling block B, and

    S = C - B A^-1 B',   log|M| = sum_j log|A_j| + log|S|,
    M x = r:  x_2 = S^-1 (r_2 - B A^-1 r_1),   x_1 = A^-1 (r_1 - B' x_2).

Z is never formed: row i of Z Lambda holds v_i, for each term t x_ti' T_t in the k_t effects of
its level. Every block of M is a sum over rows of w_i v_ia v_ib, and B A^-1 B' a sum over the
pairs of rows (i, i') of one level j of the first term of w_i w_i' (v_1i' A_j^-1 v_1i') v_ri v_ri'
(the sparse coupling of MixedModels.jl's ``BlockedSparse``, never a dense q_r x q_1 block); each
sum is scattered by a sparse 0/1 matrix fixed by the design (:class:`Scatter`). So a
factorisation costs O(n + pairs + q_r^3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from estimators.glmm.family import Family
from estimators.lmm.design import MixedDesign
from estimators.lmm.levelwise import row_sum

# PIRLS stops when the largest Newton step of u is below this (the deviance is then exact to
# rounding: the optimiser and the Hessian differentiate it numerically, and a mode off by d
# moves log|M| by about d).
STEP_TOLERANCE = 1e-13
MAX_PIRLS = 60
MAX_HALVINGS = 12


# B (q_r x q_1) is held dense when it has at most this many cells: then S = C - (B A^-1) B' costs
# q_r^2 q_1 per point, less than the sum over pairs of rows (the crossed 30 x 16 design: 960
# cells against 7,680 pairs); beyond, the pairs.
DENSE_COUPLING = 20_000
DENSE_REST = 64


@dataclass(frozen=True)
class Scatter:
    """Sparse 0/1 matrices summing per-row (and per-pair) products into the blocks of
    M = Lambda'Z'WZ Lambda + I and of Lambda'Z's, a pattern fixed by the design."""

    first_sum: sp.csr_matrix      # (l_1, n): rows of each level of the first term
    rest_vector: sp.csr_matrix    # (q_r, n * m_r): row i's rest effect a -> its index
    rest_block: sp.csr_matrix     # (q_r * q_r, n * m_r * m_r)
    pair_block: sp.csr_matrix     # (q_r * q_r, P * m_r * m_r): pairs of rows of a first-term level
    pairs: tuple[np.ndarray, np.ndarray]
    coupling: sp.csr_matrix | None  # (q_r * q_1, n * m_r * k_1) when B is held dense
    first_index: np.ndarray       # (n,) level of the first term per row
    rest_index: np.ndarray        # (n, m_r) index in the rest block of each rest effect per row


def _indicator(targets: np.ndarray, size: int) -> sp.csr_matrix:
    """The 0/1 matrix (size, len(targets)) adding entry e of a flat vector into targets[e]."""
    targets = targets.reshape(-1)
    return sp.csr_matrix((np.ones(targets.size), (targets, np.arange(targets.size))), shape=(size, targets.size))


def scatter_of(design: MixedDesign) -> Scatter:
    """The design's :class:`Scatter`."""
    n = design.n
    first, rest = design.blocks[0], design.blocks[1:]
    first_sum = _indicator(first.codes, first.n_levels)
    columns, offset = [], 0
    for block in rest:
        columns.append(offset + block.codes[:, None] * block.k + np.arange(block.k)[None, :])
        offset += block.size
    q_r = offset
    rest_index = np.hstack(columns) if columns else np.zeros((n, 0), dtype=np.intp)
    if q_r * first.size <= DENSE_COUPLING and q_r <= DENSE_REST:
        first_cols = first.codes[:, None] * first.k + np.arange(first.k)[None, :]
        coupling = _indicator(rest_index[:, :, None] * first.size + first_cols[:, None, :], q_r * first.size)
        within = rest_index[:, :, None] * q_r + rest_index[:, None, :]
        none = np.zeros(0, dtype=np.intp)
        return Scatter(first_sum, _indicator(rest_index, q_r), _indicator(within, q_r * q_r),
                       _indicator(np.zeros((0, rest_index.shape[1], rest_index.shape[1]), dtype=np.intp), q_r * q_r),
                       (none, none), coupling, first.codes, rest_index)
    order = np.argsort(first.codes, kind="stable")
    counts = np.bincount(first.codes, minlength=first.n_levels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    left, right = [], []
    if q_r:
        for start, count in zip(starts, counts):
            rows = order[start:start + count]
            left.append(np.repeat(rows, count))
            right.append(np.tile(rows, count))
    left = np.concatenate(left) if left else np.zeros(0, dtype=np.intp)
    right = np.concatenate(right) if right else np.zeros(0, dtype=np.intp)
    within = rest_index[:, :, None] * q_r + rest_index[:, None, :]                       # (n, m_r, m_r)
    between = rest_index[left][:, :, None] * q_r + rest_index[right][:, None, :]        # (P, m_r, m_r)
    return Scatter(first_sum, _indicator(rest_index, q_r), _indicator(within, q_r * q_r),
                   _indicator(between, q_r * q_r), (left, right), None, first.codes, rest_index)


@dataclass
class Factor:
    """M = Lambda'Z'WZ Lambda + I of a batch, factored blockwise: A^-1 per level of the first
    term, the Cholesky factor of S, and what the solves need of the rows (w v)."""

    first_inverse: np.ndarray     # (b, l1, k1, k1) A^-1
    first_log_det: np.ndarray     # (b, l1) log |A_j|
    schur: np.ndarray             # (b, q_r, q_r) lower Cholesky factor of S
    wv1: np.ndarray               # (b, n, k1)
    wv_r: np.ndarray              # (b, n, m_r)
    v1: np.ndarray
    v_r: np.ndarray
    scatter: Scatter
    coupling: np.ndarray | None = None  # (b, q_r, l1, k1) B, when held dense
    coupling_solved: np.ndarray | None = None  # (b, q_r, l1 * k1) B A^-1, when B is held dense

    def log_det(self) -> np.ndarray:
        """log |M| (b,)."""
        out = row_sum(self.first_log_det)
        if self.schur.shape[1]:
            out = out + 2.0 * row_sum(np.log(np.diagonal(self.schur, axis1=1, axis2=2)))
        return out

    def solve(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """M x = r for r = (r1 (b, l1, k1), r2 (b, q_r)) by block elimination."""
        a1 = _per_level(self.first_inverse, r1)
        if not self.schur.shape[1]:
            return a1, r2
        s = self.scatter
        b, n, _ = self.v1.shape
        if self.coupling is not None:
            b = r2.shape[0]
            x2 = _cholesky_solve(self.schur, r2 - (self.coupling * a1[:, None]).reshape(b, r2.shape[1], -1).sum(axis=2))
            x1 = _per_level(self.first_inverse, r1 - (self.coupling * x2[:, :, None, None]).sum(axis=1))
            return x1, x2
        along = np.einsum("bna,bna->bn", self.v1, a1[:, s.first_index, :])           # v_1i' A^-1 r_1
        Ba1 = (s.rest_vector @ (self.wv_r * along[:, :, None]).reshape(b, -1).T).T
        x2 = _cholesky_solve(self.schur, r2 - Ba1)
        back = np.einsum("bna,bna->bn", self.v_r, x2[:, s.rest_index])                # v_ri' x_2
        Btx2 = (s.first_sum @ (self.wv1 * back[:, :, None]).transpose(1, 0, 2).reshape(n, -1))
        Btx2 = Btx2.reshape(-1, b, self.v1.shape[2]).transpose(1, 0, 2)
        x1 = _per_level(self.first_inverse, r1 - Btx2)
        return x1, x2


# Below this size the Schur block is solved batched by numpy; above, matrix by matrix by LAPACK's
# triangular solves (numpy has no batched triangular solve, and LU of a triangle costs q^3).
_BATCHED_SOLVE = 48


def _cholesky_solve(L: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """(L L')^-1 rhs for a batch of lower factors L (b, m, m) and rhs (b, m)."""
    if L.shape[1] <= _BATCHED_SOLVE:
        z = np.linalg.solve(L, rhs[..., None])
        return np.linalg.solve(np.swapaxes(L, 1, 2), z)[..., 0]
    return np.stack([la.cho_solve((L[i], True), rhs[i], check_finite=False) for i in range(L.shape[0])])


def _cholesky(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a batch of symmetric positive definite matrices."""
    if S.shape[1] <= _BATCHED_SOLVE:
        return np.linalg.cholesky(S)
    return np.stack([la.cholesky(S[i], lower=True, check_finite=False) for i in range(S.shape[0])])


def _per_level(inverse: np.ndarray, r: np.ndarray) -> np.ndarray:
    """A_j^-1 r_j for every level: inverse (b, l, k, k), r (b, l, k)."""
    return (inverse * r[:, :, None, :]).sum(axis=3)


def _rows_times(x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """x T for one n x k matrix x and a batch of k x k factors T (b, k, k): (b, n, k), summed over
    the k terms in a fixed order."""
    out = x[None, :, 0, None] * T[:, None, 0, :]
    for c in range(1, x.shape[1]):
        out = out + x[None, :, c, None] * T[:, None, c, :]
    return out


def dot_last(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the last axis of a * b, term by term in a fixed order (a few terms)."""
    out = a[..., 0] * b[..., 0]
    for j in range(1, a.shape[-1]):
        out = out + a[..., j] * b[..., j]
    return out


def row_products(beta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """X beta for each row of beta (b, p): (b, n), summed column by column in a fixed order, so
    that a point's numbers do not depend on the batch it is evaluated in (BLAS blocks a matrix
    product by its shape)."""
    out = beta[:, 0:1] * X[None, :, 0]
    for j in range(1, X.shape[1]):
        out = out + beta[:, j:j + 1] * X[None, :, j]
    return out


class Laplace:
    """The deviance of a GLMM on one design, for batches of (theta, beta) and outcome columns.

    ``y`` (n, R) holds the responses (proportions for the binomial, counts for the Poisson),
    ``m`` (n, R) the prior weights (binomial trials; 1 for 0/1 and Poisson responses).
    """

    def __init__(self, design: MixedDesign, family: Family, factors_of, y: np.ndarray, m: np.ndarray):
        self.design, self.family, self.factors_of = design, family, factors_of
        self.scatter = scatter_of(design)
        self.y, self.m = y, m
        self.constant = family.log_constant(y, m)
        self.first, self.rest = design.blocks[0], design.blocks[1:]
        self.q1 = self.first.size
        self.q_r = sum(block.size for block in self.rest)

    # --- Z Lambda, row by row -------------------------------------------------------------
    def local_values(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row i's entries of Z Lambda: (b, n, k_1) for the first term, (b, n, m_r) for the rest."""
        factors = self.factors_of(theta)
        v1 = _rows_times(self.first.matrix, factors[0])
        rest = [_rows_times(block.matrix, T) for block, T in zip(self.rest, factors[1:])]
        v_r = np.concatenate(rest, axis=2) if rest else np.zeros(v1.shape[:2] + (0,))
        return v1, v_r

    def linear_predictor(self, offset: np.ndarray, v1, v_r, u1: np.ndarray, u_r: np.ndarray) -> np.ndarray:
        """eta = X beta + Z Lambda u (b, n) from the spherical effects u1 (b, l1, k1), u_r (b, q_r)."""
        eta = offset + dot_last(v1, u1[:, self.scatter.first_index, :])
        if self.q_r:
            eta = eta + dot_last(v_r, u_r[:, self.scatter.rest_index])
        return eta

    def factor(self, w: np.ndarray, v1: np.ndarray, v_r: np.ndarray) -> Factor:
        """The blockwise factor of M = Lambda'Z'WZ Lambda + I at weights w (b, n)."""
        s = self.scatter
        b, n, k1 = v1.shape
        l1, m_r, q_r = self.first.n_levels, v_r.shape[2], self.q_r
        wv1 = w[:, :, None] * v1
        products = (wv1[:, :, :, None] * v1[:, :, None, :]).reshape(b, n, k1 * k1)
        A = (s.first_sum @ products.transpose(1, 0, 2).reshape(n, b * k1 * k1))
        A = A.reshape(l1, b, k1, k1).transpose(1, 0, 2, 3) + np.eye(k1)
        if k1 == 1:
            inverse, log_det = 1.0 / A, np.log(A[:, :, 0, 0])
        else:
            L11 = np.linalg.cholesky(A)
            log_det = 2.0 * np.log(np.diagonal(L11, axis1=2, axis2=3)).sum(axis=2)  # k1 terms, in order
            inverse = np.linalg.inv(A)
        wv_r = w[:, :, None] * v_r
        if not q_r:
            return Factor(inverse, log_det, np.zeros((b, 0, 0)), wv1, wv_r, v1, v_r, s)
        rest = (wv_r[:, :, :, None] * v_r[:, :, None, :]).reshape(b, n * m_r * m_r)
        C = (s.rest_block @ rest.T).T.reshape(b, q_r, q_r) + np.eye(q_r)
        if s.coupling is not None:
            cross = (wv_r[:, :, :, None] * v1[:, :, None, :]).reshape(b, n * m_r * k1)
            B = (s.coupling @ cross.T).T.reshape(b, q_r, l1, k1)
            BA = B[:, :, :, 0, None] * inverse[:, None, :, 0, :]                 # B A^-1, k1 terms in order
            for c in range(1, k1):
                BA = BA + B[:, :, :, c, None] * inverse[:, None, :, c, :]
            BA = BA.reshape(b, q_r, -1)
            S = C - BA @ np.swapaxes(B.reshape(b, q_r, -1), 1, 2)
            return Factor(inverse, log_det, _cholesky(S), wv1, wv_r, v1, v_r, s, B, BA)
        # B A^-1 B' over pairs of rows of one first-term level: (w_i v_1i)' A_j^-1 (w_i' v_1i').
        left, right = s.pairs
        Aw = np.einsum("bnac,bnc->bna", inverse[:, s.first_index], wv1)
        c = np.einsum("bpa,bpa->bp", wv1[:, left], Aw[:, right])
        pair_products = (c[:, :, None, None] * v_r[:, left, :, None] * v_r[:, right, None, :]).reshape(b, -1)
        S = C - (s.pair_block @ pair_products.T).T.reshape(b, q_r, q_r)
        return Factor(inverse, log_det, _cholesky(S), wv1, wv_r, v1, v_r, s)

    def gradient_rhs(self, score: np.ndarray, v1, v_r, u1, u_r) -> tuple[np.ndarray, np.ndarray]:
        """Lambda'Z's - u, split as the effects (b, l1, k1) and (b, q_r)."""
        s = self.scatter
        b, n, k1 = v1.shape
        sv1 = (score[:, :, None] * v1).transpose(1, 0, 2).reshape(n, b * k1)
        g1 = (s.first_sum @ sv1).reshape(-1, b, k1).transpose(1, 0, 2) - u1
        if not self.q_r:
            return g1, u_r
        g_r = (s.rest_vector @ (score[:, :, None] * v_r).reshape(b, -1).T).T - u_r
        return g1, g_r

    def penalised(self, eta: np.ndarray, cols: np.ndarray, u1, u_r) -> tuple[np.ndarray, np.ndarray]:
        """D(u) (b,) and the per-observation -2 log-likelihoods (b, n)."""
        mu, _ = self.family.mean(eta)
        terms = self.family.minus_two_loglik(*self.responses(cols), mu)
        return row_sum(terms) + row_sum(u1 * u1) + row_sum(u_r * u_r), terms

    def responses(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """y, m and the log-likelihood constant of the outcome columns ``cols``, (b, n) each and
        C-contiguous (so that every reduction over a row runs in the same order in any batch)."""
        return tuple(np.ascontiguousarray(a[:, cols].T) for a in (self.y, self.m, self.constant))

    # --- PIRLS ------------------------------------------------------------------------------
    def modes(self, theta: np.ndarray, beta: np.ndarray, cols: np.ndarray, u1: np.ndarray, u_r: np.ndarray):
        """PIRLS from (u1, u_r) for each point (theta, beta) (b rows, outcome columns ``cols``).

        Returns the modes u1 (b, l1, k1), u_r (b, q_r), D(u*) (b,), log |M(u*)| (b,), a flag of
        the points whose PIRLS converged, log |A_j| per level of the first term (b, l1) and eta (b, n).
        """
        b = theta.shape[0]
        v1, v_r = self.local_values(theta)
        offset = row_products(beta, self.design.X)
        y, m, _ = self.responses(cols)
        u1, u_r = u1.copy(), u_r.copy()
        eta = self.linear_predictor(offset, v1, v_r, u1, u_r)
        D, _ = self.penalised(eta, cols, u1, u_r)
        log_det = np.zeros(b)
        first_log_det = np.zeros(u1.shape[:2])
        converged = np.zeros(b, dtype=bool)
        active = np.arange(b)
        for iteration in range(MAX_PIRLS + 1):
            a = active
            _, w, score = self.family.weights_and_score(y[a], m[a], eta[a])
            F = self.factor(w, v1[a], v_r[a])
            log_det[a], first_log_det[a] = F.log_det(), F.first_log_det
            g1, g_r = self.gradient_rhs(score, v1[a], v_r[a], u1[a], u_r[a])
            d1, d_r = F.solve(g1, g_r)
            size = np.maximum(np.abs(d1).max(axis=(1, 2)), np.abs(d_r).max(axis=1, initial=0.0))
            finished = size < STEP_TOLERANCE
            converged[a[finished]] = True
            go = ~finished
            a, d1, d_r = a[go], d1[go], d_r[go]
            if not a.size or iteration == MAX_PIRLS:
                break
            t = np.ones(a.size)
            for _ in range(MAX_HALVINGS):
                n1, n_r = u1[a] + t[:, None, None] * d1, u_r[a] + t[:, None] * d_r
                eta_new = self.linear_predictor(offset[a], v1[a], v_r[a], n1, n_r)
                D_new, _ = self.penalised(eta_new, cols[a], n1, n_r)
                better = D_new <= D[a] + 1e-12 * np.abs(D[a])
                if better.all():
                    break
                t = np.where(better, t, 0.5 * t)
            u1[a], u_r[a], eta[a], D[a] = n1, n_r, eta_new, D_new
            active = a
        return u1, u_r, D, log_det, converged, first_log_det, eta

    def deviance(self, theta: np.ndarray, beta: np.ndarray, cols: np.ndarray, u1: np.ndarray, u_r: np.ndarray):
        """Laplace deviance f(theta, beta) = D(u*) + log |M(u*)| (b,), the modes and the PIRLS flags."""
        u1, u_r, D, log_det, converged, _, _ = self.modes(theta, beta, cols, u1, u_r)
        return D + log_det, u1, u_r, converged
