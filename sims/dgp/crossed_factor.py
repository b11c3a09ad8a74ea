"""Subjects crossed with items and a condition factor of several levels, every subject seeing
every condition and every item in every condition (a Latin square), with random effects of
subjects, items, and their interactions with the condition:

    y_sic = mu_c + S_s + (SC)_sc + I_i + (IC)_ic + e_si,
    S_s ~ N(0, subject_sd^2), (SC)_sc ~ N(0, subject_condition_sd^2),
    I_i ~ N(0, item_sd^2),    (IC)_ic ~ N(0, item_condition_sd^2),   e_si ~ N(0, residual_sd^2),

all independent, for subjects s = 1..n_subjects, items i = 1..n_items and condition levels
c = a, b, c, ... (``n_levels``). Subject s sees item i once, in level (s + i) mod n_levels, so
with n_subjects and n_items multiples of n_levels each subject sees n_items / n_levels items per
level and each item is seen in every level by n_subjects / n_levels subjects.
(SC) and (IC) make the condition effect vary over subjects and items with compound-symmetric
covariance (the random slopes of a factor under ``(1 | subject) + (1 | subject:condition)``,
as nlme's Machines data with ``(1 | Worker) + (1 | Worker:Machine)``), so the mixed model

    y ~ condition + (1 | subject) + (1 | subject:condition) + (1 | item) + (1 | item:condition)

is the true one. The level means are evenly spaced, mu_k = ``intercept`` + k ``effect`` for the
k-th level (k = 0, 1, ...; ``effect`` 0 by default: no effect, the setting of a Type I error
study).

The design is the same in every replicate. Columns: ``y`` (float), ``condition`` (string,
``a``, ``b``, ...), ``subject``, ``item`` (int, from 1). Truth, in treatment coding:
``Intercept`` = mu_a and ``condition[T.<level>]`` = mu_level - mu_a.
"""
from __future__ import annotations

import dataclasses
import functools
import string
from typing import ClassVar

import numpy as np

from sims.dgp.base import DGP, read_only, require, require_nonnegative, require_positive_int


@dataclasses.dataclass(frozen=True)
class CrossedFactorDGP(DGP):
    n_subjects: int = 12
    n_items: int = 12
    n_levels: int = 3
    intercept: float = 0.0
    effect: float = 0.0  # mu of the k-th level (k = 0, 1, ...) is intercept + k * effect
    subject_sd: float = 0.6
    subject_condition_sd: float = 0.3
    item_sd: float = 0.5
    item_condition_sd: float = 0.3
    residual_sd: float = 1.0

    columns: ClassVar[dict[str, str]] = {"y": "f", "condition": "O", "subject": "i", "item": "i"}
    outcome: ClassVar[str] = "y"
    fixed_design: ClassVar[bool] = True

    def __post_init__(self):
        require_positive_int(self.n_levels, "n_levels")
        require(2 <= self.n_levels <= 26, "n_levels", f"must be between 2 and 26, got {self.n_levels}")
        for name in ("n_subjects", "n_items"):
            value = getattr(self, name)
            require_positive_int(value, name)
            require(value % self.n_levels == 0, name, f"must be a multiple of n_levels ({self.n_levels}), got {value}")
        require(np.isfinite(self.intercept), "intercept", f"must be a finite number, got {self.intercept!r}")
        require(np.isfinite(self.effect), "effect", f"must be a finite number, got {self.effect!r}")
        for name in ("subject_sd", "subject_condition_sd", "item_sd", "item_condition_sd", "residual_sd"):
            require_nonnegative(getattr(self, name), name)

    @property
    def levels(self) -> list[str]:
        return list(string.ascii_lowercase[:self.n_levels])

    @property
    def level_effects(self) -> np.ndarray:
        """mu_c - mu_a per level: 0, effect, 2 effect, ..."""
        return self.effect * np.arange(self.n_levels)

    def design_columns(self) -> dict[str, np.ndarray]:
        return self._design_columns

    @functools.cached_property
    def _design_columns(self) -> dict[str, np.ndarray]:
        subject = np.repeat(np.arange(1, self.n_subjects + 1), self.n_items)
        item = np.tile(np.arange(1, self.n_items + 1), self.n_subjects)
        level = (subject + item) % self.n_levels
        condition = np.array(self.levels, dtype=object)[level]
        return read_only({"condition": condition, "subject": subject, "item": item})

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, "y", self.draw_outcome(rng))
        return frame

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        columns = self._design_columns
        s, i = columns["subject"] - 1, columns["item"] - 1
        c = (columns["subject"] + columns["item"]) % self.n_levels
        K = self.n_levels
        subject = rng.normal(0.0, self.subject_sd, self.n_subjects)
        subject_condition = rng.normal(0.0, self.subject_condition_sd, (self.n_subjects, K))
        item = rng.normal(0.0, self.item_sd, self.n_items)
        item_condition = rng.normal(0.0, self.item_condition_sd, (self.n_items, K))
        return (self.intercept + self.level_effects[c] + subject[s] + subject_condition[s, c] + item[i]
                + item_condition[i, c] + rng.normal(0.0, self.residual_sd, len(s)))

    def truth(self) -> dict[str, float]:
        out = {"Intercept": float(self.intercept)}
        for level, effect in zip(self.levels[1:], self.level_effects[1:]):
            out[f"condition[T.{level}]"] = float(effect)
        return out
