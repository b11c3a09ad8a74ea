"""Subjects x conditions x trials with a count outcome: Poisson with log link, correlated random
intercepts and slopes per subject, and optional overdispersion by an observation-level random
effect (Elston et al. 2001, Parasitology 122:563; Harrison 2014, PeerJ 2:e616).

    log mu_sjt = b0 + b1 X_j + u0_s + u1_s X_j + e_sjt,
    (u0_s, u1_s) ~ N(0, [[var_intercept, r sd0 sd1], [r sd0 sd1, var_slope]]),
    e_sjt ~ N(0, var_observation),      y_sjt ~ Poisson(mu_sjt),

for subject s = 1..n_subjects, condition X_j = 0..n_conditions-1 and trial t = 1..n_trials,
r = correlation_intercept_slope (a correlation, so that a zero variance cannot contradict it).
glmer fits it as ``y ~ X + (1 + X | subject) + (1 | obs), family = poisson``; with
var_observation 0 the last term is absent. Given the subject effects, Var y = mu + mu^2
(exp(var_observation) - 1): lognormal-Poisson overdispersion.

Columns: ``y`` (int), ``X`` (int), ``subject`` (int). Truth, on the log scale: ``Intercept`` =
b0, ``X`` = b1 (conditional on the random effects; the marginal log mean of condition X is
b0 + b1 X + (var_intercept + 2 X cov + X^2 var_slope + var_observation) / 2). The design is the
same in every replicate and is drawn as an outcome matrix.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
import pandas as pd

from sims.dgp.base import DGP, require_nonnegative
from sims.dgp.clustered import balanced_condition_columns, require_subject_design, subject_linear_predictor


@dataclasses.dataclass(frozen=True)
class ClusteredCountsDGP(DGP):
    n_subjects: int = 30
    n_conditions: int = 2
    n_trials: int = 10
    intercept: float = 1.0
    slope: float = 0.2
    var_intercept: float = 0.25
    var_slope: float = 0.05
    correlation_intercept_slope: float = 0.0
    var_observation: float = 0.0

    columns: ClassVar[dict[str, str]] = {"y": "i", "X": "i", "subject": "i"}
    outcome: ClassVar[str] = "y"
    fixed_design: ClassVar[bool] = True

    def __post_init__(self):
        require_subject_design(self.n_subjects, self.n_conditions, self.n_trials, self.intercept, self.slope,
                               self.correlation_intercept_slope)
        for name in ("var_intercept", "var_slope", "var_observation"):
            require_nonnegative(getattr(self, name), name)

    def design_columns(self) -> dict[str, np.ndarray]:
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        return balanced_condition_columns(self.n_subjects, self.n_conditions, self.n_trials)

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """y of every row (``generate(rng)["y"]``, the same draws): subject effects, then the
        observation-level effects, then the Poisson counts."""
        columns = self._design_columns
        eta = subject_linear_predictor(rng, columns["X"], columns["subject"], self.n_subjects, self.intercept,
                                       self.slope, self.var_intercept, self.var_slope, self.correlation_intercept_slope)
        eta = eta + rng.normal(0.0, np.sqrt(self.var_observation), size=len(eta))
        return rng.poisson(np.exp(eta))

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, "y", self.draw_outcome(rng))
        return frame

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "X": self.slope}
