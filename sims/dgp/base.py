"""The data-generating-process protocol.

A DGP is a frozen dataclass whose fields are its parameters (plain numbers, strings, lists).
``generate(rng)`` draws one replicate as a pandas DataFrame; ``truth()`` returns the estimands
keyed by the term names the estimators report (``Intercept``, ``X``, ...). ``fixed_design``
declares that everything but the outcome column is the same in every replicate, which lets
estimators fit a chunk of replicates at once.

A fixed design can also be drawn without building a frame per replicate: a DGP that names its
``outcome`` column and implements ``design_columns()`` (the other columns, as arrays) and
``draw_outcome(rng)`` (that column, with the same draws as ``generate(rng)``) has each chunk
drawn by ``generate_chunk`` as the design's columns and an (n, R) outcome matrix
(:class:`estimators.batch.SharedDesignFrames`), which batched estimators fit without building
or reading a frame.

Parameters are validated in ``__post_init__``; an invalid value raises
:class:`~estimators.params.InvalidParameter` (the estimators' own), whose message names the
parameter; ``require`` and ``require_positive_int`` are the estimators' checks too. A DGP that
reads anything besides its parameters (a data file) names it in ``provenance()``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from estimators.batch import SharedDesignFrames
from estimators.params import InvalidParameter, require, require_positive_int

__all__ = ["DGP", "InvalidParameter", "read_only", "require", "require_nonnegative", "require_positive_definite",
           "require_positive_int"]


@dataclasses.dataclass(frozen=True)
class DGP:
    """Base class; subclasses are frozen dataclasses and set the class variables below."""

    fixed_design: ClassVar[bool] = False
    columns: ClassVar[dict[str, str]] = {}  # column name -> numpy dtype kind ('f', 'i', ...)
    outcome: ClassVar[str | None] = None  # set with design_columns() and draw_outcome(): see above

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    def design_columns(self) -> dict[str, np.ndarray]:
        """A fixed design's columns other than ``outcome``, in ``generate``'s order, as arrays
        that are not to be changed (they may be shared by every replicate)."""
        raise NotImplementedError

    def design(self) -> pd.DataFrame:
        """:meth:`design_columns` as a data frame (of copies)."""
        return pd.DataFrame({name: values.copy() for name, values in self.design_columns().items()})

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """A fixed design's ``outcome`` column: ``generate(rng)[outcome]``, the same draws."""
        raise NotImplementedError

    def generate_chunk(self, rngs: Sequence[np.random.Generator]) -> Sequence[pd.DataFrame]:
        """One replicate per generator, equal to ``[generate(rng) for rng in rngs]``; for a
        fixed design with an ``outcome``, as the design's columns and an outcome matrix."""
        if not (self.fixed_design and self.outcome is not None and len(rngs) > 0):
            return [self.generate(rng) for rng in rngs]
        columns = self.design_columns()
        first = self.draw_outcome(rngs[0])
        outcomes = np.empty((len(first), len(rngs)), dtype=first.dtype)  # integer counts stay integers
        outcomes[:, 0] = first
        for r, rng in enumerate(rngs[1:], start=1):
            outcomes[:, r] = self.draw_outcome(rng)
        return SharedDesignFrames(columns, self.outcome, outcomes)

    def truth(self) -> dict[str, float]:
        raise NotImplementedError

    def provenance(self) -> dict:
        """What the DGP reads besides its parameters and what changes its numbers (the SHA-256
        of a data file), as plain values; a study records them with its config
        (``dgp.<key>`` in the store's provenance), so that a resume refuses a change."""
        return {}

    def params(self) -> dict:
        """The parameters as a plain dict."""
        return dataclasses.asdict(self)


def normal_factor(covariance: np.ndarray) -> np.ndarray:
    """A with A A' = covariance as numpy's ``Generator.multivariate_normal(method="eigh")``
    computes it: U sqrt(|s|) from ``eigh(covariance) = (s, U)`` (a zero variance allowed)."""
    s, u = np.linalg.eigh(np.asarray(covariance, dtype=np.double))
    return u * np.sqrt(abs(s))


def multivariate_normal(rng: np.random.Generator, factor: np.ndarray, size: int) -> np.ndarray:
    """(size, k) draws of N(0, A A') for ``factor`` A = :func:`normal_factor`: bit for bit
    ``rng.multivariate_normal(np.zeros(k), A A', size, method="eigh")`` (the same standard
    normals, then 0 + x A'), without the eigendecomposition numpy repeats for every draw (half
    of a replicate's draw in the clustered design)."""
    k = factor.shape[0]
    return np.zeros(k) + rng.standard_normal((size, k)) @ factor.T


def read_only(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``columns`` with every array made read-only (design columns shared between replicates)."""
    for values in columns.values():
        values.flags.writeable = False
    return columns


def require_nonnegative(value, name: str) -> None:
    require(np.isfinite(value) and value >= 0, name, f"must be >= 0, got {value!r}")


def require_positive_definite(covariance: np.ndarray, name: str) -> None:
    """Positive semi-definite (zero variances are allowed: a random effect switched off)."""
    require(np.all(np.linalg.eigvalsh(covariance) >= -1e-10 * max(1.0, np.abs(covariance).max())),
            name, f"covariance matrix {covariance.tolist()} is not positive semi-definite")
