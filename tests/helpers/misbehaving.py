"""Estimators that misbehave on purpose, for tests of the runner's failure handling."""
from __future__ import annotations

import os
import time


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


class ExitingOLS(OLS):
    """OLS whose worker process dies (``os._exit``) when the first outcome exceeds
    ``center + threshold``."""

    fit_batch = Estimator.fit_batch

    def __init__(self, formula: str = "y ~ X", threshold: float = 0.0, center: float = 800.0, alpha: float = 0.05):
        super().__init__(formula=formula, vcov="iid", alpha=alpha)
        self.threshold, self.center = threshold, center

    def get_params(self) -> dict:
        return {"formula": self.formula, "threshold": self.threshold, "center": self.center, "alpha": self.alpha}

    def fit(self, data, rng=None) -> FitResult:
        if data["y"].iloc[0] - self.center > self.threshold:
            os._exit(3)
        return super().fit(data, rng)
