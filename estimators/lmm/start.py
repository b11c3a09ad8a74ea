"""A starting theta for each replicate from its own data: a two-stage moment estimate.

For term t, regress the OLS residual y* on the term's columns within each level j,

    b_j = (Z_tj'Z_tj)^-1 Z_tj'y*,

and estimate the effects' covariance by the spread of the b_j less their sampling variance
(Swamy 1970; the "two-stage" estimator of random-coefficient models):

    S_t = mean_j b_j b_j' - sigma^2 mean_j (Z_tj'Z_tj)^-1,
    sigma^2 = (y*'y* - sum_j b_j'Z_tj'y*) / (n - p - k_1 l_1)   (within-level residual, term 1).

theta starts at the Cholesky factor of S_t / sigma^2, with eigenvalues clipped so that the
start is positive definite and every diagonal element at least ``floor`` (a column of zeros
is a stationary point of the criterion). Levels whose block Z_tj'Z_tj is near singular (a
slope whose covariate is constant within the level) are left out; a term with fewer than two
usable levels starts at lme4's identity.

Only the replicate's own outcome enters, so a fit does not depend on which other replicates
share its chunk (results are identical for any chunk size). Everything needed is already in
the cross-products: Z_tj'Z_tj are the level-diagonal blocks of Z'Z, and Z_t'y* is in the
outcome products.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from estimators.lmm import levelwise as lw
from estimators.lmm.crossprod import DesignProducts, OutcomeProducts
from estimators.lmm.theta import ThetaLayout

START_FLOOR = 0.1
# Per-level blocks with reciprocal condition number below this are left out of the moments.
RCOND = 1e-8


def level_blocks(products: DesignProducts) -> list[np.ndarray]:
    """Z_tj'Z_tj for every term t as (k_t, k_t, l_t) stacks."""
    blocks = [products.B11]
    for offset, levels, k in products.rest_terms:
        index = offset + np.arange(k)[:, None] * levels + np.arange(levels)[None, :]  # (k, l)
        if sp.issparse(products.BRR):
            rows, cols = np.broadcast_arrays(index[:, None, :], index[None, :, :])
            blocks.append(np.asarray(products.BRR[rows.ravel(), cols.ravel()]).reshape(k, k, levels))
        else:
            blocks.append(products.BRR[index[:, None, :], index[None, :, :]])
    return blocks


def level_scores(products: DesignProducts, outcomes: OutcomeProducts) -> list[np.ndarray]:
    """Z_tj'y* for every term t as (R, k_t, l_t) arrays."""
    scores = [outcomes.Z1y]
    R = outcomes.count
    for offset, levels, k in products.rest_terms:
        scores.append(outcomes.Wy[:, offset:offset + k * levels].reshape(R, k, levels))
    return scores


def moment_start(products: DesignProducts, outcomes: OutcomeProducts, layout: ThetaLayout,
                 floor: float = START_FLOOR) -> np.ndarray:
    """A starting theta (R, n_theta) per replicate (see the module docstring)."""
    R = outcomes.count
    blocks, inverses, usable, sampling = _design_moments(products)
    scores = level_scores(products, outcomes)
    coefficients = [lw.matvec(inv[None], score) for inv, score in zip(inverses, scores)]  # (R, k, l)

    n, p = products.n, products.p
    k1 = blocks[0].shape[1]
    fitted = lw.row_sum(coefficients[0] * scores[0] * usable[0])
    within_df = n - p - k1 * int(usable[0].sum())
    sigma2 = (outcomes.yy - fitted) / within_df if within_df > 0 else outcomes.yy / max(n - p, 1)
    sigma2 = np.maximum(sigma2, 1e-12 * np.maximum(outcomes.yy, 1e-300))

    theta = np.broadcast_to(layout.start(), (R, layout.n_theta)).copy()
    for t, (offset, k) in enumerate(zip(layout.offsets, layout.sizes)):
        used = usable[t]
        count = int(used.sum())
        if count < 2:
            continue
        b = coefficients[t][:, :, used]  # (R, k, count)
        spread = np.empty((R, k, k))
        for a in range(k):
            for c in range(k):  # symmetric to the last bit: the same products, summed alike
                spread[:, a, c] = spread[:, c, a] if c < a else lw.sum_axis(b[:, a] * b[:, c], -1) / count
        relative = (spread - sigma2[:, None, None] * sampling[t][None]) / sigma2[:, None, None]
        rows, cols = layout.lower_positions(k)
        theta[:, offset:offset + len(rows)] = _factor_entries(relative, floor)[:, rows, cols]
    return theta


def _design_moments(products: DesignProducts):
    """What the start takes from the design alone, once per prepared design: the level blocks,
    their inverses, the usable levels and the mean inverse over them per term."""
    cached = products.derived.get("moments")
    if cached is None:
        blocks = level_blocks(products)
        inverses, usable = zip(*(_block_inverses(block) for block in blocks))
        sampling = [inv[:, :, used].mean(axis=-1) if used.sum() >= 2 else None for inv, used in zip(inverses, usable)]
        cached = products.derived["moments"] = blocks, inverses, usable, sampling
    return cached


def _block_inverses(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses of the (k, k, l) blocks and a mask of the well-conditioned ones."""
    k = block.shape[0]
    stacked = np.moveaxis(block, -1, 0)  # (l, k, k)
    eigenvalues = np.linalg.eigvalsh(stacked)
    usable = eigenvalues[:, 0] > RCOND * np.maximum(eigenvalues[:, -1], 1e-300)
    safe = np.where(usable[:, None, None], stacked, np.eye(k))
    return np.moveaxis(np.linalg.inv(safe), 0, -1), usable


def _factor_entries(relative: np.ndarray, floor: float) -> np.ndarray:
    """Lower Cholesky factors of symmetric (R, k, k) matrices made positive definite by
    clipping their eigenvalues below at floor^2, with diagonals at least ``floor``."""
    values, vectors = np.linalg.eigh(relative)
    values = np.maximum(values, floor**2)
    fixed = (vectors * values[:, None, :]) @ np.swapaxes(vectors, -1, -2)
    L = np.linalg.cholesky(fixed)
    diagonal = np.diagonal(L, axis1=1, axis2=2)
    return L * np.where(diagonal < floor, floor / diagonal, 1.0)[:, None, :]
