"""Random-effects structures for a predictor whose effect may vary over grouping factors: their
formulas, the candidate models of the selection procedures, which factors a design gives a
slope, and the slope variances the procedures drop slopes by.

For outcome y, predictor c, grouping factors g_1..g_k and the factors S that keep a slope,

    correlated      y ~ c + (1 + c | g) for g in S, (1 | g) for the others
    uncorrelated    y ~ c + (1 + c || g) for g in S, (1 | g) for the others

(Barr, Levy, Scheepers & Tily 2013: "maximal" and "zero-correlation"; Matuschek, Kliegl,
Vasishth, Baayen & Bates 2017: "max" and "zcp"). With S empty both are the intercepts-only
model. The Barr fallback (:mod:`estimators.barr_fallback`) and the selection procedures
(:mod:`.selection`) build on this module alone.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from estimators.design import InputError
from estimators.lmm.fit import MixedFit


@dataclass(frozen=True)
class Candidate:
    """One random-effects structure: its name, formula and the factors that keep a slope."""

    name: str
    formula: str
    slopes: tuple[str, ...]
    correlated: bool


def structure_formula(outcome: str, predictor: str, factors: Sequence[str], slopes: Sequence[str],
                      correlated: bool) -> str:
    """``outcome ~ predictor`` plus a random intercept per factor and a slope for those in ``slopes``."""
    bar = "|" if correlated else "||"
    terms = [f"(1 + {predictor} {bar} {g})" if g in slopes else f"(1 | {g})" for g in factors]
    return f"{outcome} ~ {predictor} + " + " + ".join(terms)


def without_slopes(name: str, dropped: Sequence[str]) -> str:
    """``name`` followed by ``_no_<factor>_slope`` for each factor in ``dropped``."""
    return name + "".join(f"_no_{g}_slope" for g in dropped)


def candidates(outcome: str, predictor: str, factors: Sequence[str]) -> list[Candidate]:
    """max, zcp, zcp without one or more slopes (all subsets, largest first), intercepts."""
    factors = tuple(factors)
    out = [Candidate("max", structure_formula(outcome, predictor, factors, factors, True), factors, True)]
    for size in range(len(factors), -1, -1):
        for dropped in itertools.combinations(factors, len(factors) - size):
            slopes = tuple(g for g in factors if g not in dropped)
            name = "intercepts" if size == 0 else without_slopes("zcp", dropped)
            out.append(Candidate(name, structure_formula(outcome, predictor, factors, slopes, False), slopes, False))
    return out


def factors_with_slopes(data: pd.DataFrame, predictor: str, factors: Sequence[str]) -> tuple[str, ...]:
    """The factors within whose levels ``predictor`` varies (for at least one level): those a
    design-driven structure gives a slope."""
    out = []
    values, n_values = _codes(data[predictor])
    for factor in factors:
        if factor not in data.columns:
            raise InputError(f"grouping column {factor!r} is not in the data")
        levels, _ = _codes(data[factor])
        seen = (levels >= 0) & (values >= 0)  # missing values count for neither, as in nunique
        pairs = np.unique(levels[seen] * n_values + values[seen])  # the (level, value) pairs present
        if np.any(np.bincount(pairs // n_values) > 1):
            out.append(factor)
    return tuple(out)


def _codes(column: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values (-1 for missing) and the number of distinct values."""
    values = column.to_numpy()
    if values.dtype.kind in "biuf":  # numbers: np.unique, much cheaper than pandas on short columns
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
        uniques, codes = np.unique(values[~missing], return_inverse=True)
        out = np.full(len(values), -1, dtype=np.int64)
        out[~missing] = codes
        return out, max(len(uniques), 1)
    codes, uniques = pd.factorize(column, sort=False)
    return codes.astype(np.int64), max(len(uniques), 1)


def slope_variance(fit: MixedFit, factor: str) -> float:
    """The estimated variance of the by-``factor`` random slopes (every effect of the factor but
    its intercept), in a correlated or an uncorrelated fit."""
    return sum(float(np.sum(c.sds[[name != "Intercept" for name in c.names]] ** 2))
               for c in fit.components if c.group == factor)


def factor_variance(fit: MixedFit, factor: str) -> float:
    """Total variance of the random effects of ``factor`` (all its terms)."""
    return sum(float(np.sum(c.sds**2)) for c in fit.components if c.group == factor)


def smallest_slope(fit: MixedFit, slopes: Sequence[str]) -> str:
    """The factor of ``slopes`` whose slope has the smallest estimated variance in ``fit``."""
    return min(slopes, key=lambda g: slope_variance(fit, g))
