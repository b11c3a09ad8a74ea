"""The Kenward-Roger adjusted covariance of the fixed effects and its denominator df, as pbkrtest
computes them (``vcovAdj``, ``Lb_ddf``, ``KRmodcomp``).

Kenward & Roger (1997), "Small sample inference for fixed effects from restricted maximum
likelihood", Biometrics 53:983-997; Halekoh & Hojsgaard (2014), "A Kenward-Roger approximation
and parametric bootstrap methods for tests in linear mixed models - the R package pbkrtest",
J. Stat. Softw. 59(9), section 3.

The marginal covariance is linear in the covariance parameters gamma: the lower-triangle
entries of each random term's Var(b_tj) = sigma^2 T_t T_t' (column by column, as theta) and the
residual variance sigma^2,

    V = sum_i gamma_i G_i,   G_(t,a,c) = Z_t (E_ac kron I_l) Z_t',   G_residual = I_n,

E_ac the k_t x k_t matrix with ones at (a, c) and (c, a) (pbkrtest's ``LMM_Sigma_G``; the
derivatives of V in a linear parameterisation, so the second-derivative term R_ij of Kenward and
Roger vanishes). With Phi = (X'V^-1 X)^-1 the usual covariance of beta-hat,

    P_i = -X'V^-1 G_i V^-1 X,     Q_ij = X'V^-1 G_i V^-1 G_j V^-1 X,
    I_ij = tr(V^-1 G_i V^-1 G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)   (= tr(Pi G_i Pi G_j), twice
           the expected REML information, Pi = V^-1 - V^-1 X Phi X'V^-1),
    W = 2 I^-1      (a generalised inverse when an eigenvalue of I is below 1e-10 in modulus),
    U = sum_ij W_ij (Q_ij - P_i Phi P_j),
    Phi_A = Phi + 2 Phi U Phi                                      (``vcovAdj``).

For a hypothesis L beta = 0 with q = rank(L) rows, Theta = L'(L Phi L')^-1 L and
u_i = Theta Phi P_i Phi:

    A1 = sum_ij W_ij tr(u_i) tr(u_j),   A2 = sum_ij W_ij tr(u_i u_j),
    B = (A1 + 6 A2) / (2q),   g = ((q + 1) A1 - (q + 4) A2) / ((q + 2) A2),
    c1 = g / (3q + 2(1 - g)),  c2 = (q - g) / (3q + 2(1 - g)),  c3 = (q + 2 - g) / (3q + 2(1 - g)),
    rho = ((1 - A2/q) / (1 - c2 B))^2 (1 + c1 B) / (q (1 - c3 B)),
    m = 4 + (q + 2) / (q rho - 1)                                  (``Lb_ddf``: the df),
    lambda = m (1 - A2/q) / (m - 2)   (1 when |m - 2| < 0.01, as pbkrtest 0.5.2),
    F = lambda (L beta)'(L Phi_A L')^-1 (L beta) / q  against F(q, m)   (``KRmodcomp``).

Every quantity is formed in the q + p dimensions of [Z X] instead of n: with B = Z Lambda,
Omega = B'B + I = L_theta L_theta' and S = Omega^-1, the Woodbury identity gives
sigma^2 V^-1 = I - B S B', and since B'B = Omega - I its powers telescope,

    sigma^(2a) V^-a = I - B (S + S^2 + ... + S^a) B',   tr(V^-2) = (n - q + tr S^2) / sigma^4,

so K'V^-a K (K = [Z X], a = 1, 2, 3) needs only the cross-products [Z X]'[Z X] of the design.
The cost per fit is that of a dense q x q Cholesky factor (q the number of random effects).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from estimators.lmm.crossprod import random_block_matrix
from estimators.lmm.design import MixedDesign
from estimators.lmm.theta import ThetaLayout

# pbkrtest: W = 2 I^-1 when min |eigenvalue(I)| exceeds this, a generalised inverse otherwise.
INFORMATION_CONDITION = 1e-10
# pbkrtest's .divZero: x / y is 1 when both are below this in modulus.
DIV_ZERO_TOLERANCE = 1e-14


@dataclass(frozen=True)
class KenwardRogerDesign:
    """What the adjustment needs of a design: A = [Z X]'[Z X] (Z's terms in the engine's order,
    each component-major) and where each covariance parameter's effects sit in Z."""

    A: np.ndarray  # (q + p, q + p)
    n: int
    q: int
    terms: tuple[tuple[int, int, int], ...]  # (offset in Z, levels l, k) per random term
    layout: ThetaLayout

    @classmethod
    def of(cls, design: MixedDesign, layout: ThetaLayout) -> "KenwardRogerDesign":
        K = sp.hstack([random_block_matrix(block) for block in design.blocks] + [sp.csr_matrix(design.X)], format="csr")
        terms, offset = [], 0
        for block in design.blocks:
            terms.append((offset, block.n_levels, block.k))
            offset += block.size
        return cls(np.asarray((K.T @ K).todense()), design.n, offset, tuple(terms), layout)

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per covariance parameter of the random terms (theta's order), the indices in Z of
        components a and c: G = Z_a Z_c' + Z_c Z_a' (a != c) or Z_a Z_a'."""
        out = []
        for offset, levels, k in self.terms:
            rows, cols = self.layout.lower_positions(k)
            for a, c in zip(rows, cols):
                out.append((offset + a * levels + np.arange(levels), offset + c * levels + np.arange(levels)))
        return out


@dataclass(frozen=True)
class KenwardRoger:
    """The Kenward-Roger quantities of one fit: Phi, Phi_A and the P_i and W that the df need."""

    vcov: np.ndarray  # Phi, (p, p)
    vcov_adjusted: np.ndarray  # Phi_A, (p, p)
    P: np.ndarray  # (g, p, p), g = n_theta + 1
    W: np.ndarray  # (g, g)

    @property
    def std_errors(self) -> np.ndarray:
        """sqrt(diag Phi_A); NaN where a diagonal element is not positive."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.vcov_adjusted))

    def _a1_a2(self, L: np.ndarray) -> tuple[float, float]:
        Phi = self.vcov
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        u = Theta @ Phi @ self.P @ Phi  # (g, p, p)
        traces = np.trace(u, axis1=1, axis2=2)
        A1 = float(traces @ self.W @ traces)
        A2 = float(np.einsum("ij,iab,jba->", self.W, u, u))
        return A1, A2

    def ddf(self, L: np.ndarray) -> float:
        """pbkrtest's ``Lb_ddf``: the Kenward-Roger denominator df of L beta = 0 (q = rows of L)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return _denominator_df(*self._a1_a2(L), L.shape[0])[0]

    def coefficient_df(self) -> np.ndarray:
        """The df of each coefficient's t test (L = e_j), as lmerTest's ``summary(ddf = "Kenward-Roger")``."""
        return np.array([self.ddf(row) for row in np.eye(len(self.vcov))])

    def f_test(self, L: np.ndarray, beta: np.ndarray) -> tuple[float, int, float]:
        """pbkrtest's ``KRmodcomp`` of L beta = 0: the scaled F statistic, q = rank(L) and the df."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = int(np.linalg.matrix_rank(L))
        df, A2 = _denominator_df(*self._a1_a2(L), q)
        scaling = 1.0 if abs(df - 2.0) < 1e-2 else df * (1.0 - A2 / q) / (df - 2.0)
        d = L @ beta
        wald = float(d @ np.linalg.solve(L @ self.vcov_adjusted @ L.T, d))
        return scaling * wald / q, q, df


def _denominator_df(A1: float, A2: float, q: int) -> tuple[float, float]:
    """m of Kenward & Roger (1997), section 4, from A1, A2 and q (pbkrtest's ``Lb_ddf``); and A2."""
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denominator = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denominator, (q - g) / denominator, (q + 2 - g) / denominator
    V0 = 1.0 + c1 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    V1, V2 = 1.0 - c2 * B, 1.0 - c3 * B
    x = 1.0 - A2 / q
    ratio = 1.0 if abs(x) < DIV_ZERO_TOLERANCE and abs(V1) < DIV_ZERO_TOLERANCE else x / V1
    rho = ratio**2 * V0 / (V2 * q)
    return 4.0 + (q + 2) / (q * rho - 1.0), A2


def marginal_products(kr: KenwardRogerDesign, factors: list[np.ndarray], sigma: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """K'V^-1 K, K'V^-2 K, X'V^-3 X and tr(V^-2) at relative factors ``factors`` (T_t, k x k)
    and residual SD ``sigma``, K = [Z X] (the Woodbury forms of the module docstring)."""
    q = kr.q
    C = _times_lambda(kr.A[:, :q], kr.terms, factors)  # K'Z Lambda, (q + p, q)
    Omega = _lambda_t_times(C[:q], kr.terms, factors)
    Omega[np.diag_indices(q)] += 1.0
    Lc = la.cholesky(Omega, lower=True)
    Linv, info = la.lapack.dtrtri(Lc, lower=1)
    if info != 0:
        raise la.LinAlgError("singular Cholesky factor of Lambda'Z'Z Lambda + I")
    D1 = Linv @ C.T  # L^-1 C', so C S C' = D1'D1
    D2 = Linv.T @ D1  # S C', so C S^2 C' = D2'D2
    D3 = Linv @ D2[:, q:]  # C_X S^3 C_X' = D3'D3
    s2 = sigma**2
    CSC, CS2C = D1.T @ D1, D2.T @ D2
    N = (kr.A - CSC) / s2
    M = (kr.A - CSC - CS2C) / s2**2
    AX = kr.A[q:, q:]
    XV3X = (AX - CSC[q:, q:] - CS2C[q:, q:] - D3.T @ D3) / s2**3
    trace_S2 = float(np.sum((Linv.T @ Linv) ** 2))  # tr(S^2) = |S|_F^2, S = L^-T L^-1
    trace_V2 = (kr.n - q + trace_S2) / s2**2
    return N, M, XV3X, trace_V2


def _times_lambda(M: np.ndarray, terms, factors) -> np.ndarray:
    """M Lambda for M with q columns: column c of level j of term t is sum_a M[:, (a, j)] T_t[a, c]."""
    out = np.empty_like(M)
    for (offset, levels, k), T in zip(terms, factors):
        block = M[:, offset:offset + k * levels].reshape(M.shape[0], k, levels)
        out[:, offset:offset + k * levels] = np.einsum("iaj,ac->icj", block, T).reshape(M.shape[0], k * levels)
    return out


def _lambda_t_times(M: np.ndarray, terms, factors) -> np.ndarray:
    """Lambda' M for M with q rows."""
    return _times_lambda(M.T, terms, factors).T.copy()


def _select(M: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(E_ac kron I) M: the rows of component a take those of c and, for a != c, the reverse."""
    out = np.zeros_like(M)
    out[a] = M[c]
    if a[0] != c[0]:
        out[c] = M[a]
    return out


def adjust(kr: KenwardRogerDesign, theta: np.ndarray, sigma: float) -> KenwardRoger:
    """The Kenward-Roger quantities at one REML fit (``theta``, ``sigma``)."""
    q = kr.q
    N, M, XV3X, trace_V2 = marginal_products(kr, kr.layout.factors(theta), sigma)
    NZZ, NZX, NXX = N[:q, :q], N[:q, q:], N[q:, q:]
    MZZ, MZX, MXX = M[:q, :q], M[:q, q:], M[q:, q:]
    Phi = np.linalg.inv(NXX)
    Phi = 0.5 * (Phi + Phi.T)
    params = kr.parameters()
    g = len(params) + 1
    p = Phi.shape[0]

    R = [_select(NZX, a, c) for a, c in params]  # G_i V^-1 X = Z R_i
    EN = [_select(NZZ, a, c) for a, c in params]
    P = np.empty((g, p, p))
    Q = np.empty((g, g, p, p))
    K = np.empty((g, g))
    for i, (a, c) in enumerate(params):
        P[i] = -NZX.T @ R[i]
        NR = NZZ @ R[i]
        for j in range(i, len(params)):
            Q[j, i] = R[j].T @ NR  # X'V^-1 G_j V^-1 G_i V^-1 X
            Q[i, j] = Q[j, i].T
            K[i, j] = K[j, i] = float(np.sum(EN[i] * EN[j].T))
        Q[i, g - 1] = R[i].T @ MZX  # X'V^-1 G_i V^-2 X
        Q[g - 1, i] = Q[i, g - 1].T
        K[i, g - 1] = K[g - 1, i] = float(np.trace(_select(MZZ, a, c)))
    P[g - 1] = -MXX
    Q[g - 1, g - 1] = XV3X
    K[g - 1, g - 1] = trace_V2

    PhiP = Phi @ P  # (g, p, p)
    information = (K - 2.0 * np.einsum("ab,ijab->ij", Phi, Q)
                   + np.einsum("iab,jba->ij", PhiP, PhiP))
    information = 0.5 * (information + information.T)
    condition = np.min(np.abs(np.linalg.eigvalsh(information)))
    W = 2.0 * (np.linalg.inv(information) if condition > INFORMATION_CONDITION else np.linalg.pinv(information))
    W = 0.5 * (W + W.T)
    U = np.einsum("ij,ijab->ab", W, Q) - np.einsum("ij,iab,jbc->ac", W, P, PhiP)
    adjusted = Phi + 2.0 * Phi @ U @ Phi
    return KenwardRoger(Phi, 0.5 * (adjusted + adjusted.T), P, W)


def kenward_roger(model, theta: np.ndarray, sigma: np.ndarray) -> list[KenwardRoger | None]:
    """:func:`adjust` for each row of ``theta`` (R, n_theta) and ``sigma`` (R,) of a REML
    :class:`~estimators.lmm.fit.MixedModel`; None where the fit has no finite optimum or the
    adjustment fails numerically."""
    kr = KenwardRogerDesign.of(model.design, model.layout)
    out: list[KenwardRoger | None] = []
    for t, s in zip(theta, sigma):
        if not (np.all(np.isfinite(t)) and np.isfinite(s) and s > 0):
            out.append(None)
            continue
        try:
            out.append(adjust(kr, t, float(s)))
        except (np.linalg.LinAlgError, la.LinAlgError, ValueError):
            out.append(None)
    return out
