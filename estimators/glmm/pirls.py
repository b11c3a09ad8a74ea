"""The Laplace and adaptive Gauss-Hermite deviance of a GLMM for given (theta, beta), with the
conditional modes of the spherical random effects u found by penalised iteratively reweighted
least squares (PIRLS), for a batch of parameter points and outcomes at once.

Model: eta = X beta + Z Lambda_theta u, u ~ N(0, I), y_i | u from the family (Bates, Mächler,
Bolker & Walker 2015, JSS 67(1), section 5 and eq. 6; lme4's ``glmer``). For fixed (theta, beta)
the mode u* minimises the penalised deviance

    D(u) = sum_i -2 log p(y_i | mu_i(u)) + ||u||^2,

and PIRLS takes Fisher-scoring steps  M du = Lambda'Z's - u,  M = Lambda'Z'WZ Lambda + I  (W, s
the IRLS weights and scores at u; :mod:`.family`), halving a step that does not lower D, until
the step is below 1e-10 in the max norm. The Laplace deviance (lme4's nAGQ = 1 objective,
-2 log-likelihood with the family's constants) is

    f(theta, beta) = D(u*) + log |M(u*)|.

M is factored blockwise as in the LMM engine (:mod:`estimators.lmm.cholesky`): the first random
term (most levels) gives a block-diagonal A of one k_1 x k_1 block per level, the rest a dense
block C and a coupling block B, so that

    L_11 L_11' = A,   L_21 = B L_11^-T,   S = C - L_21 L_21',   log|M| = 2 sum log diag L_11 + log|S|.

Z is never formed: row i of Z Lambda holds, for each term t, x_ti' T_t in the k_t effects of its
level, and every block of M is a sum over rows of w_i v_ia v_ib scattered by a sparse 0/1
matrix fixed by the design (:class:`Scatter`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from estimators.glmm.family import Family
from estimators.lmm.design import MixedDesign

# PIRLS stops when the largest Newton step of u is below this (the deviance is then exact to
# about 1e-12 relative: the optimiser differentiates it numerically).
STEP_TOLERANCE = 1e-10
MAX_PIRLS = 60
MAX_HALVINGS = 12


@dataclass(frozen=True)
class Scatter:
    """Sparse 0/1 matrices summing per-row products into the blocks of M = Lambda'Z'WZ Lambda + I
    and of Lambda'Z's: rows of the design are summed by level (first term) and by pairs of
    effects (the rest), a pattern fixed by the design."""

    first_sum: sp.csr_matrix      # (l_1, n): rows of each level of the first term
    rest_vector: sp.csr_matrix    # (q_r, n * m_r): row i's rest effect a -> its index
    coupling: sp.csr_matrix       # (q_r * q_1, n * m_r * k_1)
    rest_block: sp.csr_matrix     # (q_r * q_r, n * m_r * m_r)
    first_index: np.ndarray       # (n,) level of the first term per row
    rest_index: np.ndarray        # (n, m_r) index in the rest block of each rest effect per row


def scatter_of(design: MixedDesign) -> Scatter:
    """The design's :class:`Scatter`."""
    n = design.n
    first, rest = design.blocks[0], design.blocks[1:]
    l1, k1 = first.n_levels, first.k
    q1 = l1 * k1
    rows = np.arange(n)
    first_sum = sp.csr_matrix((np.ones(n), (first.codes, rows)), shape=(l1, n))
    columns, offset = [], 0
    for block in rest:
        columns.append(offset + block.codes[:, None] * block.k + np.arange(block.k)[None, :])
        offset += block.size
    q_r = offset
    rest_index = np.hstack(columns) if columns else np.zeros((n, 0), dtype=np.intp)
    m_r = rest_index.shape[1]
    flat = rest_index.reshape(-1)
    rest_vector = sp.csr_matrix((np.ones(n * m_r), (flat, np.arange(n * m_r))), shape=(q_r, n * m_r))
    first_cols = first.codes[:, None] * k1 + np.arange(k1)[None, :]                      # (n, k1)
    target = rest_index[:, :, None] * q1 + first_cols[:, None, :]                        # (n, m_r, k1)
    coupling = sp.csr_matrix((np.ones(target.size), (target.reshape(-1), np.arange(target.size))),
                             shape=(q_r * q1, target.size))
    pairs = rest_index[:, :, None] * q_r + rest_index[:, None, :]                         # (n, m_r, m_r)
    rest_block = sp.csr_matrix((np.ones(pairs.size), (pairs.reshape(-1), np.arange(pairs.size))),
                               shape=(q_r * q_r, pairs.size))
    return Scatter(first_sum, rest_vector, coupling, rest_block, first.codes, rest_index)


