"""Wild cluster bootstrap-t with the null hypothesis imposed (WCR; Cameron, Gelbach & Miller
2008, REStat 90:414), for each coefficient of an OLS fit.

For coefficient j and a null value b0, the restricted model y - b0 x_j = X_{-j} g + u gives the
restricted fit y~ = y - u~ and residuals u~(b0) = Q_{-j} (y - b0 x_j), Q_{-j} the residual maker
of the other columns. A bootstrap sample multiplies each cluster's restricted residuals by one
weight v_g:  y* = y~ + v_g u~_g.  Its statistic is t* = (b*_j - b0) / se*_j with the CR1
standard error, and the observed one t = (b_j - b0) / se_j (unrestricted fit, CR1). Then

    p(b0) = #{b : |t*_b| >= |t|} / B                        (symmetric, two-sided)

The p-value reported is p(0); the confidence interval is {b0 : p(b0) >= alpha}, obtained by
test inversion (MacKinnon 2023, "Fast cluster bootstrap methods for linear regression models",
Econometrics and Statistics 26:52; as Stata's boottest and R's fwildclusterboot): the crossings of
alpha nearest to b_j on either side, found by bisection with the same draws for every b0.

All B draws are evaluated at once from cluster-level quantities (Roodman, MacKinnon, Nielsen &
Webb 2019, Stata Journal 19:4, "Fast and wild"): with m_j the j-th column of (X'X)^{-1},
    a_g = m_j' X_g' u~_g,     C_gh = m_j' X_g' X_g (X'X)^{-1} X_h' u~_h,     K = diag(a) - C,
the bootstrap numerator is b*_j - b0 = a'v and cluster g's CR1 score is (K v)_g, so for the
(G, B) weight matrix V every statistic comes from a'V and KV. Both a and K are affine in b0,
so p(b0) costs O(B) once the products for two values of b0 are known.

Weights: Rademacher (+-1 with probability 1/2) or Webb's six-point distribution (+-sqrt(1/2),
+-1, +-sqrt(3/2), probability 1/6 each; Webb, "Reworking wild bootstrap-based inference for clustered
errors", Canadian Journal of Economics 2023). With Rademacher
weights and 2^G <= n_boot, the 2^G sign vectors are enumerated instead of drawn (as boottest
does), which makes the result exact and deterministic. Ties |t*| = |t| (e.g. the draws v = +-1,
which reproduce the sample) count as exceedances, with a relative tolerance of 1e-9 so that
rounding does not decide them.

The estimate is the OLS coefficient and the std_error its CR1 standard error (the one in t);
df is NaN: p-value and interval come from the bootstrap distribution, not from a t law.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence, get_args

import numpy as np
import scipy.sparse as sp
from scipy import stats

from estimators import sandwich
from estimators.base import SharedDesignEstimator
from estimators.design import Design
from estimators.params import require_one_of, require_positive_int, require_probability
from estimators.result import FitResult, Status

WeightType = Literal["rademacher", "webb"]
WEIGHT_TYPES = get_args(WeightType)

# |t*| >= |t| (1 - TIE_TOLERANCE) counts as an exceedance: draws that reproduce the sample (v = +-1)
# tie with it exactly in exact arithmetic, and rounding must not decide on which side they fall.
TIE_TOLERANCE = 1e-9
# Bisection stops when the bracket is narrower than this share of the standard error.
INTERVAL_TOLERANCE = 1e-6
# The interval search steps out from the estimate by t_{G-1, 1-alpha/2} standard errors, doubling
# the step up to MAX_DOUBLINGS times (about 10^5 standard errors); p(b0) still at or above alpha
# there makes the bound infinite. Much further out, rounding rather than the data decides ties.
MAX_DOUBLINGS = 16

_WEBB_VALUES = np.sqrt(np.array([1.5, 1.0, 0.5, 0.5, 1.0, 1.5])) * np.array([-1, -1, -1, 1, 1, 1])


def rademacher_weights(rng: np.random.Generator, n_clusters: int, n_boot: int) -> np.ndarray:
    """(G, B) matrix of independent +-1 with probability 1/2 each."""
    return rng.integers(0, 2, size=(n_clusters, n_boot)) * 2.0 - 1.0


def webb_weights(rng: np.random.Generator, n_clusters: int, n_boot: int) -> np.ndarray:
    """(G, B) matrix from Webb's six-point law: +-sqrt(1/2), +-1, +-sqrt(3/2), 1/6 each."""
    return _WEBB_VALUES[rng.integers(0, 6, size=(n_clusters, n_boot))]


def all_sign_vectors(n_clusters: int) -> np.ndarray:
    """(G, 2^G) matrix whose columns are every vector in {-1, +1}^G."""
    codes = np.arange(2**n_clusters)
    bits = (codes[None, :] >> np.arange(n_clusters)[:, None]) & 1
    return bits * 2.0 - 1.0


