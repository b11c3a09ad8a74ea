"""The estimator protocol: an object is its parameters, ``fit`` turns one data frame into a
:class:`~estimators.result.FitResult`, ``fit_batch`` does the same for a chunk of replicates.

As in scikit-learn, constructors take explicit keyword parameters and store them unchanged
under the same names; :meth:`Estimator.get_params` reads them back from the ``__init__``
signature, so an estimator can be rebuilt, compared and logged from its parameters alone.
"""
from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np
import pandas as pd

from estimators.batch import DesignCache, frame_design, shared_design
from estimators.design import Design, InputError, build_design
from estimators.params import InvalidParameter
from estimators.response import formula_outcome, require_cbind_binomial, trials_design
from estimators.result import FitResult


def init_parameters(cls: type) -> list[str]:
    """The names of the explicit parameters of ``cls.__init__`` (no ``self``, ``*args``, ``**kwargs``)."""
    signature = inspect.signature(cls.__init__)
    return [name for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


class Estimator:
    """Base class for estimators. Subclasses implement :meth:`fit`.

    ``fit(data, rng=None)`` must not mutate ``self`` or ``data``; ``rng`` is a
    ``numpy.random.Generator`` drawn from the replicate's own seed stream, for estimators
    that resample (the wild bootstrap); deterministic estimators ignore it.
    """

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        raise NotImplementedError

    def fit_batch(
        self,
        frames: Sequence[pd.DataFrame],
        rngs: Sequence[np.random.Generator | None] | None = None,
    ) -> list[FitResult]:
        """Fit a chunk of replicates that share one design (only the outcome differs).

        The default fits them one by one; estimators with a vectorised path override it.
        """
        rngs = rngs if rngs is not None else [None] * len(frames)
        return [self.fit(frame, rng) for frame, rng in zip(frames, rngs)]

    def get_params(self) -> dict:
        """The constructor's parameters, as passed."""
        return {name: getattr(self, name) for name in init_parameters(type(self))}

    def clone(self, **overrides) -> "Estimator":
        """A new estimator with the same parameters, some replaced."""
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()

    __hash__ = None


# Designs of the OLS family (OLS, fixed effects, GEE, the wild bootstrap) seen by this process:
# a study has one design per DGP cell, and a process works through one cell at a time.
MAX_DESIGNS = 4
designs = DesignCache(MAX_DESIGNS)


class SharedDesignEstimator(Estimator):
    """An estimator on the model matrix of ``formula`` (:class:`~estimators.design.Design`)
    whose fit of R replicates sharing a design is a few matrix operations on their (n, R)
    outcome matrix. Subclasses implement :meth:`_fit_columns` (or :meth:`_fit_design`); ``fit``
    is the one-column case of it, so the per-replicate and the batched path are the same code.

    The design comes from :data:`designs` (:mod:`estimators.batch`), keyed on the columns it
    reads, so what depends on the design alone is computed once.
    """

    @property
    def design_cluster(self) -> str | None:
        """The cluster column the design needs (None: none)."""
        return getattr(self, "cluster", None)

    def _build(self, data: pd.DataFrame) -> tuple[Design, np.ndarray]:
        design, y = build_design(self.formula, data, self.design_cluster)
        return design.read_only(), y

    def _reads(self) -> tuple[str, ...]:
        return (self.design_cluster,) if self.design_cluster else ()

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        design, Y = frame_design(designs, self.formula, (self.design_cluster,), data, self._build, self._reads())
        return self._fit_design(design, Y, [rng])[0]

    def fit_batch(self, frames: Sequence[pd.DataFrame], rngs=None) -> list[FitResult]:
        """All replicates of a shared design at once; falls back to one by one when the frames
        differ in more than the outcome."""
        rngs = rngs if rngs is not None else [None] * len(frames)
        shared = shared_design(designs, self.formula, (self.design_cluster,), frames, self._build, self._reads())
        if shared is None:
            return super().fit_batch(frames, rngs)
        return self._fit_design(*shared, rngs)

    def _fit_design(self, design: Design, Y: np.ndarray, rngs: Sequence[np.random.Generator | None]
                    ) -> list[FitResult]:
        """Fit each column of Y on ``design`` (``rngs``: one per column)."""
        if Y.shape[1] == 1:
            # numpy's einsum sums a lone column with other (SIMD) loops than the columns of a
            # matrix; fitting it twice keeps a replicate's bits independent of the chunk size.
            return self._fit_columns(design, np.repeat(Y, 2, axis=1))[:1]
        return self._fit_columns(design, Y)

    def _fit_columns(self, design: Design, Y: np.ndarray) -> list[FitResult]:
        """Fit each column of Y (n, R >= 2) on ``design``."""
        raise NotImplementedError


class TrialsEstimator(SharedDesignEstimator):
    """A :class:`SharedDesignEstimator` with a ``family`` whose ``formula`` may have, for family
    binomial, the two-column response ``cbind(successes, failures) ~ ...``
    (:mod:`estimators.response`). Subclasses implement ``_fit_columns(design, Y, M=None)``:
    Y the responses (n, R) and M their prior weights, None for a one-column outcome (weights 1)
    and the trials for a two-column one (Y then holds the proportions of successes).

    A two-column response is read from each frame (its successes and failures are two columns
    that change between replicates), so ``fit_batch`` fits such frames one by one; the batched
    path over a shared design stacks one outcome column.
    """

    def _require_trials_family(self) -> None:
        """For the constructor: a two-column response only with family binomial
        (InvalidParameter naming ``formula``)."""
        try:
            require_cbind_binomial(formula_outcome(self.formula), self.family)
        except InputError as error:
            raise InvalidParameter("formula", str(error)) from None

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        trials = trials_design(self.formula, data, self.family, self.design_cluster)
        if trials is None:
            return super().fit(data, rng)
        design, y, m = trials
        # two identical columns, as _fit_design fits a lone one
        return self._fit_columns(design.read_only(), np.repeat(y[:, None], 2, axis=1), np.repeat(m[:, None], 2, axis=1))[0]

    def _fit_columns(self, design: Design, Y: np.ndarray, M: np.ndarray | None = None) -> list[FitResult]:
        """Fit each column of Y (n, R >= 2) on ``design`` with prior weights M (None: 1)."""
        raise NotImplementedError
