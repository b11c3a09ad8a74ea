"""Stacks of small matrices, one per batch item and level, with the level axis last.

An array ``A`` of shape (b, r, c, l) holds an r x c matrix for each batch item i and level j in
``A[i, :, :, j]``. A random term has k_t effects per level and k_t is small (1 for an
intercept, 2 for an intercept and a slope), so products, Cholesky factors and inverses are
written out entry by entry: each numpy call then acts on all b * l matrices at once, which is
what makes the level-by-level factorisation of the first diagonal block cheap.

A size-1 batch or level axis broadcasts (e.g. a factor T_t of shape (b, k, k, 1) is shared by
all levels; a design block of shape (1, k, k, l) by all batch items).

Sums go through :func:`sum_axis`, which reduces a C-contiguous copy: numpy's summation order
depends on the memory layout of its input (pairwise along a contiguous axis, sequential
otherwise), and the layout of a temporary can depend on the batch size. Reducing canonical
layouts keeps each replicate's numbers identical whatever batch it is fitted in.
"""
from __future__ import annotations

import numpy as np

# ndarray.sum is np.add.reduce behind two Python-level wrappers; tiny arrays pay for those.
_add = np.add.reduce


def transpose(A: np.ndarray) -> np.ndarray:
    return A.swapaxes(1, 2)


def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(b, r, s, l) @ (b, s, c, l) -> (b, r, c, l), level by level."""
    out = A[:, :, 0:1] * B[:, 0:1]
    for s in range(1, A.shape[2]):
        out = out + A[:, :, s:s + 1] * B[:, s:s + 1]
    return out


def matvec(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(b, r, s, l) @ (b, s, l) -> (b, r, l), level by level."""
    out = A[:, :, 0] * v[:, None, 0]
    for s in range(1, A.shape[2]):
        out = out + A[:, :, s] * v[:, None, s]
    return out


def crossprod(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A' B level by level: (b, r, k, l), (b, r, c, l) -> (b, k, c, l), summing over r."""
    b = max(A.shape[0], B.shape[0])
    k, c, l = A.shape[2], B.shape[2], max(A.shape[3], B.shape[3])
    out = np.empty((b, k, c, l))
    for a in range(k):
        for d in range(c):
            if A is B and d < a:  # A'A is symmetric to the last bit: the same products, summed alike
                out[:, a, d] = out[:, d, a]
            else:
                out[:, a, d] = sum_axis(A[:, :, a] * B[:, :, d], 1)
    return out


def cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor L (L L' = A) of symmetric positive definite (b, k, k, l) stacks."""
    k = A.shape[1]
    L = np.zeros(A.shape)
    for j in range(k):
        d = A[:, j, j] if j == 0 else A[:, j, j] - _short_sum([L[:, j, t] ** 2 for t in range(j)], lambda: L[:, j, :j] ** 2)
        L[:, j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            if j == 0:
                L[:, i, j] = A[:, i, j] / L[:, j, j]
            else:
                products = [L[:, i, t] * L[:, j, t] for t in range(j)]
                L[:, i, j] = (A[:, i, j] - _short_sum(products, lambda: L[:, i, :j] * L[:, j, :j])) / L[:, j, j]
    return L


def lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverse of lower-triangular (b, k, k, l) stacks by forward substitution."""
    k = L.shape[1]
    inv = np.zeros(L.shape)
    for j in range(k):
        inv[:, j, j] = 1.0 / L[:, j, j]
        for i in range(j + 1, k):
            products = [L[:, i, t] * inv[:, t, j] for t in range(j, i)]
            inv[:, i, j] = -_short_sum(products, lambda: L[:, i, j:i] * inv[:, j:i, j]) / L[:, i, i]
    return inv


def _short_sum(terms: list[np.ndarray], stacked) -> np.ndarray:
    """``sum_axis(stacked(), 1)``, the terms being ``stacked()[:, t]``. Fewer than 8 terms are added
    one by one, from 0.0, which is exactly what numpy's reduction does over them (pairwise
    summation starts at 8 terms); this saves the reduction's call overhead on tiny blocks."""
    if len(terms) >= 8:
        return sum_axis(stacked(), 1)
    total = 0.0 + terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def sum_axis(A: np.ndarray, axis: int) -> np.ndarray:
    """``A.sum(axis)`` over a C-contiguous copy (a summation order independent of the batch)."""
    return _add(np.ascontiguousarray(A), axis=axis)


def row_sum(A: np.ndarray) -> np.ndarray:
    """Sum of everything but the batch axis, (b,). Each row is summed as one contiguous vector,
    so its result does not depend on how many rows the batch has."""
    return _add(np.ascontiguousarray(A).reshape(A.shape[0], -1), axis=1)


def diagonal(A: np.ndarray) -> np.ndarray:
    """The diagonals, (b, k, l)."""
    return A.diagonal(axis1=1, axis2=2).swapaxes(1, 2)