def enumerates(kind: WeightType, n_clusters: int, n_boot: int) -> bool:
    """True when the 2^G Rademacher sign vectors are enumerated instead of drawn (2^G <= B)."""
    return kind == "rademacher" and 2**n_clusters <= n_boot


def bootstrap_weights(kind: WeightType, rng: np.random.Generator | None, n_clusters: int, n_boot: int) -> np.ndarray:
    """The (G, B) weight matrix: all 2^G sign vectors when :func:`enumerates`, else B draws."""
    if enumerates(kind, n_clusters, n_boot):
        return all_sign_vectors(n_clusters)
    if rng is None:
        raise ValueError("rng: the wild bootstrap draws its weights from the rng passed to fit "
                         "(numpy.random.default_rng(seed)); none was given")
    draw = rademacher_weights if kind == "rademacher" else webb_weights
    return draw(rng, n_clusters, n_boot)


@dataclasses.dataclass(frozen=True)
class _TermDesign:
    """What the bootstrap of coefficient j needs from the design alone (module docstring):
    the residual maker of the other columns (through their pseudo-inverse), m_j, the w_g = M
    X_g'X_g m_j (G, p), b = a's slope in b0 (G,) and Kx (G, G)."""

    others: np.ndarray
    others_pinv: np.ndarray
    m: np.ndarray
    w: np.ndarray
    b: np.ndarray
    Kx: np.ndarray


