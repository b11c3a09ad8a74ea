"""The data-generating-process protocol.

A DGP is a frozen dataclass whose fields are its parameters (plain numbers, strings, lists).
``generate(rng)`` draws one replicate as a pandas DataFrame; ``truth()`` returns the estimands
keyed by the term names the estimators report (``Intercept``, ``X``, ...). ``fixed_design``
declares that everything but the outcome column is the same in every replicate, which lets
estimators fit a chunk of replicates at once.

Parameters are validated in ``__post_init__``; an invalid value raises
:class:`InvalidParameter`, whose message names the parameter.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd


class InvalidParameter(ValueError):
    """A DGP parameter out of its range; ``str(error)`` starts with the parameter's name."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.parameter = name


@dataclasses.dataclass(frozen=True)
class DGP:
    """Base class; subclasses are frozen dataclasses and set the class variables below."""

    fixed_design: ClassVar[bool] = False
    columns: ClassVar[dict[str, str]] = {}  # column name -> numpy dtype kind ('f', 'i', ...)

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    def truth(self) -> dict[str, float]:
        raise NotImplementedError

    def params(self) -> dict:
        """The parameters as a plain dict."""
        return dataclasses.asdict(self)


def require(condition: bool, name: str, problem: str) -> None:
    """Raise :class:`InvalidParameter` for ``name`` unless ``condition`` holds."""
    if not condition:
        raise InvalidParameter(name, problem)


def require_positive_int(value, name: str) -> None:
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
            name, f"must be a positive integer, got {value!r}")


def require_nonnegative(value, name: str) -> None:
    require(np.isfinite(value) and value >= 0, name, f"must be >= 0, got {value!r}")


def require_positive_definite(covariance: np.ndarray, name: str) -> None:
    """Positive semi-definite (zero variances are allowed: a random effect switched off)."""
    require(np.all(np.linalg.eigvalsh(covariance) >= -1e-10 * max(1.0, np.abs(covariance).max())),
            name, f"covariance matrix {covariance.tolist()} is not positive semi-definite")
