"""A chunk of replicates that share a design, held as the design's columns and an outcome matrix.

A DGP whose design is the same in every replicate can draw a chunk's outcomes straight into an
(n, R) matrix (:meth:`sims.dgp.base.DGP.generate_chunk`) instead of building R data frames that
differ in one column. :class:`SharedDesignFrames` carries that matrix to the estimators'
``fit_batch``: estimators with a batched path take ``outcomes`` as it is (no frame is built or
read), and every other estimator sees an ordinary sequence of frames, replicate ``r`` being
column ``r`` of the matrix as the outcome, the first column, followed by the design columns:
exactly the frame the DGP's ``generate`` would have returned.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd


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


def shared_outcomes(frames: Sequence[pd.DataFrame], outcome: str) -> np.ndarray | None:
    """The outcome matrix of ``frames`` without reading a frame, when they are
    :class:`SharedDesignFrames` varying in ``outcome``; else None."""
    if isinstance(frames, SharedDesignFrames) and frames.outcome == outcome:
        return frames.outcomes
    return None
