"""Subjects x conditions x trials with correlated random intercepts and slopes per subject.

    y_sjt = b0 + b1 * X_j + u0_s + u1_s * X_j + e_sjt,
    (u0_s, u1_s) ~ N(0, [[var_intercept, cov_intercept_slope], [cov_intercept_slope, var_slope]]),
    e_sjt ~ N(0, var_residual),

for subject s = 1..n_subjects, condition X_j = 0..n_conditions-1 and trial t = 1..n_trials.
The defaults are the lecture's first example (24 subjects x 2 conditions x 10 trials,
b = (800, 3), variances 823.6 and 15.3, covariance -3.2, residual variance 27.4), for which
the iid OLS SE of X is near 2.6, the cluster-robust one near 0.93, the random-intercept model's
near 0.51 and the random-slope model's near 0.93.

Columns: ``y`` (float), ``X`` (int, condition), ``subject`` (int, 1..n_subjects).
Truth: ``Intercept`` = b0, ``X`` = b1.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd

from sims.base import DGP, require_nonnegative, require_positive_definite, require_positive_int


@dataclasses.dataclass(frozen=True)
class ClusteredDGP(DGP):
    n_subjects: int = 24
    n_conditions: int = 2
    n_trials: int = 10
    intercept: float = 800.0
    slope: float = 3.0
    var_intercept: float = 823.6
    var_slope: float = 15.3
    cov_intercept_slope: float = -3.2
    var_residual: float = 27.4

    fixed_design: ClassVar[bool] = True
    columns: ClassVar[dict[str, str]] = {"y": "f", "X": "i", "subject": "i"}

    def __post_init__(self):
        require_positive_int(self.n_subjects, "n_subjects")
        require_positive_int(self.n_conditions, "n_conditions")
        require_positive_int(self.n_trials, "n_trials")
        for name in ("var_intercept", "var_slope", "var_residual"):
            require_nonnegative(getattr(self, name), name)
        require_positive_definite(self.random_effects_covariance, "cov_intercept_slope")

    @property
    def random_effects_covariance(self) -> np.ndarray:
        return np.array([[self.var_intercept, self.cov_intercept_slope],
                         [self.cov_intercept_slope, self.var_slope]])

    def design(self) -> pd.DataFrame:
        """The fixed part of every replicate: subject and condition of each row."""
        per_subject = self.n_conditions * self.n_trials
        return pd.DataFrame({
            "X": np.tile(np.repeat(np.arange(self.n_conditions), self.n_trials), self.n_subjects),
            "subject": np.repeat(np.arange(1, self.n_subjects + 1), per_subject),
        })

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        # Cholesky-free draw so that a zero variance (a switched-off effect) is allowed.
        effects = rng.multivariate_normal(np.zeros(2), self.random_effects_covariance,
                                          size=self.n_subjects, method="eigh")
        subject = frame["subject"].to_numpy() - 1
        X = frame["X"].to_numpy()
        noise = rng.normal(0.0, np.sqrt(self.var_residual), size=len(frame))
        y = self.intercept + self.slope * X + effects[subject, 0] + effects[subject, 1] * X + noise
        frame.insert(0, "y", y)
        return frame

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "X": self.slope}
