"""Fitting a linear mixed model by profiled REML or ML, for one outcome or a chunk of them.

:class:`MixedModel` holds everything fixed by the design (Z'Z, Z'X, X'X and the theta layout);
:meth:`MixedModel.fit` takes the outcome products of R replicates, minimises the profiled
criterion over theta for all of them at once (:mod:`.optimize`), rectifies the signs of the
relative factors, tests near-zero diagonals against the boundary, and returns one
:class:`MixedFit` per replicate with lme4's summaries.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from estimators.lmm import ftest
from estimators.lmm.cholesky import BlockedCholesky, factorize
from estimators.lmm.criterion import information_criteria, profiled_criterion, profiled_gradient, sigma_hat
from estimators.lmm.crossprod import DesignProducts, OutcomeOperators, OutcomeProducts, design_products, outcome_products
from estimators.lmm.dense import dense_objective
from estimators.lmm.design import MixedDesign
from estimators.lmm.optimize import hessian_fd, inverse_hessian_fd, minimize_batch, passes_lme4_gradient_check
from estimators.lmm.start import moment_start
from estimators.lmm.theta import ThetaLayout, covariance, pca_proportions, sds_and_correlations

# A diagonal element of a relative factor this small is tried at exactly 0 after the fit: the
# criterion is often flat there, and lme4's bounded optimiser lands on the bound itself.
BOUNDARY_PROBE = 1e-2
# The first step of a start without curvature (several random terms: the identity), at most this
# times max(1, |theta|) in each component: the gradient's own scale overshoots, and its
# backtracking costs evaluations (crossed designs, 290 replicates each: 15.1 -> 14.0 evaluations
# per fit with both slopes, 8.9 -> 7.9 with intercepts only, 21.1 -> 20.4 with items between
# subjects; 0.2 helps the first two more and the third less).
FIRST_STEP = 0.3
# Array elements per replicate batch that one pass of the optimiser may touch per array: about
# 1 MiB of float64, so that a pass's temporaries stay in a core's cache (measured on the crossed
# 30 x 20 maximal model: 3.0 ms per replicate in batches of 24-96, 3.5 ms at 250, 3.7 ms at 500).
BATCH_ELEMENTS = 2**17
# Replicates per batch at most: past ~128 the per-call overhead is paid off (seed design:
# 0.23 ms per replicate in batches of 50, 0.20-0.21 at 125-250, 0.23 at 500).
MAX_BATCH = 128


def varcorr_rows(components) -> list[tuple[str, str, str, float]]:
    """lme4's ``as.data.frame(VarCorr(fit))`` rows of the random-effects terms: per term its
    SDs (group, name, "", sd), then its correlations (group, name1, name2, r)."""
    rows: list[tuple[str, str, str, float]] = []
    for component in components:
        rows.extend((component.group, name, "", float(sd)) for name, sd in zip(component.names, component.sds))
        k = len(component.names)
        for c in range(k):
            for r in range(c + 1, k):
                rows.append((component.group, component.names[c], component.names[r], float(component.correlations[r, c])))
    return rows


def theta_names(design: MixedDesign, layout: ThetaLayout) -> tuple[str, ...]:
    """lme4's names of the theta elements: ``group.row`` on a diagonal, ``group.row.column``
    below it (e.g. ``subject.Intercept``, ``subject.X.Intercept``, ``subject.X``)."""
    names = []
    for block in design.blocks:
        rows, cols = layout.lower_positions(block.k)
        for r, c in zip(rows, cols):
            tail = block.names[r] if r == c else f"{block.names[r]}.{block.names[c]}"
            names.append(f"{block.group}.{tail}")
    return tuple(names)


@dataclass(frozen=True)
class VarianceComponent:
    """One random term's covariance: SDs and correlations of its effects (lme4's VarCorr)."""

    group: str
    names: tuple[str, ...]
    sds: np.ndarray
    correlations: np.ndarray


@dataclass(frozen=True)
class MixedFit:
    """A fitted linear mixed model (one replicate)."""

    fixed_names: tuple[str, ...]
    beta: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    sigma: float
    reml: bool
    criterion: float  # REML criterion or deviance, -2 log-likelihood
    n: int
    converged: bool
    singular: bool
    iterations: int
    evaluations: int
    components: tuple[VarianceComponent, ...]
    theta_names: tuple[str, ...] = ()
    pca: dict = field(default_factory=dict)  # grouping factor -> proportions of variance
    # The prepared model and this replicate's outcome products, for tests after the fit.
    model: "MixedModel | None" = field(default=None, repr=False, compare=False)
    outcomes: OutcomeProducts | None = field(default=None, repr=False, compare=False)
    # The optimiser's end point (before the signs are rectified) and its inverse-Hessian
    # approximation: a start for a nested model's fit (``MixedModel.fit(start=...)``).
    optimum: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def log_likelihood(self) -> float:
        return -0.5 * self.criterion

    @property
    def n_params(self) -> int:
        """p + n_theta + 1: lme4's df of logLik."""
        return len(self.beta) + len(self.theta) + 1

    @property
    def aic(self) -> float:
        return information_criteria(self.criterion, self.n, self.n_params)[0]

    @property
    def bic(self) -> float:
        return information_criteria(self.criterion, self.n, self.n_params)[1]

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def anova(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """lmerTest's type III ``anova``: per term of the fixed part, ``term, num_df, den_df, F,
        p_value`` with ``ddf`` ``satterthwaite`` or ``kenward_roger`` (REML fits) (:mod:`.ftest`)."""
        return ftest.fit_anova(self, ddf)

    def contrast(self, L, ddf: str = "satterthwaite") -> pd.DataFrame:
        """The test of L beta = 0 for a matrix L with one column per fixed effect: one row,
        ``estimate, std_error, df, t, p_value`` for a one-row L (lmerTest's ``contest1D``),
        ``num_df, den_df, F, p_value`` for several rows (``contestMD``) (:mod:`.ftest`)."""
        return ftest.fit_contrast(self, L, ddf)

    def varcorr(self) -> list[tuple[str, str, str, float]]:
        """lme4's ``as.data.frame(VarCorr(fit))`` rows (group, name1, name2, sd or correlation):
        SDs then correlations per term, the residual SD last."""
        return [*varcorr_rows(self.components), ("Residual", "", "", float(self.sigma))]


@dataclass(frozen=True)
class MixedModel:
    """A design prepared for fitting: its cross-products and theta layout."""

    design: MixedDesign
    products: DesignProducts
    layout: ThetaLayout
    reml: bool = True

    @classmethod
    def from_design(cls, design: MixedDesign, reml: bool = True) -> "MixedModel":
        return cls(design, design_products(design), ThetaLayout(tuple(b.k for b in design.blocks)), reml)

    @property
    def theta_names(self) -> tuple[str, ...]:
        return theta_names(self.design, self.layout)

    @property
    def batch_size(self) -> int:
        """Replicates to fit in one vectorised batch: as many as keep the largest per-replicate
        arrays, (m + k_1) x q_1 and m x m with m = q_rest + p, within ``BATCH_ELEMENTS``, at
        most ``MAX_BATCH``. A replicate's numbers do not depend on its batch, so this sets the
        speed only."""
        P = self.products
        m = P.BRR.shape[0]
        per_replicate = (m + P.k1) * P.k1 * P.l1 + m * m
        return int(np.clip(BATCH_ELEMENTS // per_replicate, 1, MAX_BATCH))

    def outcomes(self, Y: np.ndarray) -> OutcomeProducts:
        return outcome_products(self.design, Y, self.products.operators)

    def factorize(self, outcomes: OutcomeProducts, theta: np.ndarray, rows: np.ndarray) -> BlockedCholesky:
        return factorize(self.products, outcomes.take(rows), self.layout, theta)

    def criterion(self, F: BlockedCholesky) -> np.ndarray:
        P = self.products
        return profiled_criterion(F.logdet_L, F.logdet_RX, F.r2, P.n, P.p, self.reml)

    def objective(self, outcomes: OutcomeProducts):
        """The profiled criterion and its gradient as a function of (theta rows, replicate rows)."""
        P = self.products

        def value_and_gradient(theta: np.ndarray, rows: np.ndarray):
            F = self.factorize(outcomes, theta, rows)
            value = self.criterion(F)
            grad_logdet, grad_r2 = F.gradients(self.layout, include_fixed=self.reml)
            value_and_gradient.last = theta, rows, F
            return value, profiled_gradient(grad_logdet, grad_r2, F.r2, P.n, P.p, self.reml)

        value_and_gradient.last = None  # (theta, rows, factor) of the latest evaluation
        return value_and_gradient

    def fit(self, outcomes: OutcomeProducts, dense: bool = False,
            start: tuple[np.ndarray, np.ndarray] | None = None) -> list[MixedFit]:
        """Fit every replicate of ``outcomes``.

        Each replicate starts from its own moment estimate of theta (:mod:`.start`), so a
        replicate's fit does not depend on the other replicates of its chunk. With one random
        term that estimate is consistent and usually within a few per cent of the optimum, and
        the BFGS curvature is started from a finite-difference Hessian there (Newton's first
        step; 3 iterations instead of 13 on the seed design). With several terms the moment
        start is rougher (each term's within-level residual also holds the other terms'
        variance) and learning the curvature on the way is cheaper than 2 n_theta extra
        gradient evaluations (measured: 17.2 evaluations per fit with a forward-difference
        Hessian counted, 14.0 without), from a first step of at most ``FIRST_STEP``.

        ``dense``: the optimiser evaluates the criterion from one dense factor per replicate
        (:mod:`.dense`; designs without a sparse coupling), fewer numpy calls for a small
        design fitted one replicate at a time; the boundary probe, the convergence check and
        the summaries still use the blocked factor. ``start``: (theta (R, n_theta), inverse
        Hessians (R, n_theta, n_theta)) to start from instead of the moment estimate, e.g. a
        nested model's optimum and curvature (:attr:`MixedFit.optimum`; the LRT's fit
        without a fixed effect).
        """
        if dense and self.products.coupling is not None:
            raise ValueError("dense: this design's W'Z_1 is held sparse (a large crossed design); fit it without dense")
        objective = self.objective(outcomes)
        search = dense_objective(self.products, self.layout, outcomes, self.reml) if dense else objective
        H0 = exact = at_x0 = None
        if start is not None:
            x0, H0 = start
        else:
            x0 = moment_start(self.products, outcomes, self.layout)
            if len(self.design.blocks) == 1:  # x0 itself is evaluated in the same call
                H0, exact, at_x0 = inverse_hessian_fd(search, x0, centre=True)
        result = minimize_batch(search, x0, H0, exact, start=at_x0, first_step=FIRST_STEP if H0 is None else None)
        theta = self._probe_boundary(outcomes, self.layout.rectify(result.x), result.f)
        converged = self._converged(objective, result, theta)
        # The latest evaluation is often the optimum itself: its factor serves the summaries
        # (a row's numbers do not depend on the batch it was evaluated in).
        factor = None
        if objective.last is not None:
            last_theta, last_rows, factor = objective.last
            if not (np.array_equal(last_rows, np.arange(len(theta))) and np.array_equal(last_theta, theta)):
                factor = None
        return self._summaries(outcomes, theta, result, converged, factor)

    def without_fixed(self, column: int) -> "MixedModel":
        """The model without fixed-effect ``column`` (the null model of an LRT), its products
        taken from this model's by dropping the column's row and column of W (bitwise those of
        a rebuild, :meth:`from_design`; rebuilt for a sparse coupling)."""
        design = self.design.without_fixed(column)
        P = self.products
        if P.coupling is not None:
            return MixedModel.from_design(design, self.reml)
        keep = np.delete(np.arange(P.BRR.shape[0]), P.q_rest + column)
        operators = OutcomeOperators(P.operators.Z1t, P.operators.Wt[keep], np.linalg.pinv(design.X))
        # The start's level moments (``derived["moments"]``) depend on the random part only.
        derived = {"moments": P.derived["moments"]} if "moments" in P.derived else {}
        m, k1, l1 = P.BR1.shape
        BR1 = _same_layout(P.BR1.reshape(m, k1 * l1), P.BR1.reshape(m, k1 * l1)[keep]).reshape(len(keep), k1, l1)
        products = dataclasses.replace(P, p=design.p, BR1=BR1, BRR=_same_layout(P.BRR, P.BRR[np.ix_(keep, keep)]),
                                       operators=operators, derived=derived)
        return MixedModel(design, products, self.layout, self.reml)

    def _converged(self, objective, result, theta: np.ndarray) -> np.ndarray:
        """lme4's verdict (``checkConv``): converged when the optimiser says so, when the fit is
        singular (lme4 skips its gradient checks there), or when the gradient at the optimum
        passes lme4's check against the finite-difference Hessian there (lme4's ``derivs``),
        computed for the rows that need it only."""
        settled = result.converged | self.layout.is_singular(theta)
        unsettled = np.flatnonzero(~settled)
        if unsettled.size:
            hessian = hessian_fd(objective, result.x[unsettled], unsettled)
            settled[unsettled] = passes_lme4_gradient_check(result.g[unsettled], hessian)
        return settled

    def _probe_boundary(self, outcomes: OutcomeProducts, theta: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Set near-zero diagonal elements to exactly 0 where that does not raise the criterion
        (beyond rounding): where the criterion is flat near the bound, as often for singular
        fits, a gradient method stops short of it."""
        diagonal = self.layout.diagonal
        near = (np.abs(theta) < BOUNDARY_PROBE) & diagonal[None, :] & (np.abs(theta) > 0)
        rows = np.flatnonzero(near.any(axis=1))
        if rows.size == 0:
            return theta
        candidate = theta[rows].copy()
        candidate[near[rows]] = 0.0
        candidate_value = self.criterion(self.factorize(outcomes, candidate, rows))
        better = candidate_value <= value[rows] + 1e-12 * np.abs(value[rows])
        theta = theta.copy()
        theta[rows[better]] = candidate[better]
        return theta

    def _summaries(self, outcomes: OutcomeProducts, theta: np.ndarray, result, converged: np.ndarray,
                   factor: BlockedCholesky | None = None) -> list[MixedFit]:
        P = self.products
        R = theta.shape[0]
        F = self.factorize(outcomes, theta, np.arange(R)) if factor is None else factor
        beta = F.fixed_effects()
        sigma = sigma_hat(F.r2, P.n, P.p, self.reml)
        vcov = sigma[:, None, None] ** 2 * F.unscaled_fixed_covariance()
        criterion = self.criterion(F)
        singular = self.layout.is_singular(theta)
        factors = self.layout.factors(theta)
        theta_names = self.theta_names
        converged = converged & np.isfinite(criterion)
        # Variance components and PCA of all replicates at once (the same numbers as one by one).
        # (A stacked matrix product can round differently from the 2-D one: one by one.)
        spread = [sds_and_correlations(np.array([covariance(T[r], sigma[r]) for r in range(R)])) for T in factors]
        by_group: dict[str, list[np.ndarray]] = {}
        for block, T in zip(self.design.blocks, factors):
            by_group.setdefault(block.group, []).append(T)
        proportions = {group: pca_proportions(_block_diagonal(Ts)) for group, Ts in by_group.items()}
        fits = []
        for r in range(R):
            components = [VarianceComponent(block.group, block.names, sds[r], corr[r])
                          for block, (sds, corr) in zip(self.design.blocks, spread)]
            pca = {group: values[r] for group, values in proportions.items()}
            fits.append(MixedFit(
                self.design.fixed_names, beta[r], vcov[r], theta[r], float(sigma[r]), self.reml,
                float(criterion[r]), P.n, bool(converged[r]),
                bool(singular[r]), int(result.iterations[r]), int(result.evaluations[r]),
                tuple(components), theta_names, pca, self, outcomes.take(np.array([r])),
                (result.x[r], result.H[r]),
            ))
        return fits


def _same_layout(original: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``part`` of ``original`` in its memory order (Fortran or C): BLAS kernels can round
    differently on the two, and a derived model must give a rebuilt one's numbers."""
    return np.asfortranarray(part) if original.flags.f_contiguous and not original.flags.c_contiguous else part


def _block_diagonal(blocks: list[np.ndarray]) -> np.ndarray:
    """The block-diagonal matrices of stacks of square blocks (..., k_i, k_i)."""
    size = sum(b.shape[-1] for b in blocks)
    out = np.zeros(blocks[0].shape[:-2] + (size, size))
    start = 0
    for b in blocks:
        k = b.shape[-1]
        out[..., start:start + k, start:start + k] = b
        start += k
    return out
