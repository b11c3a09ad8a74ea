"""Model matrices from formulas, and the input checks every estimator shares.

Errors are one line and name the offending column, so a bad config fails before a study runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Hashable, TypeVar

import numpy as np
import pandas as pd
import patsy
import scipy.sparse as sp

from estimators import sandwich

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
        a design held by a :class:`~estimators.batch.DesignCache`. A computation that raises is
        not kept."""
        try:
            return self._derived[name]
        except KeyError:
            value = self._derived[name] = compute()
            return value

    @property
    def indicator(self) -> sp.csr_matrix:
        """The G x n cluster indicator (:func:`estimators.sandwich.cluster_indicator`), kept
        with the design."""
        return self.derived("cluster_indicator", lambda: sandwich.cluster_indicator(self.clusters, self.n_clusters))

    def read_only(self) -> "Design":
        """The design with its arrays made read-only, as it is shared between fits."""
        self.X.flags.writeable = False
        if self.clusters is not None:
            self.clusters.flags.writeable = False
        return self


class InputError(ValueError):
    """Data an estimator cannot take: a missing column, missing values, too few clusters."""


_MISSING_NAME = re.compile(r"name '([^']+)' is not defined")


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _numeric_column(data: pd.DataFrame, name: str) -> np.ndarray | None:
    """Column ``name`` as floats when it is a plain numeric column without missing values."""
    if not _NAME.match(name) or name not in data.columns:
        return None
    column = data[name]
    if not isinstance(column, pd.Series) or not isinstance(column.dtype, np.dtype) or column.dtype.kind not in "iuf":
        return None
    values = column.to_numpy(dtype=float)
    return None if np.isnan(values).any() else values


def numeric_matrix(rhs: str, data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """patsy's model matrix and column names of a right-hand side made of plain numeric columns
    and an intercept (``x + z``, ``1 + x``, ``0 + x``, ``x - 1``), built directly: patsy takes
    a few milliseconds per formula, which is most of a single small fit. None for anything else
    (factors, interactions, transforms, missing values), which patsy builds as before. The
    matrix equals patsy's (tests/estimators/test_design.py)."""
    text = rhs.strip()
    intercept = True
    if text.endswith("- 1"):
        text, intercept = text[:-3].rstrip(), False
    parts = [part.strip() for part in text.split("+")] if text else []
    names = []
    for part in parts:
        if part == "1":
            continue
        if part == "0":
            intercept = False
            continue
        names.append(part)
    if "-" in text or len(set(names)) != len(names) or len(data) == 0 or ("1" in parts and not intercept):
        return None
    columns = [_numeric_column(data, name) for name in names]
    if any(column is None for column in columns) or not (names or intercept):
        return None
    X = np.empty((len(data), intercept + len(names)))
    if intercept:
        X[:, 0] = 1.0
    for j, column in enumerate(columns, start=int(intercept)):
        X[:, j] = column
    return X, (("Intercept",) if intercept else ()) + tuple(names)


def _numeric_outcome_and_matrix(formula: str, data: pd.DataFrame):
    """:func:`outcome_and_matrix` of ``y ~ <numeric_matrix>`` with y a plain numeric column, else None."""
    left, _, right = formula.partition("~")
    y = _numeric_column(data, left.strip())
    simple = numeric_matrix(right, data) if y is not None and "~" not in right else None
    return None if simple is None else (y, simple[0], simple[1], left.strip())


def outcome_and_matrix(formula: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """``y, X, term_names, outcome_name`` of a patsy formula, refusing missing columns and NaNs."""
    if "~" not in formula:
        raise InputError(f"formula {formula!r} has no '~' separating outcome and predictors")
    simple = _numeric_outcome_and_matrix(formula, data)
    if simple is not None:
        return simple
    del simple  # patsy reads names from this frame (eval_env=0): no new local may shadow a column
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


def build_design(formula: str, data: pd.DataFrame, cluster: str | None = None) -> tuple[Design, np.ndarray]:
    """The design of ``formula`` on ``data`` and the outcome vector."""
    y, X, terms, outcome = outcome_and_matrix(formula, data)
    clusters, n_clusters = cluster_codes(data, cluster) if cluster else (None, 0)
    return Design(outcome, X, terms, clusters, n_clusters), y
