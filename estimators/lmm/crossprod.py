"""The cross-products of [Z X y] that the profiled criterion needs, split by what changes.

With A = [Z X y]'[Z X y] (Bates et al. 2015, section 3.4), only Z'y, X'y and y'y depend on the
outcome; Z'Z, Z'X and X'X are fixed by the design and are computed once for every replicate of
a fixed design (the same-design trick: a chunk of replicates shares one prepared model).

The columns are partitioned as [Z_1 | W] with W = [Z_2 ... Z_T X]: Z_1 is the term with the most
levels, and Z_1'Z_1 is block-diagonal (one k_1 x k_1 block per level), so it is stored as a
(k_1, k_1, l_1) stack (:mod:`.levelwise`); W'Z_1 (m x k_1 x l_1) and W'W (m x m) are dense. That is
the partition the blocked Cholesky of :mod:`.cholesky` works on.

Within each term the effects are stored component-major: column a of level j at position
a * l_t + j. (lme4 orders them level-major; the criterion does not depend on the order, and
this one lets every per-level operation run over all levels in one vectorised call.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from estimators.lmm.design import MixedDesign, RandomBlock
from estimators.lmm.sparse import Coupling, use_sparse


@dataclass(frozen=True)
class OutcomeOperators:
    """Z_1', W' (sparse) and the pseudo-inverse of X: what :func:`outcome_products` applies to
    each outcome, kept with the design's products so that a single fit does not rebuild them."""

    Z1t: sp.csr_matrix
    Wt: sp.csr_matrix
    X_pinv: np.ndarray

    @classmethod
    def of(cls, design: MixedDesign, Z1: sp.spmatrix | None = None, W: sp.spmatrix | None = None) -> "OutcomeOperators":
        Z1 = random_block_matrix(design.blocks[0]) if Z1 is None else Z1
        W = rest_matrix(design) if W is None else W
        return cls(Z1.T.tocsr(), W.T.tocsr(), np.linalg.pinv(design.X))


@dataclass(frozen=True)
class DesignProducts:
    """Z_1'Z_1 per level, W'Z_1 and W'W, with the layout of W's random part."""

    n: int
    p: int
    k1: int
    l1: int
    B11: np.ndarray  # (k1, k1, l1)
    BR1: np.ndarray | None  # (m, k1, l1); None when W'Z_1 is held sparse (``coupling``)
    BRR: np.ndarray | sp.csr_matrix  # (m, m); sparse with ``coupling``
    rest_terms: tuple[tuple[int, int, int], ...]  # (offset in W, levels l, k) of terms 2..T
    coupling: Coupling | None = None  # W'Z_1 as a sparse pattern, for large crossed designs
    operators: OutcomeOperators | None = None  # what the outcome products need of the design
    # Quantities of the design alone that later steps compute once (e.g. the start's moments).
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def q_rest(self) -> int:
        """Number of random effects in W (terms 2..T)."""
        return sum(levels * k for _, levels, k in self.rest_terms)


@dataclass(frozen=True)
class OutcomeProducts:
    """Z_1'y*, W'y* and y*'y* for R outcomes (R replicates sharing the design), where
    y* = y - X beta_ols is the OLS residual and ``beta_shift`` = beta_ols.

    Every criterion is invariant under y -> y - X c, and beta-hat(y) = beta-hat(y*) + c; with
    y* the products lose the large common part (an intercept of 800 next to effects of 3), so
    the criterion and its gradient are computed without that cancellation.
    """

    Z1y: np.ndarray  # (R, k1, l1)
    Wy: np.ndarray  # (R, m)
    yy: np.ndarray  # (R,)
    beta_shift: np.ndarray  # (R, p)

    @property
    def count(self) -> int:
        return self.yy.shape[0]

    def take(self, index: np.ndarray) -> "OutcomeProducts":
        return OutcomeProducts(self.Z1y[index], self.Wy[index], self.yy[index], self.beta_shift[index])


def random_block_matrix(block: RandomBlock) -> sp.csr_matrix:
    """Z_t as a sparse n x (k_t l_t) matrix: row i holds x_ti in the columns of level g_t(i),
    column a of level j at position a * l_t + j."""
    n, k = block.matrix.shape
    rows = np.repeat(np.arange(n), k)
    cols = (block.codes[:, None] + block.n_levels * np.arange(k)[None, :]).ravel()
    return sp.csr_matrix((block.matrix.ravel(), (rows, cols)), shape=(n, block.size))


def rest_matrix(design: MixedDesign) -> sp.csr_matrix:
    """W = [Z_2 ... Z_T X] as one sparse matrix."""
    parts = [random_block_matrix(block) for block in design.blocks[1:]]
    parts.append(sp.csr_matrix(design.X))
    return sp.hstack(parts, format="csr")


def design_products(design: MixedDesign) -> DesignProducts:
    """Z_1'Z_1 (per level), W'Z_1 and W'W of a design."""
    first = design.blocks[0]
    k1, l1 = first.k, first.n_levels
    B11 = np.empty((k1, k1, l1))
    for a in range(k1):
        for c in range(k1):
            B11[a, c] = np.bincount(first.codes, first.matrix[:, a] * first.matrix[:, c], minlength=l1)
    Z1 = random_block_matrix(first)
    W = rest_matrix(design)
    C = W.T @ Z1
    if use_sparse(W.shape[1], k1 * l1, C.nnz):
        BRR = sp.csr_matrix(W.T @ W)
        BR1, coupling = None, Coupling.from_matrices(C, k1, l1, BRR)
    else:
        BRR = np.asarray((W.T @ W).todense())
        BR1, coupling = np.asarray(C.todense()).reshape(W.shape[1], k1, l1), None
    rest_terms, offset = [], 0
    for block in design.blocks[1:]:
        rest_terms.append((offset, block.n_levels, block.k))
        offset += block.size
    return DesignProducts(design.n, design.p, k1, l1, B11, BR1, BRR, tuple(rest_terms), coupling,
                          OutcomeOperators.of(design, Z1, W))


def outcome_products(design: MixedDesign, Y: np.ndarray, operators: OutcomeOperators | None = None) -> OutcomeProducts:
    """Z_1'y*, W'y* and y*'y* for each column of Y (n x R), y* the OLS residual of y on X
    (``operators``: the design's :class:`OutcomeOperators`, built here if not given).

    Computed one replicate at a time with matrix-vector products: a matrix product over all R
    columns at once may round differently depending on R (BLAS kernels block the columns), and
    a replicate's numbers must not depend on the chunk it is fitted in.
    """
    Y = np.asarray(Y, dtype=float).reshape(design.n, -1)
    R = Y.shape[1]
    first = design.blocks[0]
    operators = OutcomeOperators.of(design) if operators is None else operators
    Z1t, Wt, X_pinv = operators.Z1t, operators.Wt, operators.X_pinv
    Z1y = np.empty((R, first.k * first.n_levels))
    Wy = np.empty((R, Wt.shape[0]))
    yy = np.empty(R)
    beta_ols = np.empty((R, design.p))
    for r in range(R):
        y = np.ascontiguousarray(Y[:, r])
        beta_ols[r] = X_pinv @ y
        residual = y - design.X @ beta_ols[r]
        Z1y[r] = Z1t @ residual
        Wy[r] = Wt @ residual
        yy[r] = residual @ residual
    return OutcomeProducts(Z1y.reshape(R, first.k, first.n_levels), Wy, yy, beta_ols)
