"""A small per-process cache of prepared designs, keyed by the content of the design columns.

In a Monte Carlo study every chunk of replicates (and, when fitting one replicate at a time,
every replicate) of a fixed design has the same predictor columns. Building the model matrices
with patsy and what depends on them alone (cross-products, the OLS bread (X'X)^{-1}, the CR2/CR3
per-cluster adjustments, the CR2 Satterthwaite df) then costs more than the fits themselves
(patsy alone: 2-5 ms per design against well under 0.1 ms per replicate for an OLS fit), so
they are kept per design.

The key holds the estimator's own settings (formula, cluster column, REML flag, ...) and
:func:`design_fingerprint`, a hash of every column except the outcome (names, dtypes and
bytes), so a cached entry is used only for data with exactly the same design; everything in
it is computed by the same code from the same arrays as without the cache, so results are
bitwise those of a fresh build (derived quantities are kept with the design by
:meth:`estimators.design.Design.derived`). Each :class:`DesignCache` holds its last ``max_entries``
designs (least recently used first out).

Users: the mixed-model engine (:mod:`estimators.lmm.cache`) and the OLS family (OLS, fixed
effects, GEE) through :func:`design_and_outcome`.
"""
from __future__ import annotations

import hashlib
import re
import weakref
from collections import OrderedDict
from typing import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from estimators.batch import SharedDesignFrames
from estimators.design import Design, build_design, require_no_missing, stack_numeric_outcomes


def design_fingerprint(data: pd.DataFrame, outcome: str) -> str:
    """A hash of every column but ``outcome``: names, dtypes and values."""
    return columns_fingerprint(len(data), {name: data[name].to_numpy() for name in data.columns if name != outcome})


def columns_fingerprint(n_rows: int, columns: Mapping[str, np.ndarray]) -> str:
    """:func:`design_fingerprint` of the data whose columns other than the outcome are ``columns``."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(n_rows).encode())
    for name, values in columns.items():
        digest.update(f"{name}\x00{values.dtype.str}\x00".encode())
        if values.dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(values).tobytes())
        else:
            digest.update(pd.util.hash_pandas_object(pd.Series(values), index=False).to_numpy().tobytes())
    return digest.hexdigest()


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


# Designs of the OLS family (OLS, FixedEffects, GEE) seen by this process: a study has one
# design per DGP cell, and a process works through one cell at a time.
MAX_DESIGNS = 4
designs = DesignCache(MAX_DESIGNS)


def _read_only(design: Design) -> Design:
    """The design with its arrays made read-only, as it is shared between fits."""
    design.X.flags.writeable = False
    if design.clusters is not None:
        design.clusters.flags.writeable = False
    return design


def _plain_outcome(formula: str, dtypes: Mapping[str, np.dtype], cluster: str | None) -> str | None:
    """The outcome column when the left-hand side is a bare numeric column (``dtypes``: the
    data's column types) that nothing on the right-hand side (nor the cluster) reads, i.e. when
    the design depends on the other columns only; else None (no caching)."""
    if "~" not in formula:
        return None
    left, _, right = formula.partition("~")
    outcome = left.strip()
    if outcome not in dtypes or outcome == cluster or dtypes[outcome].kind not in "iuf":
        return None
    if re.search(rf"(?<![\w.]){re.escape(outcome)}(?![\w])", right):
        return None
    return outcome


def design_and_outcome(formula: str, data: pd.DataFrame, cluster: str | None = None) -> tuple[Design, np.ndarray]:
    """:func:`estimators.design.build_design`, with the design (and what has been derived from
    it, :meth:`Design.derived`) taken from :data:`designs` when this process has seen the same
    non-outcome columns with the same formula and cluster column."""
    outcome = _plain_outcome(formula, data.dtypes, cluster)
    if outcome is None:  # a transformed outcome such as log(y), or one the predictors read
        return build_design(formula, data, cluster)
    key = (formula, cluster, data[outcome].dtype.str, design_fingerprint(data, outcome))
    design = designs.get(key)
    if design is None:
        design, y = build_design(formula, data, cluster)
        if design.outcome == outcome:
            designs.put(key, _read_only(design))
        return design, y
    y = data[outcome].to_numpy(dtype=float)
    if np.isnan(y).any():
        build_design(formula, data, cluster)  # raises the usual InputError naming the column
    return design, y


# Column types and design fingerprint of each chunk of SharedDesignFrames alive, read once for
# all the chunk's fits.
_chunk_keys: "weakref.WeakKeyDictionary[SharedDesignFrames, tuple[dict, str]]" = weakref.WeakKeyDictionary()


def _chunk_key(frames: SharedDesignFrames) -> tuple[dict, str]:
    known = _chunk_keys.get(frames)
    if known is None:
        dtypes = {frames.outcome: frames.outcomes.dtype, **{name: v.dtype for name, v in frames.columns.items()}}
        known = _chunk_keys[frames] = (dtypes, columns_fingerprint(frames.outcomes.shape[0], frames.columns))
    return known


def stack_chunk(formula: str, frames: Sequence[pd.DataFrame], cluster: str | None = None
                ) -> tuple[Design, np.ndarray] | None:
    """The design a chunk of replicates shares and its (n, R) outcome matrix, or None when the
    frames differ in more than the outcome: handed over by a chunk drawn as an outcome matrix
    (:func:`shared_design_and_outcomes`), else read from the frames
    (:func:`~estimators.design.stack_numeric_outcomes`); the design comes from :data:`designs`
    either way."""
    if isinstance(frames, SharedDesignFrames):
        stacked = shared_design_and_outcomes(formula, frames, cluster)
        if stacked is not None:
            return stacked
    return stack_numeric_outcomes(formula, frames, cluster, design_and_outcome)


def shared_design_and_outcomes(formula: str, frames: SharedDesignFrames, cluster: str | None = None
                               ) -> tuple[Design, np.ndarray] | None:
    """The design and (n, R) outcome matrix of a chunk drawn as the design's columns and an
    outcome matrix, when the matrix holds the formula's outcome (else None): the design from
    :data:`designs` under the key :func:`design_and_outcome` gives the chunk's frames (the
    fingerprint hashed once per chunk), built from the first frame only when this process has
    not seen it."""
    dtypes, fingerprint = _chunk_key(frames)
    if _plain_outcome(formula, dtypes, cluster) != frames.outcome:
        return None
    design = designs.get((formula, cluster, frames.outcomes.dtype.str, fingerprint))
    if design is None:
        design, _ = design_and_outcome(formula, frames[0], cluster)
    return design, require_no_missing(frames.outcomes, design.outcome, formula)
