"""Subjects x conditions x trials with a binary (or binomial) outcome and correlated random
intercepts and slopes per subject: the accuracy version of the ``clustered`` DGP.

    eta_sjt = b0 + b1 X_j + u0_s + u1_s X_j,
    (u0_s, u1_s) ~ N(0, [[var_intercept, r sd0 sd1], [r sd0 sd1, var_slope]]),
    sd0 = sqrt(var_intercept), sd1 = sqrt(var_slope), r = correlation_intercept_slope,
    successes_sjt ~ Binomial(binomial_size, g^{-1}(eta_sjt)),

for subject s = 1..n_subjects, condition X_j = 0..n_conditions-1 and row t = 1..n_trials, with
g the ``logit`` or ``probit`` link. A correlation rather than a covariance sets the dependence
of intercept and slope, so that a variance set to 0 (an effect switched off) cannot contradict
it. This is the generalised linear mixed model glmer fits as
``y ~ X + (1 + X | subject), family = binomial(link)``.

With ``binomial_size`` 1 (the default) each row is one Bernoulli trial and the columns are
``y`` (float, 0 or 1), ``X`` (int), ``subject`` (int). With binomial_size = k > 1 each row is k
trials and the frame carries ``y`` = successes / k (float), ``successes`` and ``failures``
(int, summing to k), ``X`` and ``subject``, for ``cbind(successes, failures) ~ ...`` models.

Truth, on the model's (link) scale: ``Intercept`` = b0, ``X`` = b1, the subject-specific
(conditional) coefficients. Marginal (population-averaged) coefficients, which a GLM or GEE
estimates, are smaller in absolute value (Zeger, Liang & Albert 1988, Biometrics 44:1049).

The design is the same in every replicate; with binomial_size 1 it is drawn as an outcome
matrix (``fixed_design`` is True). With k > 1 the frame has three outcome columns, so it is drawn
one frame per replicate and ``fixed_design`` is False.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Literal, get_args

import numpy as np
import pandas as pd

from estimators.families import inverse_link
from sims.dgp.base import DGP, require, require_nonnegative, require_positive_int
from sims.dgp.clustered import balanced_condition_columns, require_subject_design, subject_linear_predictor

BinaryLink = Literal["logit", "probit"]


@dataclasses.dataclass(frozen=True)
class ClusteredBinaryDGP(DGP):
    n_subjects: int = 30
    n_conditions: int = 2
    n_trials: int = 20
    link: BinaryLink = "logit"
    intercept: float = 0.5
    slope: float = 0.5
    var_intercept: float = 1.0
    var_slope: float = 0.25
    correlation_intercept_slope: float = 0.0
    binomial_size: int = 1

    def __post_init__(self):
        require_subject_design(self.n_subjects, self.n_conditions, self.n_trials, self.intercept, self.slope,
                               self.correlation_intercept_slope)
        require(self.link in get_args(BinaryLink), "link", f"must be one of {', '.join(get_args(BinaryLink))}, got {self.link!r}")
        for name in ("var_intercept", "var_slope"):
            require_nonnegative(getattr(self, name), name)
        require_positive_int(self.binomial_size, "binomial_size")

    @property
    def columns(self) -> dict[str, str]:
        counts = {"successes": "i", "failures": "i"} if self.binomial_size > 1 else {}
        return {"y": "f", **counts, "X": "i", "subject": "i"}

    @property
    def outcome(self) -> str | None:
        return "y" if self.binomial_size == 1 else None

    @property
    def fixed_design(self) -> bool:
        """Only the one-outcome-column frames are drawn as a design and an outcome matrix."""
        return self.binomial_size == 1

    def design_columns(self) -> dict[str, np.ndarray]:
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        return balanced_condition_columns(self.n_subjects, self.n_conditions, self.n_trials)

    def draw_successes(self, rng: np.random.Generator) -> np.ndarray:
        """Successes of each row of the design (out of binomial_size)."""
        columns = self._design_columns
        eta = subject_linear_predictor(rng, columns["X"], columns["subject"], self.n_subjects, self.intercept,
                                       self.slope, self.var_intercept, self.var_slope, self.correlation_intercept_slope)
        return rng.binomial(self.binomial_size, inverse_link(self.link, eta))

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """y = successes / binomial_size (``generate(rng)["y"]``, the same draws)."""
        return self.draw_successes(rng) / self.binomial_size

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        successes = self.draw_successes(rng)
        counts = {"successes": successes, "failures": self.binomial_size - successes} if self.binomial_size > 1 else {}
        columns = self._design_columns
        return pd.DataFrame({"y": successes / self.binomial_size, **counts,
                             "X": columns["X"].copy(), "subject": columns["subject"].copy()})

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "X": self.slope}
