"""Subjects x conditions x trials with correlated random intercepts and slopes per subject.

    y_sjt = b0 + b1 * X_j + u0_s + u1_s * X_j + e_sjt,
    (u0_s, u1_s) ~ F, a law with mean 0 and covariance [[var_intercept, c], [c, var_slope]],
                   c = correlation_intercept_slope * sqrt(var_intercept * var_slope),
    e_sjt ~ N(0, var_residual),

for subject s = 1..n_subjects, condition X_j = 0..n_conditions-1 (a linear predictor) and trial
t = 1..T_sj. The defaults are the lecture's first example (Psych 253, "Clustered errors and
mixed-effect models": 24 subjects x 2 conditions x 10 trials, b = (800, 3), variances 823.6 and
15.3, covariance -3.2, residual variance 27.4), for which the iid OLS SE of X is near 2.6, the
cluster-robust one near 0.93, the random-intercept model's near 0.51 and the random-slope
model's near 0.93.

The dependence is a correlation, so that no variance can contradict it: ``var_slope=0`` alone
switches the random slopes off (the covariance becomes 0). The default correlation,
-0.02850664411685109, is the lecture's -3.2 / sqrt(823.6 * 15.3) written to 17 digits, and
reproduces the covariance -3.2 exactly (as a double), so the default draws are those of the
lecture's covariance matrix.

Random-effects law F (``random_effects``), always with exactly the covariance above:

- ``normal``: bivariate normal.
- ``t``: bivariate t with ``random_effects_df`` (> 2) degrees of freedom, i.e. a normal draw
  divided by sqrt(W / df), W ~ chi2(df) per subject, times sqrt((df - 2) / df) so that the
  covariance is the stated one. Intercept and slope share the heavy tail (an elliptical law).
- ``skewed``: (u0, u1)' = L z, L the lower Cholesky factor of the covariance and z two
  independent standardised gamma draws, z = (G - k) / sqrt(k), G ~ Gamma(k, 1),
  k = 4 / random_effects_skewness^2, so u0 has skewness ``random_effects_skewness`` exactly and
  u1 a mixture of both components' skewness.

Trials per subject and condition, T_sj (``trials_distribution``):

- ``fixed``: T_sj = n_trials. Balanced, and the same design in every replicate
  (``fixed_design`` is True).
- ``poisson``: T_sj = 1 + Poisson(n_trials - 1), mean n_trials, variance n_trials - 1.
- ``uniform``: T_sj uniform on {1, ..., 2 n_trials - 1}, mean n_trials, variance
  n_trials (n_trials - 1) / 3.

The random sizes are drawn anew in every replicate, so clusters are unbalanced and
``fixed_design`` is False.

Columns: ``y`` (float), ``X`` (int, condition), ``subject`` (int, 1..n_subjects); rows are
sorted by subject, condition and trial. Truth: ``Intercept`` = b0, ``X`` = b1.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from sims.dgp.base import (DGP, multivariate_normal, normal_factor, read_only, require, require_nonnegative,
                           require_positive_int)
from sims.dgp.crossed import covariance_2x2

TrialsDistribution = Literal["fixed", "poisson", "uniform"]
RandomEffectsLaw = Literal["normal", "t", "skewed"]


def lower_cholesky(covariance: np.ndarray) -> np.ndarray:
    """L with L L' = covariance for a positive semi-definite 2 x 2 matrix (zero variances allowed)."""
    l00 = np.sqrt(covariance[0, 0])
    l10 = covariance[1, 0] / l00 if l00 > 0 else 0.0
    l11 = np.sqrt(max(covariance[1, 1] - l10**2, 0.0))
    return np.array([[l00, 0.0], [l10, l11]])