@dataclass
class Factor:
    """The blockwise Cholesky factor of M for a batch: L_11^-1 per level, L_21, S's factor."""

    first_inverse: np.ndarray     # (b, l1, k1, k1) L_11^-1
    first_diagonal: np.ndarray    # (b, l1, k1) diag L_11
    coupling: np.ndarray          # (b, q_r, l1, k1) L_21
    schur: np.ndarray             # (b, q_r, q_r) lower Cholesky factor of S

    def log_det(self) -> np.ndarray:
        """log |M| (b,)."""
        out = 2.0 * np.log(self.first_diagonal).sum(axis=(1, 2))
        if self.schur.shape[1]:
            out = out + 2.0 * np.log(np.diagonal(self.schur, axis1=1, axis2=2)).sum(axis=1)
        return out

    def solve(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """M x = r for r = (r1 (b, l1, k1), r2 (b, q_r)) by the block forward and back solves."""
        y1 = np.einsum("bjac,bjc->bja", self.first_inverse, r1)
        if not self.schur.shape[1]:
            return np.einsum("bjca,bjc->bja", self.first_inverse, y1), r2
        b = r2.shape[0]
        rhs = r2 - np.einsum("brjc,bjc->br", self.coupling, y1)
        x2 = _cholesky_solve(self.schur, rhs)
        y1 = y1 - np.einsum("brjc,br->bjc", self.coupling, x2)
        x1 = np.einsum("bjca,bjc->bja", self.first_inverse, y1)
        return x1, x2.reshape(b, -1)


def _cholesky_solve(L: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """(L L')^-1 rhs for a batch of lower factors L (b, m, m) and rhs (b, m)."""
    z = np.linalg.solve(L, rhs[..., None])
    return np.linalg.solve(np.swapaxes(L, 1, 2), z)[..., 0]


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
        v1 = np.einsum("nc,bca->bna", self.first.matrix, factors[0])
        rest = [np.einsum("nc,bca->bna", block.matrix, T) for block, T in zip(self.rest, factors[1:])]
        v_r = np.concatenate(rest, axis=2) if rest else np.zeros(v1.shape[:2] + (0,))
        return v1, v_r

    def linear_predictor(self, offset: np.ndarray, v1, v_r, u1: np.ndarray, u_r: np.ndarray) -> np.ndarray:
        """eta = X beta + Z Lambda u (b, n) from the spherical effects u1 (b, l1, k1), u_r (b, q_r)."""
        eta = offset + np.einsum("bna,bna->bn", v1, u1[:, self.scatter.first_index, :])
        if self.q_r:
            eta = eta + np.einsum("bna,bna->bn", v_r, u_r[:, self.scatter.rest_index])
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
        L11 = np.linalg.cholesky(A)
        inverse = np.linalg.inv(L11)
        diagonal = np.diagonal(L11, axis1=2, axis2=3)
        if not q_r:
            return Factor(inverse, diagonal, np.zeros((b, 0, l1, k1)), np.zeros((b, 0, 0)))
        wv_r = w[:, :, None] * v_r
        cross = (wv_r[:, :, :, None] * v1[:, :, None, :]).reshape(b, n * m_r * k1)
        B = (s.coupling @ cross.T).T.reshape(b, q_r, l1, k1)
        coupling = np.einsum("brja,bjca->brjc", B, inverse)
        rest = (wv_r[:, :, :, None] * v_r[:, :, None, :]).reshape(b, n * m_r * m_r)
        C = (s.rest_block @ rest.T).T.reshape(b, q_r, q_r) + np.eye(q_r)
        flat = coupling.reshape(b, q_r, l1 * k1)
        S = C - flat @ np.swapaxes(flat, 1, 2)
        return Factor(inverse, diagonal, coupling, np.linalg.cholesky(S))

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
        terms = self.family.minus_two_loglik(self.y[:, cols].T, self.m[:, cols].T, mu, self.constant[:, cols].T)
        return terms.sum(axis=1) + (u1 * u1).sum(axis=(1, 2)) + (u_r * u_r).sum(axis=1), terms

    # --- PIRLS ------------------------------------------------------------------------------
    def modes(self, theta: np.ndarray, beta: np.ndarray, cols: np.ndarray, u1: np.ndarray, u_r: np.ndarray):
        """PIRLS from (u1, u_r) for each point (theta, beta) (b rows, outcome columns ``cols``).

        Returns the modes u1 (b, l1, k1), u_r (b, q_r), D(u*) (b,), log |M(u*)| (b,), a flag of
        the points whose PIRLS converged, the first term's diag L_11 (b, l1, k1) and eta (b, n).
        """
        b = theta.shape[0]
        v1, v_r = self.local_values(theta)
        offset = beta @ self.design.X.T
        y, m = self.y[:, cols].T, self.m[:, cols].T
        u1, u_r = u1.copy(), u_r.copy()
        eta = self.linear_predictor(offset, v1, v_r, u1, u_r)
        D, _ = self.penalised(eta, cols, u1, u_r)
        log_det = np.zeros(b)
        diagonal = np.ones_like(u1)
        converged = np.zeros(b, dtype=bool)
        active = np.arange(b)
        for iteration in range(MAX_PIRLS + 1):
            a = active
            _, w, score = self.family.weights_and_score(y[a], m[a], eta[a])
            F = self.factor(w, v1[a], v_r[a])
            log_det[a], diagonal[a] = F.log_det(), F.first_diagonal
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
        return u1, u_r, D, log_det, converged, diagonal, eta

    def deviance(self, theta: np.ndarray, beta: np.ndarray, cols: np.ndarray, u1: np.ndarray, u_r: np.ndarray):
        """Laplace deviance f(theta, beta) = D(u*) + log |M(u*)| (b,), the modes and the PIRLS flags."""
        u1, u_r, D, log_det, converged, _, _ = self.modes(theta, beta, cols, u1, u_r)
        return D + log_det, u1, u_r, converged
