"""The response of a binomial or Poisson model: a column (y 0/1 or a count), or the two-column
binomial response ``cbind(successes, failures)`` (R's ``glm``, ``glmer`` and ``geeglm``), each
side of cbind a column or an expression of columns (``size - incidence``). Shared by the GLMM
(:mod:`estimators.glmm.design`), the GLM and the GEE.

The two-column response is carried as the proportion y = k / m with prior weight m = k + f
(R's ``binomial()$initialize`` for a two-column response); a 0/1 response has m = 1. Responses
that the family cannot have (a non-binary y, negative or non-integer counts, successes above the
trials, rows with no trials, cbind for another family than binomial) are refused with an
:class:`~estimators.design.InputError` naming the column.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from estimators.design import Design, InputError, build_design

_CBIND = re.compile(r"^cbind\s*\((.*)\)$", re.S)
# The outcome column the proportions of a two-column response are put in for the design
# builders (never read by the design itself).
PROPORTION_COLUMN = "_successes_"


def cbind_parts(outcome: str) -> tuple[str, str] | None:
    """The two expressions of ``cbind(a, b)``, or None for a one-column outcome."""
    match = _CBIND.match(outcome.strip())
    if not match:
        return None
    parts = _split_top_level(match.group(1))
    if len(parts) != 2:
        raise InputError(f"outcome {outcome!r}: cbind takes two columns, successes and failures")
    return parts[0], parts[1]


def formula_outcome(formula: str) -> str:
    """The left-hand side of ``formula`` (everything before its ``~``)."""
    return formula.partition("~")[0].strip()


def require_cbind_binomial(outcome: str, family: str) -> None:
    """A two-column ``outcome`` only for the binomial family (InputError otherwise)."""
    if cbind_parts(outcome) is not None and family != "binomial":
        raise InputError(f"outcome {outcome!r}: cbind(successes, failures) is a binomial response, not {family}")


def _split_top_level(text: str) -> list[str]:
    depth, start, out = 0, 0, []
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def _evaluate(expression: str, data: pd.DataFrame) -> np.ndarray:
    if expression in data.columns:
        return np.asarray(data[expression], dtype=float)
    try:
        return np.asarray(data.eval(expression), dtype=float)
    except Exception:
        raise InputError(f"response {expression!r} is not a column of the data and cannot be evaluated "
                         f"(columns: {', '.join(map(str, data.columns))})") from None


def response(outcome: str, data: pd.DataFrame, family: str) -> tuple[np.ndarray, np.ndarray]:
    """The response y (proportion or count) and prior weights m of ``outcome`` on ``data``."""
    require_cbind_binomial(outcome, family)
    parts = cbind_parts(outcome)
    if parts is not None:
        successes, failures = (_evaluate(e, data) for e in parts)
        _require_counts(successes, parts[0], "cbind(successes, failures)")
        _require_counts(failures, parts[1], "cbind(successes, failures)", "is negative: successes exceed the trials")
        trials = successes + failures
        if np.any(trials == 0):
            raise InputError(f"response cbind({parts[0]}, {parts[1]}) has rows with no trials "
                             f"(row {int(np.argmax(trials == 0))})")
        return successes / trials, trials
    if outcome not in data.columns:
        raise InputError(f"outcome column {outcome!r} is not in the data (columns: {', '.join(map(str, data.columns))})")
    y = np.asarray(data[outcome], dtype=float)
    if np.isnan(y).any():
        raise InputError(f"outcome column {outcome!r} has missing values")
    if family == "binomial" and not np.all((y == 0) | (y == 1)):
        bad = y[(y != 0) & (y != 1)][0]
        raise InputError(f"outcome column {outcome!r} must be 0/1 for family binomial (found {bad:g}); "
                         "use cbind(successes, failures) for counts of trials")
    if family == "poisson":
        _require_counts(y, outcome, "family poisson")
    return y, np.ones_like(y)


def _require_counts(values: np.ndarray, name: str, what: str, negative: str | None = None) -> None:
    if np.isnan(values).any():
        raise InputError(f"response column {name!r} has missing values")
    fractional = values[values != np.rint(values)]
    if fractional.size:
        raise InputError(f"response column {name!r} must hold integer counts for {what} (found {fractional[0]:g})")
    if np.any(values < 0):
        raise InputError(f"response column {name!r} {negative or f'must be non-negative for {what}'} "
                         f"(found {values[values < 0][0]:g})")


def trials_design(formula: str, data: pd.DataFrame, family: str, cluster: str | None
                  ) -> tuple[Design, np.ndarray, np.ndarray] | None:
    """For ``cbind(successes, failures) ~ rhs`` (a patsy right-hand side): the design of rhs
    (its ``outcome`` the cbind text), the proportions y and the trials m; None for a formula
    with a one-column outcome."""
    outcome = formula_outcome(formula)
    if cbind_parts(outcome) is None:
        return None
    y, m = response(outcome, data, family)
    rhs = formula.partition("~")[2]
    design, _ = build_design(f"{PROPORTION_COLUMN} ~ {rhs}", data.assign(**{PROPORTION_COLUMN: y}), cluster)
    return dataclasses.replace(design, outcome=outcome), y, m
