"""Replicates that share a design: the one path by which a chunk's outcomes are stacked and its
prepared design is looked up, for every estimator with a batched fit (the OLS family, the wild
bootstrap, the mixed-model engine and its model-selection and Barr estimators).

In a Monte Carlo study every replicate of a fixed design has the same predictor columns; only
the outcome changes. Building the model matrices with patsy and what depends on them alone
(cross-products, the OLS bread (X'X)^{-1}, the CR2/CR3 per-cluster adjustments, Z'Z for a mixed
model) then costs more than the fits themselves (patsy alone: 2-5 ms per design against well
under 0.1 ms per replicate for an OLS fit), so:

- :func:`stack_outcomes` turns a chunk into its (n, R) outcome matrix and a fingerprint of the
  design (every other column), or says that the frames do not share a design;
- :class:`DesignCache` keeps the last few prepared designs per process, keyed by the
  estimator's settings and that fingerprint (least recently used first out);
- :func:`shared_design` puts the two together, and :func:`frame_design` does the same for one
  frame, building afresh when the outcome is not a plain column (``log(y) ~ x``).

Everything in a cached entry is computed by the same code from the same arrays as without the
cache, so results are bitwise those of a fresh build.

A DGP whose design is the same in every replicate can draw a chunk's outcomes straight into an
(n, R) matrix (:meth:`sims.dgp.base.DGP.generate_chunk`) instead of building R data frames that
differ in one column. :class:`SharedDesignFrames` carries that matrix to the estimators'
``fit_batch``: :func:`stack_outcomes` takes ``outcomes`` as it is (no frame is built or read),
and every other estimator sees an ordinary sequence of frames, replicate ``r`` being column
``r`` of the matrix as the outcome, the first column, followed by the design columns: exactly
the frame the DGP's ``generate`` would have returned.
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections import OrderedDict
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd

from estimators.design import InputError

T = TypeVar("T")


def columns_fingerprint(n_rows: int, columns: Mapping[str, np.ndarray]) -> str:
    """A hash of ``n_rows`` and of ``columns``: names, dtypes and values."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(n_rows).encode())
    for name, values in columns.items():
        digest.update(f"{name}\x00{values.dtype.str}\x00".encode())
        if values.dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(values).tobytes())
        elif pd.api.types.infer_dtype(values, skipna=False) == "string":
            # Labels (subject, item): their lengths and UTF-8 text, a tenth of pandas' hashing time.
            digest.update(b"str\x00" + np.fromiter(map(len, values), dtype=np.int64, count=len(values)).tobytes())
            digest.update("".join(values).encode("utf-8", "surrogatepass"))
        else:
            digest.update(pd.util.hash_pandas_object(pd.Series(values), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def frame_fingerprint(data: pd.DataFrame, outcome: str | None = None) -> str:
    """:func:`columns_fingerprint` of every column of ``data`` but ``outcome``."""
    return columns_fingerprint(len(data), {name: data[name].to_numpy() for name in data.columns if name != outcome})


class SharedDesignFrames(Sequence[pd.DataFrame]):
    """R replicates: ``columns`` (name -> array of n values, the columns every replicate
    shares, in the frames' order) and ``outcomes`` (n, R), whose column r is replicate r's
    ``outcome`` column."""

    def __init__(self, columns: Mapping[str, np.ndarray], outcome: str, outcomes: np.ndarray):
        if outcome in columns:
            raise ValueError(f"outcome: column {outcome!r} is also a design column")
        n = outcomes.shape[0] if outcomes.ndim == 2 else -1
        wrong = [name for name, values in columns.items() if np.shape(values) != (n,)]
        if outcomes.ndim != 2 or wrong:
            raise ValueError(f"outcomes: must be an array of n rows by replicates, n the length of every design column; "
                             f"got shape {outcomes.shape} and columns of shapes {[np.shape(v) for v in columns.values()]}")
        self.columns = dict(columns)
        self.outcome = outcome
        self.outcomes = outcomes

    def __len__(self) -> int:
        return self.outcomes.shape[1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return SharedDesignFrames(self.columns, self.outcome, self.outcomes[:, index])
        return pd.DataFrame({self.outcome: self.outcomes[:, index].copy(),
                             **{name: values.copy() for name, values in self.columns.items()}})

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """The column types of every frame, by name."""
        return {self.outcome: self.outcomes.dtype, **{name: values.dtype for name, values in self.columns.items()}}

    @functools.cached_property
    def fingerprint(self) -> str:
        """:func:`frame_fingerprint` of every frame but its outcome, hashed once per chunk."""
        return columns_fingerprint(self.outcomes.shape[0], self.columns)


def plain_outcome(formula: str, dtypes: Mapping[str, np.dtype], reads: Sequence[str] = ()) -> str | None:
    """The outcome column of ``formula`` when its left-hand side is a bare numeric column
    (``dtypes``: the data's column types) that neither its right-hand side nor the columns
    ``reads`` (a cluster column) read, i.e. when the design depends on the other columns only;
    else None."""
    if "~" not in formula:
        return None
    left, _, right = formula.partition("~")
    outcome = left.strip()
    if outcome not in dtypes or outcome in reads or dtypes[outcome].kind not in "iuf":
        return None
    if re.search(rf"(?<![\w.]){re.escape(outcome)}(?![\w])", right):
        return None
    return outcome


def require_no_missing(Y: np.ndarray, outcome: str, formula: str) -> np.ndarray:
    """``Y``, unless it holds a missing value (InputError naming the outcome column). The sum of
    Y is NaN when a value is (or when +inf meets -inf), so the elementwise test runs only then."""
    if np.isnan(Y.sum()) and np.isnan(Y).any():
        raise InputError(f"column {outcome!r} has missing values (formula {formula!r})")
    return Y


def stack_outcomes(formula: str, frames: Sequence[pd.DataFrame], reads: Sequence[str] = ()
                   ) -> tuple[np.ndarray, str] | None:
    """The (n, R) matrix of the outcome of ``formula`` in each frame and the fingerprint of the
    design they share, or None when they do not share one: the outcome is not a plain column
    (:func:`plain_outcome`), or the frames differ in another column.

    :class:`SharedDesignFrames` hand over their outcome matrix as it is. Other frames must have
    the same columns, in the same order, with the same values (missing values in the same
    places count as equal, as in ``DataFrame.equals``), which is checked column by column on the
    arrays (cheap next to a refit). A missing outcome value raises InputError.
    """
    if isinstance(frames, SharedDesignFrames) and plain_outcome(formula, frames.dtypes, reads) == frames.outcome:
        return require_no_missing(frames.outcomes, frames.outcome, formula), frames.fingerprint
    first = frames[0]
    outcome = plain_outcome(formula, _outcome_dtype(formula, first), reads)
    if outcome is None:
        return None
    names = list(first.columns)
    reference = {name: first[name].to_numpy() for name in names if name != outcome}
    Y = np.empty((len(first), len(frames)))
    for r, frame in enumerate(frames):
        if r and (list(frame.columns) != names or len(frame) != len(first)
                  or not all(_same_values(frame[name].to_numpy(), values) for name, values in reference.items())):
            return None
        Y[:, r] = frame[outcome].to_numpy(dtype=float)
    return require_no_missing(Y, outcome, formula), columns_fingerprint(len(first), reference)


def _outcome_dtype(formula: str, frame: pd.DataFrame) -> Mapping[str, np.dtype]:
    """The type of the column named left of ``~``, all that :func:`plain_outcome` reads of the
    column types (``DataFrame.dtypes`` builds a Series of all of them, a sizeable part of a
    single small fit)."""
    left = formula.partition("~")[0].strip()
    if not frame.columns.is_unique:
        return frame.dtypes
    return {left: frame[left].dtype} if left in frame.columns else {}


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays, NaN equal to NaN; of one dtype unless both are floating point."""
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return np.array_equal(a, b, equal_nan=True)
    return a.dtype == b.dtype and np.array_equal(a, b)


class DesignCache:
    """A bounded least-recently-used map from a design key to what was prepared for it."""

    def __init__(self, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"max_entries: must be >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: "OrderedDict[Hashable, object]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> object | None:
        """The entry of ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: object) -> None:
        """Store ``entry``, dropping the least recently used ones beyond ``max_entries``."""
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get_or_build(self, key: Hashable, build: Callable[[], T]) -> T:
        """The entry of ``key``, or ``build()`` stored under it (nothing is stored if it raises)."""
        entry = self.get(key)
        if entry is None:
            entry = build()
            self.put(key, entry)
        return entry


# Builds a design from one frame: (the prepared design, the outcome vector).
Builder = Callable[[pd.DataFrame], "tuple[T, np.ndarray]"]


def shared_design(cache: DesignCache, formula: str, settings: tuple, frames: Sequence[pd.DataFrame],
                  build: Builder, reads: Sequence[str] = ()) -> tuple[T, np.ndarray] | None:
    """The prepared design the frames share and their (n, R) outcome matrix (:func:`stack_outcomes`),
    or None. The design comes from ``cache`` under (formula, *settings, fingerprint), the
    settings being whatever else of the estimator it depends on (cluster column, REML flag); on a
    miss it is built from the first frame by ``build``."""
    stacked = stack_outcomes(formula, frames, reads)
    if stacked is None:
        return None
    Y, fingerprint = stacked
    design = cache.get_or_build((formula, *settings, fingerprint), lambda: build(frames[0])[0])
    return design, Y


def frame_design(cache: DesignCache, formula: str, settings: tuple, data: pd.DataFrame,
                 build: Builder, reads: Sequence[str] = ()) -> tuple[T, np.ndarray]:
    """:func:`shared_design` of one frame, with the outcome as an (n, 1) matrix; a design whose
    outcome is not a plain column (``log(y) ~ x``, or one the predictors read) is built afresh."""
    shared = shared_design(cache, formula, settings, [data], build, reads)
    if shared is not None:
        return shared
    design, y = build(data)
    return design, y[:, None]