@dataclasses.dataclass(frozen=True)
class _BootstrapDesign:
    """The design-only parts of the bootstrap, computed once per design (shared by a batch)."""

    design: Design
    M: np.ndarray
    indicator: sp.csr_matrix
    factor: float
    terms: tuple[_TermDesign, ...]

    @classmethod
    def of(cls, design: Design) -> "_BootstrapDesign":
        X, G = design.X, design.n_clusters
        n, p = X.shape
        M = design.derived("bread", lambda: sandwich.bread(X))
        indicator = design.indicator
        XtX_g = sandwich.cluster_crossprod(indicator, X, X)
        terms = []
        for j in range(p):
            others = np.delete(X, j, axis=1)
            others_pinv = np.linalg.pinv(others) if p > 1 else np.zeros((0, n))
            xr = X[:, j] - others @ (others_pinv @ X[:, j])  # x_j residualised on the other columns
            m = M[:, j]
            w = np.einsum("pq,gqr,r->gp", M, XtX_g, m)
            Sx = np.asarray(indicator @ (X * xr[:, None]))  # X_g' xr_g   (G, p)
            Kx = np.diag(Sx @ m) - w @ Sx.T
            # Kx 1 = 0 exactly (xr lies in the span of X, so its unrestricted residuals vanish).
            # Removing the rounding left in Kx 1 keeps the draws v = +-1, which reproduce the
            # sample, tied with it for every b0, however far the interval search goes.
            Kx -= Kx.mean(axis=1)[:, None]
            terms.append(_TermDesign(others, others_pinv, m, w, Sx @ m, Kx))
        return cls(design, M, indicator, sandwich.cr1_factor(n, p, G), tuple(terms))

    def null_path(self, term: _TermDesign, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """For the (G, B) weights V: N0, N1, q00, q01, q11 (each (B,)) such that the bootstrap
        numerator is n(b0) = N0 - b0 N1 and the CR1 variance q00 - 2 b0 q01 + b0^2 q11.

        With a = a0 - b0 b and K = K0 - b0 Kx (module docstring): N0 = a0'V, N1 = b'V, and with
        the scores P0 = K0 V, P1 = Kx V, q_kl = c sum_g P_k P_l (c the CR1 factor).
        """
        u0 = y - term.others @ (term.others_pinv @ y)  # restricted residuals at b0 = 0
        S0 = np.asarray(self.indicator @ (self.design.X * u0[:, None]))  # X_g' u0_g   (G, p)
        a0 = S0 @ term.m
        K0 = np.diag(a0) - term.w @ S0.T
        P0, P1 = K0 @ weights, term.Kx @ weights
        return (a0 @ weights, term.b @ weights, self.factor * np.einsum("gb,gb->b", P0, P0),
                self.factor * np.einsum("gb,gb->b", P0, P1), self.factor * np.einsum("gb,gb->b", P1, P1))


class _NullPaths:
    """Bootstrap p-values of every coefficient as functions of its null value b0.

    Arrays are (T, B) for T coefficients and B draws (see :meth:`_BootstrapDesign.null_path`); ``estimate``
    and ``std_error`` (T,) give the observed t(b0) = (b_j - b0) / se_j.
    """

    def __init__(self, terms: list[tuple[np.ndarray, ...]], estimate: np.ndarray, std_error: np.ndarray):
        self.N0, self.N1, self.q00, self.q01, self.q11 = (np.stack(parts) for parts in zip(*terms))
        self.estimate = estimate
        self.std_error = std_error

    def p_values(self, b0: np.ndarray) -> np.ndarray:
        """p(b0) for null values b0 of shape (T, K): #{|t*_b(b0)| >= |t(b0)|} / B, ties within
        TIE_TOLERANCE counted as exceedances. Compared as squares, t*^2 = n^2 / variance."""
        b = b0[:, :, None]
        numerator = self.N0[:, None, :] - b * self.N1[:, None, :]
        variance = self.q00[:, None, :] - b * (2.0 * self.q01[:, None, :] - b * self.q11[:, None, :])
        observed = ((self.estimate[:, None] - b0) / self.std_error[:, None] * (1.0 - TIE_TOLERANCE)) ** 2
        return np.count_nonzero(numerator * numerator >= observed[:, :, None] * variance, axis=2) / self.N0.shape[1]

    def interval(self, alpha: float, first_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (T,): on each side, the crossing of p = alpha nearest the
        estimate, or +-inf.

        Steps out from the estimate by ``first_step`` (T,), doubling it until p < alpha, then
        bisects to a bracket narrower than INTERVAL_TOLERANCE standard errors (or the
        resolution of a double); all terms and both sides at once.
        """
        direction = np.array([-1.0, 1.0])
        centre = self.estimate[:, None]
        step = first_step[:, None] * np.ones(2)
        inside = np.repeat(centre, 2, axis=1)
        outside = centre + direction * step
        found = np.zeros_like(inside, dtype=bool)
        for _ in range(MAX_DOUBLINGS):
            found |= self.p_values(outside) < alpha
            if found.all():
                break
            inside = np.where(found, inside, outside)
            step = np.where(found, step, 2.0 * step)
            outside = centre + direction * step
        tolerance = INTERVAL_TOLERANCE * self.std_error[:, None]
        while True:
            middle = 0.5 * (inside + outside)
            open_ = found & (np.abs(outside - inside) > tolerance) & (middle != inside) & (middle != outside)
            if not open_.any():
                break
            accept = self.p_values(middle) >= alpha
            inside = np.where(open_ & accept, middle, inside)
            outside = np.where(open_ & ~accept, middle, outside)
        bounds = np.where(found, 0.5 * (inside + outside), direction * np.inf)
        return bounds[:, 0], bounds[:, 1]


class WildClusterBootstrap(SharedDesignEstimator):
    """WCR wild cluster bootstrap-t for every coefficient of OLS ``formula`` (see module docstring).

    Parameters
    ----------
    formula : patsy formula, e.g. ``"y ~ X"``.
    cluster : column with cluster labels; the weights are drawn per cluster.
    weights : ``rademacher`` or ``webb``.
    n_boot : number of bootstrap draws B (Rademacher with 2^G <= B enumerates all 2^G instead).
    alpha : 1 - confidence level of the interval, which is obtained by test inversion.
    """

    def __init__(self, formula: str = "y ~ X", cluster: str = "subject", weights: WeightType = "rademacher",
                 n_boot: int = 999, alpha: float = 0.05):
        self.formula = formula
        self.cluster = cluster
        self.weights = weights
        self.n_boot = n_boot
        self.alpha = alpha
        require_one_of(weights, "weights", WEIGHT_TYPES)
        require_positive_int(n_boot, "n_boot")
        require_probability(alpha, "alpha")

    def _fit_design(self, design: Design, Y: np.ndarray, rngs: Sequence[np.random.Generator | None]
                    ) -> list[FitResult]:
        """The design-only parts once per design, then each replicate with its own rng (the
        same numbers alone or in a chunk)."""
        shared = design.derived("wild_bootstrap", lambda: _BootstrapDesign.of(design))
        return [self._bootstrap(shared, np.ascontiguousarray(Y[:, r]), rng) for r, rng in enumerate(rngs)]

    def _bootstrap(self, shared: _BootstrapDesign, y: np.ndarray, rng: np.random.Generator | None) -> FitResult:
        design = shared.design
        X, clusters, G = design.X, design.clusters, design.n_clusters
        p = X.shape[1]
        beta = shared.M @ (X.T @ y)
        residuals = (y - X @ beta)[:, None]
        std_error = np.sqrt(np.diagonal(sandwich.vcov_cr(X, shared.M, residuals, clusters, G, "CR1")[0]))
        weights = bootstrap_weights(self.weights, rng, G, self.n_boot)
        paths = _NullPaths([shared.null_path(term, y, weights) for term in shared.terms], beta, std_error)
        p_value = paths.p_values(np.zeros((p, 1)))[:, 0]
        lower, upper = paths.interval(self.alpha, stats.t.ppf(1.0 - self.alpha / 2.0, G - 1) * std_error)
        enumerated = enumerates(self.weights, G, self.n_boot)
        message = f"full enumeration of the {2**G} Rademacher sign vectors" if enumerated else ""
        return FitResult(design.terms, beta, std_error, np.full(p, np.nan), lower, upper, p_value,
                         Status.ok, message)
