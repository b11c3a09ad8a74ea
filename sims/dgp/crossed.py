"""Subjects crossed with items, a two-level condition (Clark 1973; Barr et al. 2013;
Matuschek et al. 2017).

    y_si = b0 + b1 * c_si + S0_s + S1_s * c_si + I0_i + I1_i * c_si + e_si,
    (S0_s, S1_s) ~ N(0, [[sd_S0^2, r_S sd_S0 sd_S1], [r_S sd_S0 sd_S1, sd_S1^2]]),
    (I0_i, I1_i) ~ N(0, [[sd_I0^2, r_I sd_I0 sd_I1], [r_I sd_I0 sd_I1, sd_I1^2]]),
    e_si ~ N(0, residual_sd^2),

for subjects s = 1..n_subjects and items i = 1..n_items, condition c coded -0.5 / +0.5, so b0
is the grand mean and b1 the condition effect.

Layouts (``layout``):

- ``counterbalanced``: within subjects and within items. Odd subjects get list 1, even ones
  list 2; list 1 shows odd items in condition -0.5 and even items in +0.5, list 2 the
  reverse. Each subject sees each item once, half the items in each condition (n_items even).
- ``between_items``: within subjects, between items: items 1..n_items/2 are always in
  condition -0.5, the others in +0.5; every subject sees every item once (list 1). The item
  slopes I1 only make the two item groups' variances differ; they cannot be told apart from
  the item intercepts.
- ``full``: every subject sees every item in both conditions (list 1), as in Matuschek et al.
  (2017).

Random parameters (``random_parameters``), as in Barr et al.'s (2013, JML 68:255) simulations:
each replicate draws b0 ~ U(-3, 3), the four random-effect variances and the residual variance
~ U(0, 3) and both correlations ~ U(-0.8, 0.8) (the fixed values of those parameters are then
not used); b1 stays ``effect``. In the ``between_items`` layout the item slope is then set to
zero, as in Barr et al.'s generator (simgen's ``mkDf`` gives items nested in condition a random
intercept only); its variance and correlation are still drawn, so that the other parameters of a
replicate are the same in every layout. Independently of that, each replicate deletes a share
~ U(0, max_missing_share) of its rows at random (Barr et al. used 0.05).

The defaults (24 subjects x 12 items, b1 = 0.4, subject SDs 0.6 and 0.3 with correlation
0.2, item SDs 0.5 and 0.25 with correlation -0.3, residual SD 1) are those of the crossed
reference datasets in tests/reference/data.

The design is the same in every replicate unless rows are deleted (``fixed_design``).
Columns: ``y`` (float), ``condition`` (float, -0.5 / +0.5), ``subject``, ``item``, ``list``
(int, from 1). Truth: ``condition`` = b1, and ``Intercept`` = b0 unless b0 is drawn per replicate.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Literal, NamedTuple, get_args

import numpy as np
import pandas as pd

from sims.dgp.base import DGP, read_only, require, require_nonnegative, require_positive_int

Layout = Literal["counterbalanced", "between_items", "full"]

# Barr et al. (2013): the ranges of the uniform laws the random-parameter mode draws from.
BARR_INTERCEPT_RANGE = (-3.0, 3.0)
BARR_VARIANCE_RANGE = (0.0, 3.0)
BARR_CORRELATION_RANGE = (-0.8, 0.8)


def covariance_2x2(sd0: float, sd1: float, correlation: float) -> np.ndarray:
    return np.array([[sd0**2, correlation * sd0 * sd1], [correlation * sd0 * sd1, sd1**2]])


class VarianceParameters(NamedTuple):
    """One replicate's intercept, random-effect covariances and residual SD."""

    intercept: float
    subject_covariance: np.ndarray
    item_covariance: np.ndarray
    residual_sd: float


def require_layout(n_items: int, layout: str) -> None:
    """``layout`` is known and, unless ``full``, has an even number of items."""
    require(layout in get_args(Layout), "layout", f"must be one of {', '.join(get_args(Layout))}, got {layout!r}")
    if layout != "full":
        require(n_items % 2 == 0, "n_items", f"must be even for layout {layout!r} (half the items per condition), got {n_items}")


