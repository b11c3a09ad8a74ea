"""Sandwich variance estimators for OLS, vectorised over replicates that share a design.

All functions take the model matrix ``X`` (n, p), the bread ``M = (X'X)^{-1}`` and a residual
matrix ``E`` (n, R) holding one column per replicate, and return covariance matrices of shape
(R, p, p). The small-sample factors are applied separately from the sandwich, as in
``sandwich::vcovCL`` and ``clubSandwich::vcovCR``.

    V = M (sum_g X_g' W_g e_g e_g' W_g' X_g) M

CR0: W_g = I.  CR1: CR0 x G/(G-1) x (n-1)/(n-p) (Stata, statsmodels, sandwich HC1).
CR2 (Bell & McCaffrey 2002): W_g = (I - H_gg)^{-1/2}, the symmetric inverse square root, a
generalised one where I - H_gg is singular (clubSandwich's convention, Pustejovsky & Tipton
2018): with I - H_gg = V diag(d) V', W_g = V diag(d_k^{-1/2} if d_k > 1e-12 else 0) V'. A
null direction of I - H_gg is one the fit reproduces exactly (a cluster's own fixed effect),
so the residuals e_g have no component along it and setting its weight to 0 loses nothing.
CR3: W_g = (I - H_gg)^{-1}, close to the leave-one-cluster-out jackknife; undefined (InputError)
when I - H_gg is singular (UndefinedAdjustment), since leaving that cluster out leaves a coefficient unidentified.
HC0-HC3 (MacKinnon & White 1985) are the one-observation-per-cluster cases.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

HCType = Literal["HC0", "HC1", "HC2", "HC3"]
CRType = Literal["CR0", "CR1", "CR2", "CR3"]

# Eigenvalues of I - H_gg at or below this count as 0 (clubSandwich's Sym_power tolerance).
NULL_EIGENVALUE = 1e-12


class UndefinedAdjustment(ValueError):
    """CR3's (I - H_gg)^{-1} does not exist: the design, not the data, is at fault."""


