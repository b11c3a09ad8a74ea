"""Checks of estimator parameters, run by the constructors so that a bad config fails before a
study starts.

Each raises :class:`InvalidParameter`, a ValueError whose message starts with the parameter's
name (``alpha: must be in (0, 1), got 2``): :func:`estimators.presets.instantiate` turns that
into a ConfigError naming the config key (``estimator.ols.alpha: ...``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class InvalidParameter(ValueError):
    """A parameter out of its range (of an estimator; the DGPs raise it too); ``str(error)``
    starts with the parameter's name."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.parameter = name


def require(condition: bool, name: str, problem: str) -> None:
    """Raise :class:`InvalidParameter` for ``name`` unless ``condition`` holds."""
    if not condition:
        raise InvalidParameter(name, problem)


def require_one_of(value, name: str, choices: Sequence[str]) -> None:
    """``value`` is one of ``choices`` (the values of an option's ``Literal`` type)."""
    require(value in choices, name, f"must be one of {', '.join(choices)}, got {value!r}")


def require_probability(value, name: str) -> None:
    """``value`` is in the open interval (0, 1), as a significance level."""
    require(0.0 < value < 1.0, name, f"must be in (0, 1), got {value!r}")


def require_positive(value, name: str) -> None:
    require(value > 0, name, f"must be > 0, got {value!r}")


def require_positive_int(value, name: str) -> None:
    """``value`` is an integer >= 1 (not a bool, not a float)."""
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
            name, f"must be a positive integer, got {value!r}")


def require_bool(value, name: str) -> None:
    require(isinstance(value, bool), name, f"must be true or false, got {value!r}")


def require_columns(value, name: str) -> None:
    """``value`` is a non-empty list of column names (a config's list, not a single string)."""
    require(bool(value) and not isinstance(value, str), name, f"must be a list of grouping columns, got {value!r}")