def crossed_design_columns(n_subjects: int, n_items: int, layout: str) -> dict[str, np.ndarray]:
    """Condition, subject, item and list of each row of ``layout`` (module docstring), sorted
    by subject and item, read-only."""
    subject = np.repeat(np.arange(1, n_subjects + 1), n_items)
    item = np.tile(np.arange(1, n_items + 1), n_subjects)
    if layout == "counterbalanced":
        lists = np.where(subject % 2 == 1, 1, 2)
        condition = np.where((item % 2 == 1) == (lists == 1), -0.5, 0.5)
    elif layout == "between_items":
        lists = np.ones_like(subject)
        condition = np.where(item <= n_items // 2, -0.5, 0.5)
    else:
        subject, item = np.repeat(subject, 2), np.repeat(item, 2)
        lists = np.ones_like(subject)
        condition = np.tile([-0.5, 0.5], n_subjects * n_items)
    return read_only({"condition": condition, "subject": subject, "item": item, "list": lists})


def crossed_linear_predictor(rng: np.random.Generator, columns: dict[str, np.ndarray], n_subjects: int, n_items: int,
                             intercept: float, effect: float, subject_covariance: np.ndarray,
                             item_covariance: np.ndarray) -> np.ndarray:
    """eta = b0 + b1 c + S0_s + S1_s c + I0_i + I1_i c on the rows of ``columns``: the subject
    effects are drawn first, then the item effects."""
    s, i, c = columns["subject"] - 1, columns["item"] - 1, columns["condition"]
    # eigh rather than Cholesky, so that zero SDs (switched-off effects) are allowed.
    subject_effects = rng.multivariate_normal(np.zeros(2), subject_covariance, size=n_subjects, method="eigh")
    item_effects = rng.multivariate_normal(np.zeros(2), item_covariance, size=n_items, method="eigh")
    return (intercept + effect * c + subject_effects[s, 0] + subject_effects[s, 1] * c
            + item_effects[i, 0] + item_effects[i, 1] * c)


@dataclasses.dataclass(frozen=True)
class CrossedDGP(DGP):
    n_subjects: int = 24
    n_items: int = 12
    layout: Layout = "counterbalanced"
    intercept: float = 0.0
    effect: float = 0.4
    subject_intercept_sd: float = 0.6
    subject_slope_sd: float = 0.3
    subject_correlation: float = 0.2
    item_intercept_sd: float = 0.5
    item_slope_sd: float = 0.25
    item_correlation: float = -0.3
    residual_sd: float = 1.0
    random_parameters: bool = False
    max_missing_share: float = 0.0

    columns: ClassVar[dict[str, str]] = {"y": "f", "condition": "f", "subject": "i", "item": "i", "list": "i"}
    outcome: ClassVar[str] = "y"

    def __post_init__(self):
        require_positive_int(self.n_subjects, "n_subjects")
        require_positive_int(self.n_items, "n_items")
        require_layout(self.n_items, self.layout)
        for name in ("intercept", "effect"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        for name in ("subject_intercept_sd", "subject_slope_sd", "item_intercept_sd", "item_slope_sd", "residual_sd"):
            require_nonnegative(getattr(self, name), name)
        for name in ("subject_correlation", "item_correlation"):
            value = getattr(self, name)
            require(np.isfinite(value) and -1.0 <= value <= 1.0, name, f"must be in [-1, 1], got {value!r}")
        require(isinstance(self.random_parameters, (bool, np.bool_)), "random_parameters",
                f"must be true or false, got {self.random_parameters!r}")
        require(np.isfinite(self.max_missing_share) and 0.0 <= self.max_missing_share < 1.0, "max_missing_share",
                f"must be in [0, 1), got {self.max_missing_share!r}")

    @property
    def fixed_design(self) -> bool:
        """Deleting rows at random changes the design from replicate to replicate."""
        return self.max_missing_share == 0.0

    def design_columns(self) -> dict[str, np.ndarray]:
        """Condition, subject, item and list of each row, sorted by subject and item (before
        any deletion)."""
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        return crossed_design_columns(self.n_subjects, self.n_items, self.layout)

    def variance_parameters(self, rng: np.random.Generator) -> VarianceParameters:
        """This replicate's parameters: the fixed ones, or Barr et al.'s uniform draws."""
        if not self.random_parameters:
            return VarianceParameters(
                self.intercept,
                covariance_2x2(self.subject_intercept_sd, self.subject_slope_sd, self.subject_correlation),
                covariance_2x2(self.item_intercept_sd, self.item_slope_sd, self.item_correlation),
                self.residual_sd,
            )
        intercept = rng.uniform(*BARR_INTERCEPT_RANGE)
        sds = np.sqrt(rng.uniform(*BARR_VARIANCE_RANGE, size=5))
        correlations = rng.uniform(*BARR_CORRELATION_RANGE, size=2)
        item_slope_sd = 0.0 if self.layout == "between_items" else sds[3]
        return VarianceParameters(
            intercept,
            covariance_2x2(sds[0], sds[1], correlations[0]),
            covariance_2x2(sds[2], item_slope_sd, correlations[1]),
            sds[4],
        )

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, "y", self.draw_outcome(rng))
        if self.max_missing_share > 0.0:
            n_deleted = round(rng.uniform(0.0, self.max_missing_share) * len(frame))
            deleted = rng.choice(len(frame), size=n_deleted, replace=False)
            frame = frame.drop(index=deleted).reset_index(drop=True)
        return frame

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """y of every row of the design before deletion (``generate(rng)["y"]`` when no rows
        are deleted; the same draws)."""
        parameters = self.variance_parameters(rng)
        columns = self._design_columns
        eta = crossed_linear_predictor(rng, columns, self.n_subjects, self.n_items, parameters.intercept, self.effect,
                                       parameters.subject_covariance, parameters.item_covariance)
        return eta + rng.normal(0.0, parameters.residual_sd, size=len(eta))

    def truth(self) -> dict[str, float]:
        if self.random_parameters:
            return {"condition": self.effect}
        return {"Intercept": self.intercept, "condition": self.effect}
