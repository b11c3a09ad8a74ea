"""The exact gradient of the Laplace deviance of a GLMM with a canonical link, by implicit
differentiation of the conditional modes.

With V = Z Lambda_theta (row i: v_i), eta = X beta + V u, the mode u* solves
g(u) = V's(eta) - u = 0 (s the score of eta, :mod:`.family`), and the Laplace deviance is
f = D(u*) + log |M|, M = V'WV + I (:mod:`.pirls`). For a canonical link (logit, log) the
observed information of eta equals the Fisher weight, ds/d eta = -w, so the Jacobian of g is
-M. For a parameter phi (a beta_k or a theta_j), by the envelope theorem for D and
d log|M| = tr(M^-1 dM),

    df/dphi = -2 s' deta + 2 tr(M^-1 V'W dV) + sum_i w'_i h_i (deta_i + (V du)_i),
    du/dphi = M^-1 (dV's - V'W deta),

with deta = d eta/d phi at fixed u (X_k for beta_k, dV u for theta_j), dV = Z dLambda/dphi,
w'_i = dw_i/d eta_i and h_i = v_i' M^-1 v_i. One adjoint solve z = M^-1 V'(w' h) replaces the
solve for each du, and with e = -2 s + w' h - W V z

    df/dbeta = X'e,
    df/dtheta_j = sum_i x_ir (e_i u_c + s_i z_c + 2 w_i (M^-1 v_i)_c),

where theta_j is entry (r, c) of its term's factor T (eta_i holds x_i' T u of the level of row i),
and u_c, z_c, (M^-1 v_i)_c are the c-th effects of the level of row i in that term. The same
derivation as lme4's gradient-free glmer deviance differentiated by hand; see Bates et al.
(2015, JSS 67(1), section 5) for f and u*, and Magnus & Neudecker (2019, ch. 8) for the
derivative of a log-determinant.

M^-1 v_i is needed only at row i's own effects (k_1 + m_r numbers). With the blocks of
:class:`~.pirls.Factor` (A block-diagonal per level of the first term, B the coupling,
S = C - B A^-1 B' with Cholesky factor L) the block solve of M x = v_i gives
x_2 = S^-1 (v_ri - B A_j^-1 v_1i) and x_1 = A_j^-1 (v_1i - B_j' x_2): one q_r x q_r triangular
solve pair with n right-hand sides, so the gradient needs B held dense (designs where the
rest of the random effects are few: :data:`.pirls.DENSE_COUPLING`); elsewhere, and for probit
links and quadrature, the deviance is differentiated numerically (:mod:`.fit`).
"""
from __future__ import annotations

import numpy as np

from estimators.glmm.pirls import Factor, Laplace, dot_last, row_products
from estimators.lmm.levelwise import row_sum
from estimators.lmm.theta import ThetaLayout


def has_exact_gradient(laplace: Laplace, n_agq: int) -> bool:
    """Whether :func:`laplace_gradient` applies: Laplace (nAGQ = 1), a canonical link, and a
    coupling block held dense (or no term but the first)."""
    return (n_agq == 1 and laplace.family.is_canonical
            and (laplace.q_r == 0 or laplace.scatter.coupling is not None))


