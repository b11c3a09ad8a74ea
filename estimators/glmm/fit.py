"""Fitting a GLMM: the deviance of (theta, beta) minimised jointly, as glmer's default second
stage (nAGQ >= 1), for many outcome columns of one design at once.

- Start: beta from the GLM without random effects (IRLS from R's ``mustart``), theta at lme4's
  start (identity relative factors).
- Minimisation: BFGS for all replicates in lockstep (:func:`estimators.lmm.optimize.minimize_batch`)
  on f(theta, beta) (:mod:`.pirls`, :mod:`.quadrature`); the PIRLS of a point starts from its
  replicate's last modes. The gradient is exact (:mod:`.gradient`) for the Laplace
  approximation with a canonical link (logit, log) where the coupling block is held dense;
  otherwise (probit, nAGQ > 1, many effects beyond the first term) it is taken by central
  differences (step 1e-5), every perturbed point of every replicate in one PIRLS batch.
  A Newton step on the Hessian H polishes the minimum (kept when it lowers f).
- Covariance: lme4's ``vcov`` for GLMMs (``use.hessian = TRUE``): the fixed-effects block of
  2 H^-1 over (theta, beta). H is the forward difference of the exact gradient (step 1e-6;
  about 1e-6 relative error), or else central differences of f (step 1e-3: lme4's
  ``deriv12`` takes 1e-4, where the rounding of the PIRLS deviance already shows in the fourth
  digit of an SE).
- Flags: singular when a diagonal element of a relative factor is below 1e-4 (lme4's
  ``isSingular``); converged when the optimiser met its criteria or lme4's scaled-gradient
  check passes (``checkConv``: max_i min(|(U^-1 g)_i|, |g_i|) < 0.002, H = U'U), and every
  PIRLS converged; singular fits skip the gradient check, as in lme4.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from estimators.glmm.design import glmm_design
from estimators.glmm.family import Family
from estimators.glmm.gradient import has_exact_gradient, laplace_gradient
from estimators.glmm.pirls import Laplace, row_products
from estimators.glmm.quadrature import agq_deviance
from estimators.lmm.design import MixedDesign
from estimators.lmm.fit import VarianceComponent, theta_names, varcorr_rows
from estimators.lmm.levelwise import row_sum
from estimators.lmm.optimize import hessian_fd, minimize_batch, passes_lme4_gradient_check
from estimators.lmm.theta import ThetaLayout, covariance, sds_and_correlations

GRADIENT_STEP = 1e-5
HESSIAN_STEP = 1e-3
# Forward differences of the exact gradient: truncation error ~ step |f_xxx| / 2, rounding about
# 1e-10 / step (the gradient at a PIRLS mode converged to 1e-13): both near 1e-6 of H.
EXACT_HESSIAN_STEP = 1e-6
MAX_ITER = 200
GLM_ITERATIONS = 50


@dataclass(frozen=True)
class GLMMFit:
    """One fitted GLMM (one outcome column).

    ``minus_two_loglik`` is -2 log L at the optimum with the family's constants (lme4's
    ``-2 * logLik`` for nAGQ = 1; for nAGQ > 1 lme4 drops the saturated part, see
    :mod:`.quadrature`); ``objective`` is lme4's optimised objective (``fit@devcomp$cmp["dev"]``):
    the same number for nAGQ = 1, less the saturated -2 log-likelihood for nAGQ > 1."""

    fixed_names: tuple[str, ...]
    beta: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    theta_names: tuple[str, ...]
    minus_two_loglik: float
    objective: float
    n: int
    converged: bool
    singular: bool
    iterations: int
    components: tuple[VarianceComponent, ...]
    hessian: np.ndarray = field(repr=False, default=None)

    @property
    def log_likelihood(self) -> float:
        return -0.5 * self.minus_two_loglik

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    def aic(self) -> float:
        return self.minus_two_loglik + 2 * (len(self.beta) + len(self.theta))

    def varcorr(self) -> list[tuple[str, str, str, float]]:
        """lme4's ``as.data.frame(VarCorr(fit))`` rows (group, name1, name2, sd or correlation)."""
        return varcorr_rows(self.components)


