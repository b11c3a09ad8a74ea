"""Subjects crossed with items, a two-level condition and a binary outcome (accuracy): the
logistic version of the ``crossed`` DGP, with its layouts (Jaeger 2008, J. Mem. Lang. 59:434;
Barr et al. 2013).

    eta_si = b0 + b1 c_si + S0_s + S1_s c_si + I0_i + I1_i c_si,
    (S0_s, S1_s) ~ N(0, [[sd_S0^2, r_S sd_S0 sd_S1], [r_S sd_S0 sd_S1, sd_S1^2]]),
    (I0_i, I1_i) ~ N(0, [[sd_I0^2, r_I sd_I0 sd_I1], [r_I sd_I0 sd_I1, sd_I1^2]]),
    y_si ~ Bernoulli(g^{-1}(eta_si)),

with c coded -0.5 / +0.5 and g the ``logit`` (default) or ``probit`` link; the layouts
(``counterbalanced``, ``between_items``, ``full``) are the crossed DGP's
(:func:`sims.dgp.crossed.crossed_design_columns`). glmer fits it as
``y ~ condition + (1 + condition | subject) + (1 + condition | item), family = binomial``.

The defaults (30 subjects x 16 items; b0 = 1, about 70% correct; b1 = 0.5; subject SDs 1 and
0.5, item SDs 0.75 and 0.25, correlations 0) are in the range of Jaeger's (2008) and Quené &
van den Bergh's (2008) accuracy examples.

Columns: ``y`` (float, 0 or 1), ``condition`` (float), ``subject``, ``item``, ``list`` (int).
Truth, on the link scale and conditional on the random effects: ``Intercept`` = b0,
``condition`` = b1. The design is the same in every replicate, drawn as an outcome matrix.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from estimators.families import inverse_link
from sims.dgp.base import DGP, require, require_nonnegative, require_positive_int
from sims.dgp.crossed import Layout, covariance_2x2, crossed_design_columns, crossed_linear_predictor, require_layout

BinaryLink = Literal["logit", "probit"]


@dataclasses.dataclass(frozen=True)
class CrossedBinaryDGP(DGP):
    n_subjects: int = 30
    n_items: int = 16
    layout: Layout = "counterbalanced"
    link: BinaryLink = "logit"
    intercept: float = 1.0
    effect: float = 0.5
    subject_intercept_sd: float = 1.0
    subject_slope_sd: float = 0.5
    subject_correlation: float = 0.0
    item_intercept_sd: float = 0.75
    item_slope_sd: float = 0.25
    item_correlation: float = 0.0

    columns: ClassVar[dict[str, str]] = {"y": "f", "condition": "f", "subject": "i", "item": "i", "list": "i"}
    outcome: ClassVar[str] = "y"
    fixed_design: ClassVar[bool] = True

    def __post_init__(self):
        require_positive_int(self.n_subjects, "n_subjects")
        require_positive_int(self.n_items, "n_items")
        require_layout(self.n_items, self.layout)
        require(self.link in get_args(BinaryLink), "link", f"must be one of {', '.join(get_args(BinaryLink))}, got {self.link!r}")
        for name in ("intercept", "effect"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        for name in ("subject_intercept_sd", "subject_slope_sd", "item_intercept_sd", "item_slope_sd"):
            require_nonnegative(getattr(self, name), name)
        for name in ("subject_correlation", "item_correlation"):
            value = getattr(self, name)
            require(np.isfinite(value) and -1.0 <= value <= 1.0, name, f"must be in [-1, 1], got {value!r}")

    def design_columns(self) -> dict[str, np.ndarray]:
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        return crossed_design_columns(self.n_subjects, self.n_items, self.layout)

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """y of every row (``generate(rng)["y"]``, the same draws): subject effects, item
        effects, then the Bernoulli draws."""
        eta = crossed_linear_predictor(
            rng, self._design_columns, self.n_subjects, self.n_items, self.intercept, self.effect,
            covariance_2x2(self.subject_intercept_sd, self.subject_slope_sd, self.subject_correlation),
            covariance_2x2(self.item_intercept_sd, self.item_slope_sd, self.item_correlation))
        return (rng.random(len(eta)) < inverse_link(self.link, eta)).astype(float)

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, "y", self.draw_outcome(rng))
        return frame

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "condition": self.effect}
