"""Estimators: each turns one data frame into per-term estimates, SEs, dfs, CIs and p-values."""
from __future__ import annotations

from estimators.base import Estimator
from estimators.result import FitResult, Status


def build(name: str, **overrides) -> Estimator:
    """The estimator ``conf/estimator/<name>.yaml`` with some parameters replaced, e.g.
    ``estimators.build("ols_cr1", cluster="school")``."""
    from estimators.presets import build as build_preset

    return build_preset("estimator", name, **overrides)


__all__ = ["Estimator", "FitResult", "Status", "build"]