def condition_columns(n_subjects: int, n_conditions: int, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X (condition 0..n_conditions-1) and subject (1..n_subjects) of each row, for trials[s, j]
    rows per subject and condition, sorted by subject, condition and trial."""
    counts = trials.ravel()
    return (np.repeat(np.tile(np.arange(n_conditions), n_subjects), counts),
            np.repeat(np.repeat(np.arange(1, n_subjects + 1), n_conditions), counts))


def balanced_condition_columns(n_subjects: int, n_conditions: int, n_trials: int) -> dict[str, np.ndarray]:
    """The balanced design's X and subject columns (n_trials rows per cell), read-only."""
    X, subject = condition_columns(n_subjects, n_conditions, np.full((n_subjects, n_conditions), n_trials))
    return read_only({"X": X, "subject": subject})


def require_subject_design(n_subjects, n_conditions, n_trials, intercept, slope, correlation) -> None:
    """The checks of the subjects x conditions x trials parameters the binary and count DGPs share."""
    require_positive_int(n_subjects, "n_subjects")
    require_positive_int(n_conditions, "n_conditions")
    require(n_conditions >= 2, "n_conditions", f"must be >= 2 for the slope of X to exist, got {n_conditions}")
    require_positive_int(n_trials, "n_trials")
    for name, value in (("intercept", intercept), ("slope", slope)):
        require(np.isfinite(value), name, f"must be a finite number, got {value!r}")
    require(np.isfinite(correlation) and -1.0 <= correlation <= 1.0, "correlation_intercept_slope",
            f"must be in [-1, 1], got {correlation!r}")


def subject_linear_predictor(rng: np.random.Generator, X: np.ndarray, subject: np.ndarray, n_subjects: int,
                             intercept: float, slope: float, var_intercept: float, var_slope: float,
                             correlation: float) -> np.ndarray:
    """eta = b0 + b1 X + u0_s + u1_s X with (u0, u1) bivariate normal, variances var_intercept
    and var_slope and correlation ``correlation`` (one draw per subject, then the rows)."""
    covariance = covariance_2x2(np.sqrt(var_intercept), np.sqrt(var_slope), correlation)
    # eigh rather than Cholesky, so that a zero variance (a switched-off effect) is allowed.
    effects = rng.multivariate_normal(np.zeros(2), covariance, size=n_subjects, method="eigh")
    return intercept + slope * X + effects[subject - 1, 0] + effects[subject - 1, 1] * X


@dataclasses.dataclass(frozen=True)
class ClusteredDGP(DGP):
    n_subjects: int = 24
    n_conditions: int = 2
    n_trials: int = 10
    intercept: float = 800.0
    slope: float = 3.0
    var_intercept: float = 823.6
    var_slope: float = 15.3
    correlation_intercept_slope: float = -0.02850664411685109
    var_residual: float = 27.4
    trials_distribution: TrialsDistribution = "fixed"
    random_effects: RandomEffectsLaw = "normal"
    random_effects_df: float = 5.0
    random_effects_skewness: float = 1.0

    columns: ClassVar[dict[str, str]] = {"y": "f", "X": "i", "subject": "i"}
    outcome: ClassVar[str] = "y"

    def __post_init__(self):
        require_positive_int(self.n_subjects, "n_subjects")
        require_positive_int(self.n_conditions, "n_conditions")
        require(self.n_conditions >= 2, "n_conditions", f"must be >= 2 for the slope of X to exist, got {self.n_conditions}")
        require_positive_int(self.n_trials, "n_trials")
        for name in ("intercept", "slope"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        for name in ("var_intercept", "var_slope", "var_residual"):
            require_nonnegative(getattr(self, name), name)
        correlation = self.correlation_intercept_slope
        require(np.isfinite(correlation) and -1.0 <= correlation <= 1.0, "correlation_intercept_slope",
                f"must be a correlation in [-1, 1], got {correlation!r}")
        require(self.trials_distribution in get_args(TrialsDistribution), "trials_distribution",
                f"must be one of {', '.join(get_args(TrialsDistribution))}, got {self.trials_distribution!r}")
        require(self.random_effects in get_args(RandomEffectsLaw), "random_effects",
                f"must be one of {', '.join(get_args(RandomEffectsLaw))}, got {self.random_effects!r}")
        require(np.isfinite(self.random_effects_df) and self.random_effects_df > 2, "random_effects_df",
                f"must be > 2 (finite variance), got {self.random_effects_df!r}")
        require(np.isfinite(self.random_effects_skewness) and self.random_effects_skewness > 0,
                "random_effects_skewness", f"must be > 0, got {self.random_effects_skewness!r}")

    @property
    def fixed_design(self) -> bool:
        """Only balanced designs repeat from replicate to replicate."""
        return self.trials_distribution == "fixed"

    @property
    def random_effects_covariance(self) -> np.ndarray:
        covariance = self.correlation_intercept_slope * np.sqrt(self.var_intercept * self.var_slope)
        return np.array([[self.var_intercept, covariance], [covariance, self.var_slope]])

    def design(self, trials: np.ndarray | None = None) -> pd.DataFrame:
        """Subject and condition of each row, for trials[s, j] trials per cell (default: n_trials)."""
        X, subject = self._design_columns(trials)
        return pd.DataFrame({"X": X.copy(), "subject": subject.copy()})

    def design_columns(self) -> dict[str, np.ndarray]:
        """The balanced design's X and subject columns (shared by every replicate)."""
        return self._balanced_columns

    def _design_columns(self, trials: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if trials is None:
            return self._balanced_columns["X"], self._balanced_columns["subject"]
        return condition_columns(self.n_subjects, self.n_conditions, trials)

    @functools.cached_property
    def _balanced_columns(self) -> dict[str, np.ndarray]:
        """The balanced design's X and subject columns, built once (every replicate shares them)."""
        return balanced_condition_columns(self.n_subjects, self.n_conditions, self.n_trials)

    @functools.cached_property
    def _effects_factor(self) -> np.ndarray:
        """The normal random effects' factor (:func:`~sims.dgp.base.normal_factor`), computed once."""
        return normal_factor(self.random_effects_covariance)

    def draw_random_effects(self, rng: np.random.Generator) -> np.ndarray:
        """(n_subjects, 2) draws of (u0, u1) from the law ``random_effects``."""
        if self.random_effects == "skewed":
            shape = 4.0 / self.random_effects_skewness**2
            z = (rng.standard_gamma(shape, size=(self.n_subjects, 2)) - shape) / np.sqrt(shape)
            return z @ lower_cholesky(self.random_effects_covariance).T
        # eigh rather than Cholesky, so that a zero variance (a switched-off effect) is allowed.
        effects = multivariate_normal(rng, self._effects_factor, self.n_subjects)
        if self.random_effects == "t":
            df = self.random_effects_df
            effects *= np.sqrt((df - 2.0) / rng.chisquare(df, size=self.n_subjects))[:, None]
        return effects

    def draw_trials(self, rng: np.random.Generator) -> np.ndarray | None:
        """(n_subjects, n_conditions) trial counts, or None for the balanced design."""
        shape = (self.n_subjects, self.n_conditions)
        if self.trials_distribution == "poisson":
            return 1 + rng.poisson(self.n_trials - 1, size=shape)
        if self.trials_distribution == "uniform":
            return rng.integers(1, 2 * self.n_trials, size=shape)
        return None

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        X, subject, y = self._draw(rng)
        return pd.DataFrame({"y": y, "X": X.copy(), "subject": subject.copy()})

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """The balanced design's y (``generate(rng)["y"]``, the same draws)."""
        return self._draw(rng)[2]

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X, subject and y of one replicate: random effects, then trial counts, then noise."""
        effects = self.draw_random_effects(rng)
        X, subject = self._design_columns(self.draw_trials(rng))
        noise = rng.normal(0.0, np.sqrt(self.var_residual), size=len(X))
        y = self.intercept + self.slope * X + effects[subject - 1, 0] + effects[subject - 1, 1] * X + noise
        return X, subject, y

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "X": self.slope}
