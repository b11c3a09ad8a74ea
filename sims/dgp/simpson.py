"""Simpson's paradox: test score against finishing time (the lecture's third example).

Between students, the best finish fastest (negative slope); within a student, more time gives
a better score (positive slope). Student s = 1..n_students takes n_tests tests, t = 1..n_tests:

    finishtime_st = m_s + w_t,
    score_st      = b0 + b_W * finishtime_st + (b_B - b_W) * (m_s - mu) + v_s + e_st,
    v_s ~ N(0, ability_sd^2),  e_st ~ N(0, residual_sd^2),

a within-between ("contextual effect") model (Neuhaus & Kalbfleisch 1998, Biometrics 54:638;
Bell & Jones 2015, Political Science Research and Methods 3:133): a student whose typical time
m_s is one minute above the mean mu = finishtime_mean scores b_B - b_W points more (2.1 fewer
with the defaults) on top of the within-student effect, so the slope between students' means
is b_B = between_slope and the slope within a student is b_W = within_slope.

The finishing times are a fixed design, identical in every replicate: m_s = mu +
finishtime_between_sd * q_s and w_t = finishtime_within_sd * q_t, where q are normal quantiles
Phi^-1((k - 1/2) / K), rescaled to mean 0 and standard deviation 1 (n denominator). Hence,
exactly, a student's mean time is m_s, and the between and within sums of squares of
finishtime are N s_B^2 and N s_W^2 (N = n_students n_tests, s_B and s_W the two SDs).

Estimands (``truth()``), both exact for this design:

- ``finishtime`` = b_W, the within-student effect (the mixed-model question: what does more
  time do for a student?), with ``Intercept`` = b0. A random-intercept model estimates these:
  its slope is a precision-weighted mix of the within and between slopes, and the default
  ability SD, far above residual_sd / sqrt(n_tests), puts almost all weight on the within one.
- ``finishtime_marginal`` = b_M = (b_W s_W^2 + b_B s_B^2) / (s_W^2 + s_B^2), the marginal slope
  over all tests (the question OLS of score on finishtime answers), with ``Intercept_marginal``
  = b0 + (b_W - b_M) mu. E[OLS slope | design] = b_M and E[OLS intercept | design] = b0 +
  (b_W - b_M) mu exactly, because the OLS slope is (b_W SS_W + b_B SS_B) / (SS_W + SS_B) plus
  mean-zero noise.

Both questions have their own term name so that they can be scored side by side: the results
dataset pairs an estimator's term with the truth of the same name (estimators name terms after
the formula, ``Intercept`` and ``finishtime``), so by default every estimator is scored against
the within-student effect, and the marginal estimands are stored next to it under a ``_marginal``
suffix (the conformance suite's convention for a second estimand of the same term).

Defaults, chosen to give the lecture's two tables in expectation: b0 = 73.8, b_W = 0.40,
b_B = -1.70, mu = 70.5 min, s_B = 7, s_W = 2 give b_M = (0.4 * 4 - 1.7 * 49) / 53 = -1.5415 and
an OLS intercept of 73.8 + 1.9415 * 70.5 = 210.68 (lecture: -1.5422 and 210.68); the
random-intercept model gives about 0.40 and 73.8 (lecture: 0.402 and 73.82). With 20 students x
5 tests, ability_sd = 3.9 and residual_sd = 0.04 the standard errors are also the lecture's:
OLS about 0.076 (slope) and 5.4 (intercept; lecture 0.077 and 5.46), the random-intercept
slope about 0.002, and the random-intercept variance is (b_B - b_W)^2 s_B^2 + ability_sd^2 =
231 (lecture: 228).

Because the design is fixed, a student's typical time, and with it the part of their ability
tied to it, (b_B - b_W) (m_s - mu), is the same in every replicate; only v_s and e_st are
drawn. Inference is therefore conditional on the design: the random-intercept model's
intercept varies by ability_sd / sqrt(n_students) = 0.87 between replicates, while its model
SE (about 3.5) treats the whole student effect as random.

Columns: ``score`` (float), ``finishtime`` (float, minutes), ``student`` (int, 1..n_students;
student 1 is the fastest).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from sims.dgp.base import DGP, read_only, require, require_nonnegative, require_positive_int


def standard_normal_grid(size: int) -> np.ndarray:
    """Normal quantiles at (k - 1/2) / size, rescaled to mean 0 and SD 1 (n denominator)."""
    q = norm.ppf((np.arange(1, size + 1) - 0.5) / size)
    q -= q.mean()
    return q / np.sqrt(np.mean(q**2))


@dataclasses.dataclass(frozen=True)
class SimpsonDGP(DGP):
    n_students: int = 20
    n_tests: int = 5
    finishtime_mean: float = 70.5
    finishtime_between_sd: float = 7.0
    finishtime_within_sd: float = 2.0
    intercept: float = 73.8
    within_slope: float = 0.4
    between_slope: float = -1.7
    ability_sd: float = 3.9
    residual_sd: float = 0.04

    fixed_design: ClassVar[bool] = True
    columns: ClassVar[dict[str, str]] = {"score": "f", "finishtime": "f", "student": "i"}
    outcome: ClassVar[str] = "score"

    def __post_init__(self):
        for name in ("n_students", "n_tests"):
            value = getattr(self, name)
            require_positive_int(value, name)
            require(value >= 2, name, f"must be >= 2 so that finishing times vary, got {value}")
        for name in ("finishtime_mean", "intercept", "within_slope", "between_slope"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        for name in ("finishtime_between_sd", "finishtime_within_sd"):
            value = getattr(self, name)
            require(np.isfinite(value) and value > 0, name, f"must be > 0 so that both slopes exist, got {value!r}")
        for name in ("ability_sd", "residual_sd"):
            require_nonnegative(getattr(self, name), name)

    @property
    def marginal_slope(self) -> float:
        """b_M: the slope of score on finishtime over all tests, given this design."""
        between, within = self.finishtime_between_sd**2, self.finishtime_within_sd**2
        return (self.within_slope * within + self.between_slope * between) / (within + between)

    def design_columns(self) -> dict[str, np.ndarray]:
        """Finishing time and student of each row (the same in every replicate)."""
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        typical = self.finishtime_mean + self.finishtime_between_sd * standard_normal_grid(self.n_students)
        deviation = self.finishtime_within_sd * standard_normal_grid(self.n_tests)
        return read_only({"finishtime": (typical[:, None] + deviation[None, :]).ravel(),
                          "student": np.repeat(np.arange(1, self.n_students + 1), self.n_tests)})

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, "score", self.draw_outcome(rng))
        return frame

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """The scores of one replicate (``generate(rng)["score"]``, the same draws)."""
        finishtime, student = self._design_columns["finishtime"], self._design_columns["student"]
        typical = finishtime.reshape(self.n_students, self.n_tests).mean(axis=1)
        ability = (self.between_slope - self.within_slope) * (typical - self.finishtime_mean)
        ability += rng.normal(0.0, self.ability_sd, size=self.n_students)
        noise = rng.normal(0.0, self.residual_sd, size=len(finishtime))
        return self.intercept + self.within_slope * finishtime + ability[student - 1] + noise

    def truth(self) -> dict[str, float]:
        marginal = self.marginal_slope
        return {
            "Intercept": self.intercept,
            "finishtime": self.within_slope,
            "Intercept_marginal": self.intercept + (self.within_slope - marginal) * self.finishtime_mean,
            "finishtime_marginal": marginal,
        }
