"""The response of a GLMM and its design: ``y ~ ...`` with y 0/1 or a count, or
``cbind(successes, failures) ~ ...`` (binomial with trials, as glmer), each side of cbind a
column or an expression of columns (``size - incidence``).

The binomial response is carried as the proportion y = k / m with prior weight m = k + f
(R's ``binomial()`` with a two-column response); a 0/1 response has m = 1. Responses that the
family cannot have (a non-binary y, negative or non-integer counts, successes above the trials)
are refused with an :class:`~estimators.design.InputError` naming the column.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from estimators.design import InputError
from estimators.lmm.design import MixedDesign, build_mixed_design
from estimators.lmm.formula import MixedFormula, parse_formula

_CBIND = re.compile(r"^cbind\s*\((.*)\)$", re.S)
# The outcome column the two-column response is put in for the design (never read by it).
_SUCCESSES = "_successes_"


def cbind_parts(outcome: str) -> tuple[str, str] | None:
    """The two expressions of ``cbind(a, b)``, or None for a one-column outcome."""
    match = _CBIND.match(outcome.strip())
    if not match:
        return None
    parts = _split_top_level(match.group(1))
    if len(parts) != 2:
        raise InputError(f"outcome {outcome!r}: cbind takes two columns, successes and failures")
    return parts[0], parts[1]


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


def response(parsed: MixedFormula, data: pd.DataFrame, family: str) -> tuple[np.ndarray, np.ndarray]:
    """The response y (proportion or count) and prior weights m of ``parsed`` on ``data``."""
    parts = cbind_parts(parsed.outcome)
    if parts is not None:
        if family != "binomial":
            raise InputError(f"outcome {parsed.outcome!r}: cbind(successes, failures) is a binomial response, "
                             f"not {family}")
        successes, failures = (_evaluate(e, data) for e in parts)
        _require_counts(successes, parts[0], "cbind(successes, failures)")
        _require_counts(failures, parts[1], "cbind(successes, failures)", "is negative: successes exceed the trials")
        trials = successes + failures
        if np.any(trials == 0):
            raise InputError(f"response cbind({parts[0]}, {parts[1]}) has rows with no trials")
        return successes / trials, trials
    if parsed.outcome not in data.columns:
        raise InputError(f"outcome column {parsed.outcome!r} is not in the data (columns: {', '.join(map(str, data.columns))})")
    y = np.asarray(data[parsed.outcome], dtype=float)
    if np.isnan(y).any():
        raise InputError(f"outcome column {parsed.outcome!r} has missing values")
    if family == "binomial" and not np.all((y == 0) | (y == 1)):
        bad = y[(y != 0) & (y != 1)][0]
        raise InputError(f"outcome column {parsed.outcome!r} must be 0/1 for family binomial (found {bad:g}); "
                         "use cbind(successes, failures) for counts of trials")
    if family == "poisson":
        _require_counts(y, parsed.outcome, "family poisson")
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


def glmm_design(formula: str, data: pd.DataFrame, family: str) -> tuple[MixedDesign, np.ndarray, np.ndarray]:
    """The design of ``formula`` (lme4 syntax, observation-level terms allowed), y and m."""
    parsed = parse_formula(formula)
    y, m = response(parsed, data, family)
    if cbind_parts(parsed.outcome) is not None:
        parsed = dataclasses.replace(parsed, outcome=_SUCCESSES)
        data = data.assign(**{_SUCCESSES: y})
    design, _ = build_mixed_design(parsed, data, observation_levels=True)
    return design, y, m
