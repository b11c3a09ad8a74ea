"""Model matrices from formulas, and the input checks every estimator shares.

Errors are one line and name the offending column, so a bad config fails before a study runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence, TypeVar

import numpy as np
import pandas as pd
import patsy

T = TypeVar("T")


@dataclass(frozen=True)
class Design:
    """A fixed-effects design: outcome name, model matrix, term names and cluster codes."""

    outcome: str
    X: np.ndarray
    terms: tuple[str, ...]
    clusters: np.ndarray | None  # integer codes 0..G-1, or None
    n_clusters: int
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, name: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, kept with the design: quantities of the design alone (the bread, the
        CR2/CR3 adjustments, ...) are computed once per design object, and once per process for
        a design held by :mod:`estimators.design_cache`. A computation that raises is not kept."""
        try:
            return self._derived[name]
        except KeyError:
            value = self._derived[name] = compute()
            return value



class InputError(ValueError):
    """Data an estimator cannot take: a missing column, missing values, too few clusters."""


_MISSING_NAME = re.compile(r"name '([^']+)' is not defined")


def outcome_and_matrix(formula: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """``y, X, term_names, outcome_name`` of a patsy formula, refusing missing columns and NaNs."""
    if "~" not in formula:
        raise InputError(f"formula {formula!r} has no '~' separating outcome and predictors")
    try:
        y, X = patsy.dmatrices(formula, data, NA_action="raise", return_type="matrix", eval_env=0)
    except patsy.PatsyError as error:
        text = str(error)
        missing = _MISSING_NAME.search(text)
        if missing:
            raise InputError(f"column {missing.group(1)!r} named in formula {formula!r} is not in the data") from None
        if "missing values" in text:
            columns = [c for c in data.columns if c in formula and data[c].isna().any()]
            raise InputError(f"column {columns[0] if columns else '?'!r} has missing values (formula {formula!r})") from None
        raise InputError(f"formula {formula!r} cannot be evaluated: {text.splitlines()[0]}") from None
    outcome = y.design_info.column_names[0]
    return np.asarray(y, dtype=float)[:, 0], np.asarray(X, dtype=float), tuple(X.design_info.column_names), outcome


def cluster_codes(data: pd.DataFrame, column: str, min_clusters: int = 2) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 of a cluster column (in order of first appearance) and G."""
    if column not in data.columns:
        raise InputError(f"cluster column {column!r} is not in the data (columns: {', '.join(map(str, data.columns))})")
    values = data[column]
    if values.isna().any():
        raise InputError(f"cluster column {column!r} has missing values")
    codes, uniques = pd.factorize(values, sort=True)
    if len(uniques) < min_clusters:
        raise InputError(f"cluster column {column!r} has {len(uniques)} cluster(s); at least {min_clusters} are needed")
    return codes.astype(np.intp), len(uniques)


Builder = Callable[[str, pd.DataFrame, "str | None"], "tuple[Design, np.ndarray]"]


def build_design(formula: str, data: pd.DataFrame, cluster: str | None = None) -> tuple[Design, np.ndarray]:
    """The design of ``formula`` on ``data`` and the outcome vector."""
    y, X, terms, outcome = outcome_and_matrix(formula, data)
    clusters, n_clusters = cluster_codes(data, cluster) if cluster else (None, 0)
    return Design(outcome, X, terms, clusters, n_clusters), y


def stack_outcomes(formula: str, frames: Sequence[pd.DataFrame], cluster: str | None = None,
                   build: Builder = build_design) -> tuple[Design, np.ndarray] | None:
    """One design and an (n, R) outcome matrix when every frame shares the design, else None.

    Only the first frame is passed through patsy (by ``build``: :func:`build_design`, or
    :func:`estimators.design_cache.design_and_outcome` to reuse a design seen before); the
    others must have the same values in every column the design reads, which is checked column
    by column (cheap next to a refit).
    """
    design, y0 = build(formula, frames[0], cluster)
    if design.outcome not in frames[0].columns:  # a transformed outcome: no shortcut
        return None
    columns = [c for c in frames[0].columns if c != design.outcome]
    reference = frames[0][columns]
    for frame in frames[1:]:
        if len(frame) != len(reference) or not frame[columns].equals(reference):
            return None
    Y = np.empty((len(y0), len(frames)))
    Y[:, 0] = y0
    for r, frame in enumerate(frames[1:], start=1):
        column = frame[design.outcome].to_numpy(dtype=float)
        if np.isnan(column).any():
            raise InputError(f"column {design.outcome!r} has missing values (formula {formula!r})")
        Y[:, r] = column
    return design, Y


def stack_numeric_outcomes(formula: str, frames: Sequence[pd.DataFrame], cluster: str | None = None,
                           build: Builder = build_design) -> tuple[Design, np.ndarray] | None:
    """:func:`stack_outcomes` for frames whose columns are all numeric, at a fraction of its cost.

    Each frame is read once as one float array (``DataFrame.to_numpy``); every column but the
    outcome must equal the first frame's (missing values in the same places count as equal, as
    in ``DataFrame.equals``). Frames with other column types, or another column order, go
    through :func:`stack_outcomes`. (A chunk drawn as an outcome matrix goes through
    :func:`estimators.design_cache.stack_chunk` instead, which reads no frame.)
    """
    first = frames[0]
    if not all(dtype.kind in "biuf" for dtype in first.dtypes):
        return stack_outcomes(formula, frames, cluster, build)
    design, y0 = build(formula, first, cluster)
    if design.outcome not in first.columns:  # a transformed outcome: no shortcut
        return None
    names = tuple(first.columns)
    position = names.index(design.outcome)
    reference = first.to_numpy(dtype=float)
    Y = np.empty((len(y0), len(frames)))
    Y[:, 0] = y0
    for r, frame in enumerate(frames[1:], start=1):
        if tuple(frame.columns) != names:
            return stack_outcomes(formula, frames, cluster, build)
        values = frame.to_numpy(dtype=float)
        if values.shape != reference.shape:
            return None
        if not _same_except(values, reference, position):
            return None
        Y[:, r] = values[:, position]
    return design, require_no_missing(Y, design.outcome, formula)


def require_no_missing(Y: np.ndarray, outcome: str, formula: str) -> np.ndarray:
    """``Y``, unless it holds a missing value (InputError naming the outcome column). The sum of
    Y is NaN when a value is (or when +inf meets -inf), so the elementwise test runs only then."""
    if np.isnan(Y.sum()) and np.isnan(Y).any():
        raise InputError(f"column {outcome!r} has missing values (formula {formula!r})")
    return Y


def _same_except(a: np.ndarray, b: np.ndarray, column: int) -> bool:
    """Equal arrays but for one column, NaN equal to NaN (``DataFrame.equals``)."""
    equal = a == b
    equal[:, column] = True
    return bool(equal.all()) or bool((equal | (np.isnan(a) & np.isnan(b))).all())