def _own_solutions(F: Factor, laplace: Laplace) -> tuple[np.ndarray, np.ndarray]:
    """(M^-1 v_i) at row i's own effects: (b, n, k_1) in the first term, (b, n, m_r) in the rest.

    With K = S^-1 B A^-1 (q_r x q_1) and P = B' S^-1, the block solve of M x = v_i at row i's
    effects (level j of the first term, R_i of the rest) is
    x_2[R_i] = S^-1[R_i, R_i] v_ri - K[R_i, j] v_1i and
    x_1 = A_j^-1 (v_1i - P[j, R_i] v_ri + (B' K)_jj v_1i): products of per-level blocks only."""
    s = laplace.scatter
    inverse = F.first_inverse[:, s.first_index]                            # (b, n, k1, k1)
    if not laplace.q_r:
        return dot_last(inverse, F.v1[:, :, None, :]), np.zeros(F.v_r.shape)
    b, l1, k1 = F.first_inverse.shape[:3]
    q_r = laplace.q_r
    L = F.schur
    S_inv = np.linalg.solve(np.swapaxes(L, 1, 2), np.linalg.solve(L, np.broadcast_to(np.eye(q_r), L.shape)))
    B = F.coupling                                                         # (b, q_r, l1, k1)
    K = (S_inv @ F.coupling_solved.reshape(b, q_r, -1)).reshape(b, q_r, l1, k1)
    P = (np.swapaxes(B.reshape(b, q_r, -1), 1, 2) @ S_inv).reshape(b, l1, k1, q_r)
    BK = np.einsum("bqja,bqjc->bjac", B, K)[:, s.first_index]              # (B' K)_jj per row
    levels, rest = s.first_index[:, None], s.rest_index
    P_own = np.swapaxes(P, 2, 3)[:, levels, rest]                          # (b, n, m_r, k1)
    K_own = K[:, rest, levels]                                             # (b, n, m_r, k1)
    S_own = S_inv[:, rest[:, :, None], rest[:, None, :]]                   # (b, n, m_r, m_r)
    v1, v_r = F.v1, F.v_r
    # A_i v_i for the stacks of small matrices A (b, n, r, c) and vectors v (b, n, c) of the rows
    inner = v1 - dot_last(np.swapaxes(P_own, 2, 3), v_r[:, :, None, :]) + dot_last(BK, v1[:, :, None, :])
    x1 = dot_last(inverse, inner[:, :, None, :])
    x2 = dot_last(S_own, v_r[:, :, None, :]) - dot_last(K_own, v1[:, :, None, :])
    return x1, x2


def laplace_gradient(laplace: Laplace, layout: ThetaLayout, theta: np.ndarray, beta: np.ndarray,
                     cols: np.ndarray, u1: np.ndarray, u_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Laplace deviance f (b,) and its gradient (b, n_theta + p) at the points (theta, beta),
    given their conditional modes u1 (b, l1, k1), u_r (b, q_r) (from :meth:`Laplace.modes`)."""
    s = laplace.scatter
    v1, v_r = laplace.local_values(theta)
    eta = laplace.linear_predictor(row_products(beta, laplace.design.X), v1, v_r, u1, u_r)
    y, m, _ = laplace.responses(cols)
    mu, w, score = laplace.family.weights_and_score(y, m, eta)
    F = laplace.factor(w, v1, v_r)
    D, _ = laplace.penalised(eta, cols, u1, u_r)
    own1, own_r = _own_solutions(F, laplace)
    h = (v1 * own1).sum(axis=2) + (v_r * own_r).sum(axis=2)                # v_i' M^-1 v_i
    a = laplace.family.weight_slope(m, mu) * h
    z1, z_r = F.solve(*laplace.gradient_rhs(a, v1, v_r, np.zeros_like(u1), np.zeros_like(u_r)))
    e = -2.0 * score + a - w * laplace.linear_predictor(0.0, v1, v_r, z1, z_r)
    gradient = np.empty((theta.shape[0], layout.n_theta + beta.shape[1]))
    X = laplace.design.X
    for j in range(X.shape[1]):  # row by row sums (a point's gradient is the same in any batch)
        gradient[:, layout.n_theta + j] = row_sum(e * X[:, j])
    blocks = [(laplace.first.matrix, u1[:, s.first_index], z1[:, s.first_index], own1)]
    column = 0
    for block in laplace.rest:
        index = s.rest_index[:, column:column + block.k]
        blocks.append((block.matrix, u_r[:, index], z_r[:, index], own_r[:, :, column:column + block.k]))
        column += block.k
    for offset, (x, u_rows, z_rows, own), k in zip(layout.offsets, blocks, layout.sizes):
        per_effect = e[:, :, None] * u_rows + score[:, :, None] * z_rows + 2.0 * w[:, :, None] * own  # (b, n, k)
        for position, (r, c) in enumerate(zip(*layout.lower_positions(k))):
            gradient[:, offset + position] = row_sum(x[:, r] * per_effect[:, :, c])
    return D + F.log_det(), gradient