def columnwise(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B such that each column of the result is bit-identical whatever B's number of
    columns: einsum's loops sum in a fixed order, while BLAS switches kernels with the width
    (gemv for one column). This keeps a replicate's numbers independent of the chunk size."""
    return np.einsum("ij,jr->ir", A, B)


def bread(X: np.ndarray) -> np.ndarray:
    """M = (X'X)^{-1}; raises ValueError when X does not have full column rank."""
    XtX = X.T @ X
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise ValueError(f"the model matrix has rank {rank} < {X.shape[1]} columns (collinear or constant predictors)")
    return np.linalg.inv(XtX)


def leverages(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Diagonal of the hat matrix H = X M X'."""
    return np.einsum("ip,pq,iq->i", X, M, X)


def sandwich(M: np.ndarray, meat: np.ndarray) -> np.ndarray:
    """M meat M for a stack of meats (R, p, p)."""
    return M @ meat @ M


def vcov_iid(M: np.ndarray, E: np.ndarray, residual_df: int) -> np.ndarray:
    """sigma^2 M with sigma^2 = e'e / (n - p), per replicate."""
    sigma2 = np.einsum("ir,ir->r", E, E) / residual_df
    return sigma2[:, None, None] * M[None, :, :]


def hc_weighted_outer(X: np.ndarray, M: np.ndarray, kind: HCType) -> np.ndarray:
    """The (p*p, n) matrix whose column i is w_i vec(x_i x_i'), with w_i = 1 (HC0, HC1),
    1/(1-h_i) (HC2) or 1/(1-h_i)^2 (HC3) and h the leverages: everything of the HC meat that
    depends on the design alone."""
    n, p = X.shape
    if kind in ("HC0", "HC1"):
        weight = np.ones(n)
    else:
        one_minus_h = 1.0 - leverages(X, M)
        weight = 1.0 / one_minus_h if kind == "HC2" else 1.0 / one_minus_h**2
    return (weight[:, None, None] * X[:, :, None] * X[:, None, :]).reshape(n, p * p).T


def vcov_hc(X: np.ndarray, M: np.ndarray, E: np.ndarray, kind: HCType,
            weighted_outer: np.ndarray | None = None) -> np.ndarray:
    """HC0: e_i^2; HC1: n/(n-p) e_i^2; HC2: e_i^2/(1-h_i); HC3: e_i^2/(1-h_i)^2:
    meat_r = sum_i e_ir^2 w_i x_i x_i', one product of :func:`hc_weighted_outer` (computed here
    when not given) with the squared residuals."""
    n, p = X.shape
    if weighted_outer is None:
        weighted_outer = hc_weighted_outer(X, M, kind)
    meat = columnwise(weighted_outer, E**2).reshape(p, p, -1).transpose(2, 0, 1)
    V = sandwich(M, meat)
    return V * (n / (n - p)) if kind == "HC1" else V


def cluster_indicator(clusters: np.ndarray, n_clusters: int) -> sp.csr_matrix:
    """Sparse G x n matrix S with S[g, i] = 1 when observation i is in cluster g."""
    n = len(clusters)
    return sp.csr_matrix((np.ones(n), (clusters, np.arange(n))), shape=(n_clusters, n))


def cluster_adjustments(X: np.ndarray, M: np.ndarray, clusters: np.ndarray, n_clusters: int, kind: CRType) -> list[np.ndarray] | None:
    """Per-cluster W_g of CR2 ((I - H_gg)^{-1/2}, generalised) or CR3 ((I - H_gg)^{-1}); None
    for CR0/CR1. See the module docstring for the singular case.

    They depend on the design only, so a batch of replicates computes them once.
    """
    if kind in ("CR0", "CR1"):
        return None
    power = -0.5 if kind == "CR2" else -1.0
    adjustments = []
    for g in range(n_clusters):
        Xg = X[clusters == g]
        values, vectors = np.linalg.eigh(np.eye(len(Xg)) - Xg @ M @ Xg.T)
        positive = values > NULL_EIGENVALUE
        if kind == "CR3" and not positive.all():
            raise UndefinedAdjustment(f"I - H_gg is singular for cluster {g}, so CR3 (the leave-one-cluster-out "
                             f"jackknife) is undefined: without that cluster a coefficient is not identified; use CR2")
        weights = np.zeros_like(values)
        weights[positive] = values[positive] ** power
        adjustments.append((vectors * weights) @ vectors.T)
    return adjustments


def adjusted_design(X: np.ndarray, clusters: np.ndarray, adjustments: list[np.ndarray]) -> np.ndarray:
    """The rows of X premultiplied cluster by cluster: W_g X_g on the rows of cluster g.

    W_g is symmetric, so the CR2/CR3 score X_g' W_g e_g equals (W_g X_g)' e_g: the adjustment
    acts on the design once instead of on every replicate's residuals.
    """
    out = np.empty_like(X)
    for g, W in enumerate(adjustments):
        rows = clusters == g
        out[rows] = W @ X[rows]
    return out


def cluster_crossprod(indicator: sp.csr_matrix, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A_g' B_g = sum over the rows i of cluster g of a_i b_i', for every cluster: (G, a, b)
    from A (n, a) and B (n, b), in one sparse product with the cluster indicator."""
    n, a = A.shape
    b = B.shape[1]
    return np.asarray(indicator @ (A[:, :, None] * B[:, None, :]).reshape(n, a * b)).reshape(-1, a, b)


def cluster_scores(X: np.ndarray, E: np.ndarray, indicator: sp.csr_matrix) -> np.ndarray:
    """U[r, g, :] = X_g' e_g for each replicate r (shape R, G, p)."""
    return cluster_crossprod(indicator, X, E).transpose(2, 0, 1)


def cr1_factor(n: int, p: int, n_clusters: int) -> float:
    """The CR1 small-sample factor G/(G-1) * (n-1)/(n-p), p the number of parameters."""
    return n_clusters / (n_clusters - 1) * (n - 1) / (n - p)


def vcov_cr(X: np.ndarray, M: np.ndarray, E: np.ndarray, clusters: np.ndarray, n_clusters: int,
            kind: CRType, adjusted_X: np.ndarray | None = None,
            indicator: sp.csr_matrix | None = None) -> np.ndarray:
    """Cluster-robust covariance (R, p, p) of the given kind; see the module docstring.

    ``adjusted_X`` (CR2/CR3: :func:`adjusted_design` with :func:`cluster_adjustments`) and
    ``indicator`` (:func:`cluster_indicator`) depend on the design only and are computed here
    when not given."""
    n, p = X.shape
    scored = X
    if kind in ("CR2", "CR3"):
        if adjusted_X is None:
            adjusted_X = adjusted_design(X, clusters, cluster_adjustments(X, M, clusters, n_clusters, kind))
        scored = adjusted_X
    if indicator is None:
        indicator = cluster_indicator(clusters, n_clusters)
    U = cluster_scores(scored, E, indicator)
    V = sandwich(M, np.einsum("rgp,rgq->rpq", U, U))
    if kind == "CR1":
        V = V * cr1_factor(n, p, n_clusters)
    return V


def cr2_satterthwaite_df(X: np.ndarray, M: np.ndarray, clusters: np.ndarray, n_clusters: int,
                         adjustments: list[np.ndarray]) -> np.ndarray:
    """Satterthwaite degrees of freedom of each coefficient under CR2 (Bell & McCaffrey 2002;
    Pustejovsky & Tipton 2018, working model Phi = I).

    For coefficient j, let G_j be the n x G matrix whose column g holds W_g X_g M e_j on the rows
    of cluster g, and P_j = (I - H) G_j, so that the CR2 variance is sum_g (p_g' y)^2. Then
        nu_j = (tr B_j)^2 / sum(B_j * B_j),   B_j = P_j' P_j.
    Depends on the design only.
    """
    n, p = X.shape
    df = np.empty(p)
    for j in range(p):
        Gj = np.zeros((n, n_clusters))
        direction = X @ M[:, j]
        for g, W in enumerate(adjustments):
            rows = clusters == g
            Gj[rows, g] = W @ direction[rows]
        Pj = Gj - X @ (M @ (X.T @ Gj))
        B = Pj.T @ Pj
        df[j] = np.trace(B) ** 2 / np.sum(B * B)
    return df
