"""The one result type every estimator returns, and the status codes of a fit.

A :class:`FitResult` holds, per fixed-effect term, the estimate, its standard error, the
degrees of freedom of its reference distribution (``inf`` for a normal reference), the
``1 - alpha`` confidence interval and the two-sided p-value of H0: coefficient = 0.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import special

RESULT_COLUMNS = ("term", "estimate", "std_error", "df", "ci_lower", "ci_upper", "p_value")
NUMERIC_COLUMNS = RESULT_COLUMNS[1:]


class Status(enum.IntEnum):
    """Outcome of one fit, stored as a small integer code in the results dataset.

    ``ok`` and ``singular`` fits count as valid replicates in the performance measures;
    ``not_converged`` fits keep their numbers in the dataset but are excluded; ``failed``
    fits (an exception, or an estimand the design cannot identify) carry NaNs.
    ``not_estimable`` fits ran, but the design cannot identify a requested term (e.g. a
    between-cluster predictor under cluster fixed effects): that term is NaN, the others keep
    their numbers, and the replicate is excluded like ``failed``. ``timeout`` fits were
    stopped after the estimator's ``timeout_s`` and carry NaNs.
    """

    ok = 0
    not_converged = 1
    singular = 2
    failed = 3
    not_estimable = 4
    timeout = 5


@dataclass(frozen=True)
class FitResult:
    """Per-term inference of one fit. Arrays are aligned with ``terms``."""

    terms: tuple[str, ...]
    estimate: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    p_value: np.ndarray
    status: Status = Status.ok
    message: str = ""
    extras: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per term with columns ``term, estimate, std_error, df, ci_lower, ci_upper, p_value``."""
        frame = pd.DataFrame({name: getattr(self, name) for name in NUMERIC_COLUMNS})
        frame.insert(0, "term", list(self.terms))
        return frame

    @classmethod
    def of_batch(cls, terms: tuple[str, ...], estimate: np.ndarray, std_error: np.ndarray, df: np.ndarray,
                 ci_lower: np.ndarray, ci_upper: np.ndarray, p_value: np.ndarray, status: Status,
                 message: str) -> "FitResult":
        """``FitResult(...)`` with empty extras, filled in one step instead of the frozen
        dataclass's ten ``object.__setattr__`` calls (a quarter of the time; batched fits build
        results by the thousand)."""
        result = object.__new__(cls)
        result.__dict__.update(terms=terms, estimate=estimate, std_error=std_error, df=df, ci_lower=ci_lower,
                               ci_upper=ci_upper, p_value=p_value, status=status, message=message, extras={})
        return result

    @classmethod
    def failure(cls, terms: Sequence[str], message: str, status: Status = Status.failed) -> "FitResult":
        """A result with NaN everywhere, for a fit that produced no usable numbers."""
        nan = np.full(len(terms), np.nan)
        return cls(tuple(terms), nan, nan, nan, nan, nan, nan, Status(status), message)


def t_test(estimate: np.ndarray, std_error: np.ndarray, df: np.ndarray | float, alpha: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided p-values and 1 - alpha intervals against t(df), elementwise:

        p = 2 P(T_df > |estimate / SE|),   CI = estimate -/+ q_{1 - alpha/2}(T_df) SE.

    scipy.special's ``stdtr`` / ``stdtrit``, the functions ``scipy.stats.t.sf`` / ``.ppf`` call
    (the same bits, without their per-call argument handling); df = inf is the normal law, and
    a NaN or non-positive df or SE gives NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        p_value = 2.0 * special.stdtr(df, -np.abs(estimate / std_error))
        half_width = special.stdtrit(df, 1.0 - alpha / 2.0) * std_error
    return p_value, estimate - half_width, estimate + half_width


def wald_inference(
    terms: Sequence[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray | float,
    alpha: float,
    status: Status = Status.ok,
    message: str = "",
    extras: dict | None = None,
) -> FitResult:
    """Wald intervals and p-values with a t(df) reference (normal where df is infinite).

    t = estimate / std_error;  p = 2 * P(T_df > |t|);  CI = estimate -/+ q_{1-alpha/2}(T_df) * std_error.
    """
    result = wald_inference_batch(terms, np.asarray(estimate, dtype=float)[None, :],
                                  np.asarray(std_error, dtype=float)[None, :], df, alpha, status, message)[0]
    return dataclasses.replace(result, extras=dict(extras or {}))


def wald_inference_batch(
    terms: Sequence[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray | float,
    alpha: float,
    status: Status = Status.ok,
    message: str = "",
) -> list[FitResult]:
    """:func:`wald_inference` for R replicates at once: ``estimate`` and ``std_error`` are (R, p),
    ``df`` broadcasts to them. One call per quantity instead of one per replicate; the numbers
    are the same as replicate by replicate.
    """
    estimate = np.asarray(estimate, dtype=float)
    std_error = np.asarray(std_error, dtype=float)
    p_value, lower, upper = t_test(estimate, std_error, np.asarray(df, dtype=float), alpha)
    df = np.array(np.broadcast_to(np.asarray(df, dtype=float), estimate.shape))
    terms = tuple(terms)
    status = Status(status)
    return [
        FitResult.of_batch(terms, *row, status, message)
        for row in zip(estimate, std_error, df, lower, upper, p_value)
    ]
