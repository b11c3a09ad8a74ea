"""The blocked Cholesky factor with the coupling block W'Z_1 held sparse, for large crossed designs.

With terms sorted by number of levels, the columns split into [Z_1 | W | y] (:mod:`.crossprod`).
When a second factor is crossed with the first (InstEval: 2,972 students x 1,128 lecturers),
W'Z_1 is m x q_1 with at most n non-zeros among its m q_1 cells (95,542 of 3.4 million), and
the dense path of :mod:`.cholesky` spends nearly all its time in products of dense m x q_1
blocks. Here (MixedModels.jl's ``BlockedSparse``; Bates et al. 2015, eqs. 18-20) only the
per-level blocks of term 1 and the m x m block, where the fill-in goes, are dense:

    L_11 L_11' = Lambda_1'Z_1'Z_1 Lambda_1 + I                   (per level, as before)
    L_RR L_RR' = S = D_R'(W'W - U) D_R + diag(I, 0),   U = C Lambda_1 Omega_11^-1 Lambda_1'C'

with C = W'Z_1. U is a weighted Gram matrix of the columns of C,
G(w) = sum_j sum_{a,c} w_j[a, c] C_(a,j) C_(c,j)', here with w_j = T_1 Omega_11,j^-1 T_1'; its
pattern is fixed by the design, so G(w) is one sparse matrix-vector product E w with a matrix
E built once (:class:`Coupling`), and no product of sparse blocks is formed per evaluation.

The gradient needs Sigma = Omega^-1 only through S^-1 (``dpotri`` on L_RR) and the coupling
P = D_R'C Lambda_1 Omega_11^-1 of Sigma_11 = Omega_11^-1 + P'S^-1 P, Sigma_R1 = -S^-1 P:

- theta_k = T_1[a, c]: d log det / d theta_k = 2 sum_j [Omega_11,j^-1 T_1'(Z_1'Z_1)_j][c, a]
  + 2 sum(S_D o G(w_k)) with S_D = D_R S^-1 D_R', w_k,j[a', c'] = A_j[a', c] B_j[c', a],
  A_j = T_1 Omega_11,j^-1, B_j = A_j T_1'(Z_1'Z_1)_j - I. The sum is h.(w_k + w_k') with
  h = E'x, x the lower pattern of S_D: one sparse product for all of term 1's parameters.
- theta_k = T_t[a, c] of a later term: d log det / d theta_k = 2 sum_j [S^-1 D_R'V]_{(c,j),(a,j)},
  V = W'W - U. With scalar later terms (D_R diagonal) only S^-1 on the pattern of V enters.

The criterion, u, beta and r^2 follow from triangular solves and sparse matrix-vector
products. Every quantity equals the dense path's to rounding (tests/estimators/lmm/test_sparse.py).

Replicates and perturbed thetas of a batch are factored one at a time (each costs a dense m x m
Cholesky factor and, with the gradient, its inverse); the arrays returned carry the batch axis
as in :mod:`.cholesky`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp

from estimators.lmm import levelwise as lw
from estimators.lmm.theta import ThetaLayout

# The sparse path is taken when the dense path's products (about m^2 q_1 multiplications per
# evaluation) are large and W'Z_1 is mostly empty. Measured on one core (benchmarks/README.md,
# "Single fits"), crossed (1|s) + (1|i) designs: at m^2 q_1 = 2.6e5 the dense path is 1.4x
# faster, around 1e6-3e6 the two are even (the sparse one ahead in batches of 25), at 6e6 with a
# fifth of the block filled the sparse one is 2.3x (single fits) to 3.2x (batches of 25) faster,
# with half of it filled 0.8-1.5x.
SPARSE_MIN_WORK = 5e6
SPARSE_MAX_DENSITY = 0.25
# Pairs of coupling entries made at a time when the Gram-product matrix is built.
PAIR_CHUNK = 1 << 18


def use_sparse(m: int, q1: int, nnz: int) -> bool:
    """Whether a design whose m x q_1 coupling block W'Z_1 holds ``nnz`` non-zeros takes the
    sparse path."""
    return m > 0 and float(m) * m * q1 >= SPARSE_MIN_WORK and nnz <= SPARSE_MAX_DENSITY * m * q1


@dataclass(frozen=True)
class Coupling:
    """C = W'Z_1 (m x k_1 l_1) as a pattern over (row r, level j) with k_1 values per entry, the
    matrix E of its weighted Gram matrices, and the lower pattern of W'W.

    An entry (r, j) is stored when C[r, (a, j)] is non-zero for some component a (values
    ``values[a]``, explicit zeros for the others); entries are sorted by level, then row.
    G(w), for per-level weights w (k_1, k_1, l_1), has the lower pattern ``lower`` (flat
    positions r m + s of an m x m array, r >= s; ``upper`` the mirrored s m + r) and there the
    values E w: E[(r, s), (a, c, j)] = C[r, (a, j)] C[s, (c, j)], a column of E per (a, c, j)
    holding the pairs of entries of level j.
    """

    m: int
    k1: int
    l1: int
    components: tuple[sp.csr_matrix, ...]  # C_a, (m, l1), one per component a
    gram: sp.csc_matrix  # E, (n_lower, k1 * k1 * l1)
    lower: np.ndarray  # (n_lower,)
    upper: np.ndarray  # (n_lower,)
    half: np.ndarray  # (n_lower,) 1 off the diagonal, 1/2 on it
    crossprod_lower: np.ndarray  # flat positions r m + s (r >= s) of the non-zeros of W'W
    crossprod_values: np.ndarray

    @classmethod
    def from_matrices(cls, C: sp.spmatrix, k1: int, l1: int, BRR: sp.spmatrix) -> "Coupling":
        """The coupling of C = W'Z_1 (m, k1 * l1; columns component-major, a * l1 + j) and the
        lower pattern of W'W (``BRR``)."""
        m = C.shape[0]
        if k1 == 1:  # the pattern is C's own, in column (level) order
            csc = sp.csc_matrix(C)
            csc.sort_indices()
            rows, values = csc.indices.astype(np.int64), csc.data[None].astype(float)
            levels = np.repeat(np.arange(l1, dtype=np.int64), np.diff(csc.indptr))
        else:
            coo = [sp.coo_matrix(C[:, a * l1:(a + 1) * l1]) for a in range(k1)]
            keys = np.unique(np.concatenate([c.col.astype(np.int64) * m + c.row for c in coo]))
            levels, rows = np.divmod(keys, m)
            values = np.zeros((k1, keys.size))
            for a, c in enumerate(coo):
                values[a, np.searchsorted(keys, c.col.astype(np.int64) * m + c.row)] = c.data
        components = tuple(sp.csr_matrix((values[a], (rows, levels)), shape=(m, l1)) for a in range(k1))

        # All pairs (e1, e2) of entries of one level with rows[e1] >= rows[e2] (rows ascend
        # within a level, so e2 runs from the level's first entry to e1), level by level, made
        # in chunks of entries (a design has millions of pairs): first the lower pattern of G
        # through an m x m index map (the dense m x m block is held anyway; this is cheaper
        # than sorting the pairs), then each pair's place in it and its products.
        nnz = rows.size
        starts = np.searchsorted(levels, levels, side="left")
        lengths = np.arange(nnz) - starts + 1
        ends = np.cumsum(lengths)
        n_pairs = int(ends[-1]) if nnz else 0
        kind = np.int32 if max(n_pairs, m * m) < 2**31 else np.int64
        bounds = np.unique(np.concatenate([[0], np.searchsorted(ends, np.arange(PAIR_CHUNK, n_pairs, PAIR_CHUNK)), [nnz]]))
        rows_k = rows.astype(kind)

        def pairs(first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            count = lengths[first:last]
            e1 = np.repeat(np.arange(first, last, dtype=kind), count)
            e2 = np.arange(e1.size, dtype=kind)
            e2 -= np.repeat((np.cumsum(count) - count - starts[first:last]).astype(kind), count)
            flat = rows_k[e1]
            flat *= m
            flat += rows_k[e2]
            return e1, e2, flat

        index = np.zeros(m * m, dtype=kind)
        for first, last in zip(bounds[:-1], bounds[1:]):
            index[pairs(first, last)[2]] = 1
        lower = np.flatnonzero(index)
        index[lower] = np.arange(lower.size, dtype=kind)
        position = np.empty(n_pairs, dtype=kind)
        data = np.empty(k1 * k1 * n_pairs)
        for first, last in zip(bounds[:-1], bounds[1:]):
            e1, e2, flat = pairs(first, last)
            out = slice(ends[first] - lengths[first], ends[last - 1])
            position[out] = index[flat]
            for a in range(k1):
                for c in range(k1):
                    data[(a * k1 + c) * n_pairs:][out] = values[a].take(e1) * values[c].take(e2)
        del index
        per_level = np.bincount(levels, weights=lengths, minlength=l1).astype(np.int64)
        pointer = np.concatenate([[0], np.cumsum(np.tile(per_level, k1 * k1))])
        if k1 > 1:
            position = np.tile(position, k1 * k1)
        gram = sp.csc_matrix((data, position, pointer), shape=(lower.size, k1 * k1 * l1))
        r, s = np.divmod(lower, m)
        B = sp.tril(BRR, format="coo")
        return cls(m, k1, l1, components, gram, lower, s * m + r, np.where(r > s, 1.0, 0.5),
                   B.row.astype(np.int64) * m + B.col, B.data.astype(float))

    def times(self, v: np.ndarray) -> np.ndarray:
        """C v for v (k1, l1): (m,)."""
        out = self.components[0] @ v[0]
        for a in range(1, self.k1):
            out = out + self.components[a] @ v[a]
        return out

    def transpose_times(self, x: np.ndarray) -> np.ndarray:
        """C'x for x (m,): (k1, l1)."""
        return np.stack([component.T @ x for component in self.components])

    def gram_values(self, w: np.ndarray) -> np.ndarray:
        """G(w) on its lower pattern, for per-level weights w (k1, k1, l1)."""
        return self.gram @ np.ascontiguousarray(w).ravel()

    def gram_weights(self, x: np.ndarray) -> np.ndarray:
        """h (k1, k1, l1) with sum(X o G(w)) = h . (w + w') for every w, X symmetric with lower
        pattern values ``x``."""
        return (self.gram.T @ (x * self.half)).reshape(self.k1, self.k1, self.l1)


def rest_diagonal(rest_factors: list[np.ndarray], rest_terms, m: int) -> np.ndarray | None:
    """The diagonal of D_R (m,) of one item when every later term is scalar (k = 1), else None."""
    d = np.ones(m)
    for (offset, levels, k), T in zip(rest_terms, rest_factors):
        if k != 1:
            return None
        d[offset:offset + levels] = T[0, 0]
    return d


def scale_rest(M: np.ndarray, rest_factors: list[np.ndarray], rest_terms, axis: int, transposed: bool = True) -> np.ndarray:
    """D_R' M (``transposed``) or D_R M along ``axis`` of one item's M (no batch axis): term
    t's block mixes its k_t components level by level, (T' v)_c = sum_a T[a, c] v_a."""
    if not rest_factors:
        return M
    M = np.moveaxis(M, axis, 0)
    out = M.copy()
    for (offset, levels, k), T in zip(rest_terms, rest_factors):
        block = M[offset:offset + k * levels].reshape((k, levels) + M.shape[1:])
        for c in range(k):
            total = 0.0
            for a in range(k):
                weight = T[a, c] if transposed else T[c, a]
                total = total + weight * block[a]
            out[offset + c * levels:offset + (c + 1) * levels] = total
    return np.moveaxis(out, 0, axis)


def _row_terms(rest_terms, m: int) -> np.ndarray:
    """For each row of W, its later term's index (1, 2, ...), 0 for the fixed effects."""
    out = np.zeros(m, dtype=np.intp)
    for t, (offset, levels, k) in enumerate(rest_terms, start=1):
        out[offset:offset + k * levels] = t
    return out


@dataclass
class SparseBlockedCholesky:
    """The factor at a batch of thetas with a sparse coupling, with the interface of
    :class:`~estimators.lmm.cholesky.BlockedCholesky`."""

    products: object  # DesignProducts
    outcomes: object  # OutcomeProducts
    factors: list[np.ndarray]  # T_t per term, (b, k_t, k_t)
    L11: np.ndarray  # (b, k1, k1, l1)
    L11inv: np.ndarray  # (b, k1, k1, l1)
    LRR: list[np.ndarray]  # b lower factors (m, m), Fortran order; overwritten by gradients()
    U: list[np.ndarray]  # b lower patterns of U = G(T_1 Omega_11^-1 T_1')
    l1: np.ndarray  # (b, k1, l1)
    lR: np.ndarray  # (b, m)
    r2: np.ndarray  # (b,)
    diagRR: np.ndarray  # (b, m), the diagonals of L_RR
    _cached: dict = field(default_factory=dict, repr=False)

    def _diagonals(self, part: slice) -> np.ndarray:
        return self.diagRR[:, part]

    @property
    def logdet_L(self) -> np.ndarray:
        """log|L_theta|^2 = 2 sum log diag L_11 + 2 sum log diag L_RR[:q_R]."""
        diagRR = self._diagonals(slice(0, self.products.q_rest))
        return 2.0 * (lw.row_sum(np.log(lw.diagonal(self.L11))) + lw.row_sum(np.log(diagRR)))

    @property
    def logdet_RX(self) -> np.ndarray:
        """log|R_X|^2 = 2 sum log diag L_RR[q_R:]."""
        return 2.0 * lw.row_sum(np.log(self._diagonals(slice(self.products.q_rest, None))))

    def _rest(self, i: int) -> list[np.ndarray]:
        return [T[i] for T in self.factors[1:]]

    def solution(self) -> tuple[np.ndarray, np.ndarray]:
        """(u_1 (b, k1, l1), x_R (b, m)) solving L'[u; beta] = [l_1; l_R]:
        x_R = L_RR^-T l_R, u_1 = L_11^-T (l_1 - L_11^-1 T_1' C' D_R x_R)."""
        if "solution" not in self._cached:
            self._cached["solution"] = self._solve()
        return self._cached["solution"]

    def _solve(self) -> tuple[np.ndarray, np.ndarray]:
        P = self.products
        x_R = np.empty(self.lR.shape)
        back = np.empty(self.l1.shape)
        for i, L in enumerate(self.LRR):
            x_R[i] = sl.solve_triangular(L, self.lR[i], lower=True, trans="T", check_finite=False)
            back[i] = P.coupling.transpose_times(scale_rest(x_R[i], self._rest(i), P.rest_terms, 0, transposed=False))
        rhs = self.l1 - lw.matvec(self.L11inv, lw.matvec(lw.transpose(self.factors[0][..., None]), back))
        return lw.matvec(lw.transpose(self.L11inv), rhs), x_R

    def fixed_effects(self) -> np.ndarray:
        """beta-hat of the original outcome: the solution for y* plus the OLS shift."""
        return self.solution()[1][:, self.products.q_rest:] + self.outcomes.beta_shift

    def unscaled_fixed_covariance(self) -> np.ndarray:
        """(R_X'R_X)^-1 with R_X' the trailing p x p block of L_RR."""
        if "covariance" not in self._cached:
            q_rest, p = self.products.q_rest, self.products.p
            out = np.empty((len(self.LRR), p, p))
            for i, L in enumerate(self.LRR):
                inverse = sl.solve_triangular(L[q_rest:, q_rest:], np.eye(p), lower=True, check_finite=False)
                out[i] = inverse.T @ inverse
            self._cached["covariance"] = out
        return self._cached["covariance"]

    def gradients(self, layout: ThetaLayout, include_fixed: bool) -> tuple[np.ndarray, np.ndarray]:
        """d log det / d theta and d r^2 / d theta, each (b, n_theta): the quantities of
        :meth:`~estimators.lmm.cholesky.BlockedCholesky.gradients` (see the module docstring)."""
        key = ("gradients", include_fixed)
        if key in self._cached:
            return self._cached[key]
        if self._cached.get("consumed"):
            raise RuntimeError("the factor was overwritten by an earlier gradients() call")
        # What needs L_RR is computed first: its memory then takes S^-1 (InstEval: 10.7 MB).
        self.solution()
        self.unscaled_fixed_covariance()
        P = self.products
        m = P.coupling.m
        nl = m if include_fixed else P.q_rest
        n_first = layout.sizes[0] * (layout.sizes[0] + 1) // 2
        grad_logdet = np.zeros((len(self.LRR), layout.n_theta))
        self._cached["consumed"] = True
        for i, L in enumerate(self.LRR):
            rest = self._rest(i)
            Sinv = _lower_inverse_block(L, nl)
            if Sinv is None:
                grad_logdet[i] = np.nan
                continue
            d = rest_diagonal(rest, P.rest_terms, m)
            values = self._rest_logdet_diagonal(i, Sinv, d) if d is not None else self._rest_logdet_general(i, Sinv, nl)
            grad_logdet[i, :n_first] = values[0]
            for t in range(1, len(layout.sizes)):
                grad_logdet[i, layout.offsets[t]:layout.offsets[t] + len(values[t])] = values[t]
        self._cached[key] = grad_logdet, self._r2_gradient(layout)
        return self._cached[key]

    def _first_term_logdet(self, i: int, h: np.ndarray) -> np.ndarray:
        """d log det / d T_1[a, c] = 2 sum_j [Omega_11^-1 T_1'B_11]_j[c, a] + 2 h.(w + w'),
        w[a', c', j] = A_j[a', c] B_j[c', a]."""
        P = self.products
        k1, l1 = P.coupling.k1, P.coupling.l1
        T1 = np.broadcast_to(self.factors[0][i:i + 1, ..., None], (1, k1, k1, l1))
        L11inv = self.L11inv[i:i + 1]
        Omega_inv = lw.matmul(lw.transpose(L11inv), L11inv)
        TB = lw.matmul(lw.transpose(T1), P.B11[None])  # T_1'B_11
        A = lw.matmul(T1, Omega_inv)[0]  # T_1 Omega_11^-1
        B = lw.matmul(A[None], TB)[0]
        for a in range(k1):
            B[a, a] -= 1.0
        first = lw.sum_axis(lw.matmul(Omega_inv, TB)[0], -1)
        rows, cols = ThetaLayout.lower_positions(k1)
        out = np.empty(len(rows))
        for index, (a, c) in enumerate(zip(rows, cols)):
            w = A[:, c][:, None, :] * B[:, a][None, :, :]
            out[index] = 2.0 * (first[c, a] + float(np.sum(h * (w + w.transpose(1, 0, 2)))))
        return out

    def _rest_logdet_diagonal(self, i: int, Sinv: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
        """Scalar later terms, D_R = diag(d). Term 1: x = S_D on G's lower pattern. Term t:
        2 sum_{x in t} sum_s S^-1[x, s] d_s V[s, x] with V = W'W - U, from the lower pattern
        of Q = S^-1 o V: an entry (r, s, q) adds q d_s to row r and, off the diagonal, q d_r to
        row s."""
        P = self.products
        coupling = P.coupling
        m = coupling.m
        flat = Sinv.T.reshape(-1)  # C-order view of the Fortran-order inverse: (r, s) at s m + r
        on_gram = flat[coupling.upper]  # S^-1 on G's lower pattern
        r, s = np.divmod(coupling.lower, m)
        h = coupling.gram_weights(on_gram * d[r] * d[s])
        out = [self._first_term_logdet(i, h)]
        terms = _row_terms(P.rest_terms, m)
        rc, sc = np.divmod(coupling.crossprod_lower, m)
        q = np.concatenate([flat[sc * m + rc] * coupling.crossprod_values, -on_gram * self.U[i]])
        rows, cols = np.concatenate([rc, r]), np.concatenate([sc, s])
        total = np.bincount(terms[rows], q * d[cols], minlength=len(P.rest_terms) + 1)
        total += np.bincount(terms[cols], np.where(rows > cols, q * d[rows], 0.0), minlength=len(P.rest_terms) + 1)
        out.extend(np.array([2.0 * total[t]]) for t in range(1, len(P.rest_terms) + 1))
        return out

    def _rest_logdet_general(self, i: int, Sinv: np.ndarray, nl: int) -> list[np.ndarray]:
        """Later terms with several components: S_D and the slabs of S^-1 D_R' densely."""
        P = self.products
        coupling = P.coupling
        rest = self._rest(i)
        full = Sinv + np.tril(Sinv, -1).T
        SD = scale_rest(scale_rest(full, rest, P.rest_terms, 0, transposed=False), rest, P.rest_terms, 1, transposed=False)
        out = [self._first_term_logdet(i, coupling.gram_weights(SD.reshape(-1)[coupling.lower]))]
        V = _crossprod_minus(P, self.U[i])
        for (offset, levels, k), T in zip(P.rest_terms, rest):
            slab = scale_rest(full[offset:offset + k * levels, :nl], rest, P.rest_terms, 1, transposed=False)  # S^-1 D_R'
            rows, cols = ThetaLayout.lower_positions(k)
            values = np.empty(len(rows))
            for index, (a, c) in enumerate(zip(rows, cols)):
                row_c = slab[c * levels:(c + 1) * levels]
                col_a = V[offset + a * levels:offset + (a + 1) * levels, :nl]
                values[index] = 2.0 * float(np.sum(row_c * col_a))
            out.append(values)
        return out

    def _r2_gradient(self, layout: ThetaLayout) -> np.ndarray:
        """d r^2 / d T_t[a, c] = -2 sum_j (Z_t'e)_(a,j) u_(c,j), e = y* - [Z X] D [u; beta]."""
        P = self.products
        coupling = P.coupling
        u_1, x_R = self.solution()
        grad = np.zeros((len(self.LRR), layout.n_theta))
        rows1, cols1 = layout.lower_positions(coupling.k1)
        v1 = lw.matvec(self.factors[0][..., None], u_1)  # Lambda_1 u_1
        for i in range(len(self.LRR)):
            vR = scale_rest(x_R[i], self._rest(i), P.rest_terms, 0, transposed=False)  # [b_R; beta]
            Ze_1 = self.outcomes.Z1y[i] - lw.matvec(P.B11[None], v1[i:i + 1])[0] - coupling.transpose_times(vR)
            We = self.outcomes.Wy[i] - coupling.times(v1[i]) - P.BRR @ vR
            grad[i, :len(rows1)] = -2.0 * np.sum(Ze_1[rows1] * u_1[i][cols1], axis=-1)
            for t, (offset, levels, k) in enumerate(P.rest_terms, start=1):
                rows, cols = layout.lower_positions(k)
                u_t = x_R[i, offset:offset + k * levels].reshape(k, levels)
                Ze_t = We[offset:offset + k * levels].reshape(k, levels)
                grad[i, layout.offsets[t]:layout.offsets[t] + len(rows)] = -2.0 * np.sum(Ze_t[rows] * u_t[cols], axis=-1)
        return grad


def _crossprod_minus(P, U: np.ndarray) -> np.ndarray:
    """W'W - U, dense and symmetric, U given by its lower pattern."""
    coupling = P.coupling
    V = P.BRR.toarray(order="C")
    flat = V.reshape(-1)
    flat[coupling.upper] -= U
    flat[coupling.lower] -= np.where(coupling.half == 1.0, U, 0.0)
    return V


def _lower_inverse_block(L: np.ndarray, nl: int) -> np.ndarray | None:
    """The lower triangle (upper zero) of (L L')^-1 of the leading nl x nl block of L, padded
    with zeros to L's size, in Fortran order; None when L is not a valid factor."""
    m = L.shape[0]
    if nl == m:
        inverse, info = sl.lapack.dpotri(L, lower=1, overwrite_c=1)
        return np.asfortranarray(inverse) if info == 0 else None
    out = np.zeros((m, m), order="F")
    if nl:
        inverse, info = sl.lapack.dpotri(L[:nl, :nl], lower=1)
        if info != 0:
            return None
        out[:nl, :nl] = inverse
    return out


def factorize_sparse(products, outcomes, layout: ThetaLayout, theta: np.ndarray) -> SparseBlockedCholesky:
    """The factor at each row of ``theta`` (b, n_theta), outcome products aligned with it."""
    P = products
    coupling = P.coupling
    k1, m = coupling.k1, coupling.m
    b = theta.shape[0]
    factors = layout.factors(theta)
    T1 = factors[0][..., None]
    Omega11 = lw.matmul(lw.transpose(T1), lw.matmul(P.B11[None], T1))
    for a in range(k1):
        Omega11[:, a, a] += 1.0
    L11 = lw.cholesky(Omega11)
    L11inv = lw.lower_inverse(L11)
    l1v = lw.matvec(L11inv, lw.matvec(lw.transpose(T1), outcomes.Z1y))  # L_11^-1 Lambda_1'Z_1'y
    M = lw.matmul(np.broadcast_to(T1, L11inv.shape), lw.transpose(L11inv))  # T_1 L_11^-T
    W_U = lw.matmul(M, lw.transpose(M))  # T_1 Omega_11^-1 T_1'
    shift = lw.matvec(M, l1v)  # L_R1 l_1 = D_R' C shift
    r, s = np.divmod(coupling.lower, m)
    rB, sB = np.divmod(coupling.crossprod_lower, m)
    upper_B = sB * m + rB
    diagonal = np.arange(P.q_rest) * (m + 1)
    LRR, U, lR = [], [], np.empty((b, m))
    for i in range(b):
        rest = [T[i] for T in factors[1:]]
        d = rest_diagonal(rest, P.rest_terms, m)
        U.append(coupling.gram_values(W_U[i]))
        # S is built transposed, in its upper triangle, so that its transpose is the lower
        # triangle in Fortran order, which LAPACK factors in place.
        if d is not None:
            S = np.zeros((m, m))
            flat = S.reshape(-1)
            flat[upper_B] = coupling.crossprod_values * (d[rB] * d[sB])
            flat[coupling.upper] -= U[i] * (d[r] * d[s])
        else:
            S = _crossprod_minus(P, U[i])
            S = np.ascontiguousarray(scale_rest(scale_rest(S, rest, P.rest_terms, 0), rest, P.rest_terms, 1))
            flat = S.reshape(-1)
        flat[diagonal] += 1.0
        L, info = sl.lapack.dpotrf(S.T, lower=1, clean=1, overwrite_a=1)
        if info != 0:  # not numerically positive definite: an extreme trial theta, rejected
            L = np.full((m, m), np.nan, order="F")
        sy = scale_rest(outcomes.Wy[i] - coupling.times(shift[i]), rest, P.rest_terms, 0)
        lR[i] = sl.solve_triangular(L, sy, lower=True, check_finite=False) if info == 0 else np.nan
        LRR.append(L)
    r2 = outcomes.yy - lw.row_sum(l1v**2) - lw.row_sum(lR**2)
    diagRR = np.array([np.diagonal(L) for L in LRR]).reshape(b, m)
    return SparseBlockedCholesky(P, outcomes, factors, L11, L11inv, LRR, U, l1v, lR, r2, diagRR)
