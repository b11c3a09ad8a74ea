"""Estimators that misbehave on purpose, for tests of the runner's failure handling."""
from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from estimators.base import Estimator
from estimators.ols import OLS
from estimators.result import FitResult, Status


class FlakyOLS(OLS):
    """OLS that raises when the first outcome exceeds ``threshold`` and returns a NaN estimate
    with status ``not_converged`` when it is below ``-threshold`` (relative to ``center``)."""

    def __init__(self, formula: str = "y ~ X", threshold: float = 0.0, center: float = 800.0, alpha: float = 0.05):
        super().__init__(formula=formula, vcov="iid", alpha=alpha)
        self.threshold = threshold
        self.center = center

    fit_batch = Estimator.fit_batch  # one fit per replicate, so each can fail alone

    def get_params(self) -> dict:
        return {"formula": self.formula, "threshold": self.threshold, "center": self.center, "alpha": self.alpha}

    def fit(self, data, rng=None) -> FitResult:
        first = data["y"].iloc[0] - self.center
        if first > self.threshold:
            raise RuntimeError(f"boom at y0={first:.3f}")
        result = super().fit(data, rng)
        if first < -self.threshold:
            return FitResult.failure(result.terms, "gave up", Status.not_converged)
        return result


class SlowOLS(OLS):
    """OLS that sleeps ``pause`` seconds per fit, and hangs (sleeps ``hang`` seconds) when the
    first outcome exceeds ``center + threshold``: a stand-in for an expensive or stuck fit."""

    fit_batch = Estimator.fit_batch

    def __init__(self, formula: str = "y ~ X", pause: float = 0.0, hang: float = 0.0,
                 threshold: float = float("inf"), center: float = 800.0, alpha: float = 0.05):
        super().__init__(formula=formula, vcov="iid", alpha=alpha)
        self.pause, self.hang, self.threshold, self.center = pause, hang, threshold, center

    def get_params(self) -> dict:
        return {"formula": self.formula, "pause": self.pause, "hang": self.hang,
                "threshold": self.threshold, "center": self.center, "alpha": self.alpha}

    def fit(self, data, rng=None) -> FitResult:
        time.sleep(self.hang if data["y"].iloc[0] - self.center > self.threshold else self.pause)
        return super().fit(data, rng)


class DyingOLS(OLS):
    """OLS whose process dies on the replicates whose first outcome is one of
    ``first_outcomes``: by ``os.abort()`` (SIGABRT, as a segfault in compiled code ends it) or,
    with ``death: exit``, by ``os._exit(3)``."""

    fit_batch = Estimator.fit_batch

    def __init__(self, formula: str = "y ~ X", first_outcomes: tuple = (), death: str = "abort",
                 alpha: float = 0.05):
        super().__init__(formula=formula, vcov="iid", alpha=alpha)
        self.first_outcomes = tuple(float(v) for v in first_outcomes)
        self.death = death

    def get_params(self) -> dict:
        return {"formula": self.formula, "first_outcomes": list(self.first_outcomes), "death": self.death,
                "alpha": self.alpha}

    def fit(self, data, rng=None) -> FitResult:
        if float(data["y"].iloc[0]) in self.first_outcomes:
            if self.death == "exit":
                os._exit(3)
            os.abort()
        return super().fit(data, rng)


class BadResultOLS(OLS):
    """OLS that misbehaves as ``behaviour`` says on the replicates whose first outcome is one of
    ``first_outcomes``: returns ``None``, a dict, a result with too few values or a result
    with NaN or infinite estimates under status ok, or raises ``SystemExit`` or
    ``KeyboardInterrupt``."""

    fit_batch = Estimator.fit_batch

    def __init__(self, formula: str = "y ~ X", behaviour: str = "none", first_outcomes: tuple = (),
                 alpha: float = 0.05):
        super().__init__(formula=formula, vcov="iid", alpha=alpha)
        self.behaviour = behaviour
        self.first_outcomes = tuple(float(v) for v in first_outcomes)

    def get_params(self) -> dict:
        return {"formula": self.formula, "behaviour": self.behaviour, "first_outcomes": list(self.first_outcomes),
                "alpha": self.alpha}

    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        if float(data["y"].iloc[0]) not in self.first_outcomes:
            return result
        if self.behaviour == "system_exit":
            sys.exit(4)
        if self.behaviour == "keyboard_interrupt":
            raise KeyboardInterrupt
        nan, inf = np.full(len(result.terms), np.nan), np.full(len(result.terms), np.inf)
        return {
            "none": None,
            "dict": result.to_frame().to_dict(),
            "short": dataclasses.replace(result, std_error=result.std_error[:1]),
            "all_nan": dataclasses.replace(result, estimate=nan),
            "infinite": dataclasses.replace(result, estimate=np.where(np.arange(len(nan)) == 0, inf, result.estimate)),
        }[self.behaviour]


def first_outcomes(reps) -> list[float]:
    """y[0] of replicates ``reps`` of the default study's cell: what the estimators above that
    take ``first_outcomes`` key on."""
    from sims.api import compose
    from sims.run.seeding import data_rng
    from sims.run.study import validate

    study = validate(compose(["estimators={ols: ols}"]))
    return [float(study.cells[0].dgp.generate(data_rng(study.seed, 0, rep))["y"].iloc[0]) for rep in reps]