class GLMMModel:
    """A GLMM design with its family, link and quadrature, for fitting outcome columns."""

    def __init__(self, design: MixedDesign, family: Family, n_agq: int = 1):
        self.design, self.family, self.n_agq = design, family, n_agq
        self.layout = ThetaLayout(tuple(b.k for b in design.blocks))

    @classmethod
    def from_data(cls, formula: str, data, family: Family, n_agq: int = 1):
        design, y, m = glmm_design(formula, data, family.name)
        return cls(design, family, n_agq), y, m

    @property
    def theta_names(self) -> tuple[str, ...]:
        return theta_names(self.design, self.layout)

    def glm_start(self, y: np.ndarray, m: np.ndarray) -> np.ndarray:
        """beta (R, p) of the GLM without random effects, by IRLS (y, m: (n, R))."""
        X = self.design.X
        eta = self.family.start_eta(y, m).T
        beta = np.zeros((y.shape[1], X.shape[1]))
        going = np.ones(y.shape[1], dtype=bool)  # rows stop on their own (a row's start is the same in any batch)
        for _ in range(GLM_ITERATIONS):
            _, w, score = self.family.weights_and_score(y.T[going], m.T[going], eta[going])
            z = eta[going] + score / w
            p = X.shape[1]
            XtWX = np.stack([np.stack([row_sum(w * X[:, i] * X[:, j]) for j in range(p)], axis=-1)
                             for i in range(p)], axis=-2)
            XtWz = np.stack([row_sum(w * z * X[:, i]) for i in range(p)], axis=-1)
            new = np.linalg.solve(XtWX, XtWz[..., None])[..., 0]
            rows = np.flatnonzero(going)
            change = np.max(np.abs(new - beta[rows]), axis=1)
            beta[rows], eta[rows] = new, row_products(new, X)
            going[rows[change < 1e-10]] = False
            if not going.any():
                break
        return beta

    def fit(self, y: np.ndarray, m: np.ndarray) -> list[GLMMFit]:
        """Fit every column of y (n, R), with prior weights m (n, R)."""
        R = y.shape[1]
        laplace = Laplace(self.design, self.family, self.layout.factors, y, m)
        n_theta = self.layout.n_theta
        first = self.design.blocks[0]
        modes = [np.zeros((R, first.n_levels, first.k)), np.zeros((R, laplace.q_r))]
        value = self._value(laplace)
        exact = has_exact_gradient(laplace, self.n_agq)

        def evaluate(points: np.ndarray, rows: np.ndarray):
            """f at the points, from their replicates' last modes, and the new modes."""
            f, u1, u_r, _ = value(points[:, :n_theta], points[:, n_theta:], rows, modes[0][rows], modes[1][rows])
            return f, u1, u_r

        def with_gradient(points: np.ndarray, rows: np.ndarray):
            """f and its gradient at the points (exact, or by central differences), and the modes."""
            f, u1, u_r = evaluate(points, rows)
            if exact:
                _, g = laplace_gradient(laplace, self.layout, points[:, :n_theta], points[:, n_theta:], rows, u1, u_r)
                return f, g, u1, u_r
            b, k = points.shape
            offsets = GRADIENT_STEP * np.eye(k)
            stepped = np.concatenate([points + offsets[i] for i in range(k)] + [points - offsets[i] for i in range(k)])
            f_step, _, _ = evaluate(stepped, np.tile(rows, 2 * k))
            f_step = f_step.reshape(2, k, b)
            return f, ((f_step[0] - f_step[1]) / (2 * GRADIENT_STEP)).T, u1, u_r

        def objective(x: np.ndarray, rows: np.ndarray):
            f, g, u1, u_r = with_gradient(x, rows)
            modes[0][rows], modes[1][rows] = u1, u_r
            return f, g

        x0 = np.hstack([np.broadcast_to(self.layout.start(), (R, n_theta)), self.glm_start(y, m)])
        result = minimize_batch(objective, x0, gtol=1e-6, ftol=1e-14, max_iter=MAX_ITER)
        x, f = result.x, result.f
        if exact:
            hessian, (_, g) = hessian_fd(lambda p, rows: with_gradient(p, rows)[:2], x, step=EXACT_HESSIAN_STEP,
                                         central=False)
        else:
            hessian, g = self.hessian(evaluate, x, f)
        # A Newton step on the Hessian and gradient polishes the minimum; it moves x by about
        # 1e-7, too little to change H or the gradient check, which keep their values at x.
        trial = x - np.linalg.solve(hessian, g[..., None])[..., 0]
        f_trial, u1, u_r = evaluate(trial, np.arange(R))
        better = f_trial < f
        x = np.where(better[:, None], trial, x)
        f = np.where(better, f_trial, f)
        modes[0][better], modes[1][better] = u1[better], u_r[better]
        _, _, _, pirls_ok = value(x[:, :n_theta], x[:, n_theta:], np.arange(R), modes[0], modes[1])
        return self._summaries(laplace, x, f, hessian, g, result, pirls_ok, y, m)

    def _value(self, laplace: Laplace):
        if self.n_agq == 1:
            return lambda theta, beta, rows, u1, u_r: laplace.deviance(theta, beta, rows, u1, u_r)
        return lambda theta, beta, rows, u1, u_r: agq_deviance(laplace, theta, beta, rows, u1, u_r, self.n_agq)

    @staticmethod
    def hessian(evaluate, x: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Central-difference Hessians (R, k, k) and gradients (R, k) of f at the rows of x from
        values alone."""
        R, k = x.shape
        step = HESSIAN_STEP
        E = step * np.eye(k)
        points = [x + E[i] for i in range(k)] + [x - E[i] for i in range(k)]
        pairs = [(i, j) for i in range(k) for j in range(i)]
        for i, j in pairs:
            points += [x + E[i] + E[j], x + E[i] - E[j], x - E[i] + E[j], x - E[i] - E[j]]
        values, _, _ = evaluate(np.concatenate(points), np.tile(np.arange(R), len(points)))
        values = values.reshape(len(points), R)
        H = np.empty((R, k, k))
        for i in range(k):
            H[:, i, i] = (values[i] - 2 * f + values[k + i]) / step**2
        for n, (i, j) in enumerate(pairs):
            a, b, c, d = values[2 * k + 4 * n: 2 * k + 4 * n + 4]
            H[:, i, j] = H[:, j, i] = (a - b - c + d) / (4 * step**2)
        return H, ((values[:k] - values[k:2 * k]) / (2 * step)).T

    def _summaries(self, laplace, x, f, hessian, g, result, pirls_ok, y, m) -> list[GLMMFit]:
        n_theta, p = self.layout.n_theta, self.design.p
        theta = self.layout.rectify(x[:, :n_theta])
        beta = x[:, n_theta:]
        singular = self.layout.is_singular(theta)
        gradient_ok = passes_lme4_gradient_check(g, hessian)
        converged = pirls_ok & (result.converged | gradient_ok | singular)
        saturated = laplace.family.saturated(y, m, laplace.constant).sum(axis=0)
        objective = f - saturated if self.n_agq > 1 else f
        fits = []
        for r in range(x.shape[0]):
            try:
                vcov = 2.0 * np.linalg.inv(hessian[r])[n_theta:, n_theta:]
                vcov = 0.5 * (vcov + vcov.T)
            except np.linalg.LinAlgError:
                vcov = np.full((p, p), np.nan)
            fits.append(GLMMFit(self.design.fixed_names, beta[r], vcov, theta[r], self.theta_names,
                                float(f[r]), float(objective[r]), self.design.n, bool(converged[r]),
                                bool(singular[r]), int(result.iterations[r]), self._components(theta[r]),
                                hessian[r]))
        return fits

    def _components(self, theta: np.ndarray) -> tuple[VarianceComponent, ...]:
        out = []
        for block, T in zip(self.design.blocks, self.layout.factors(theta)):
            sds, cors = sds_and_correlations(covariance(T, 1.0))
            out.append(VarianceComponent(block.group, block.names, sds, cors))
        return tuple(out)
