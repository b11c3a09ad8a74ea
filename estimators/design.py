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


def build_design(formula: str, data: pd.DataFrame, cluster: str | None = None) -> tuple[Design, np.ndarray]:
    """The design of ``formula`` on ``data`` and the outcome vector."""
    y, X, terms, outcome = outcome_and_matrix(formula, data)
    clusters, n_clusters = cluster_codes(data, cluster) if cluster else (None, 0)
    return Design(outcome, X, terms, clusters, n_clusters), y
