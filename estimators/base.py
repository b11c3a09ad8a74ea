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

from estimators.result import FitResult


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

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict:
        """The constructor's parameters, as passed."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self, **overrides) -> "Estimator":
        """A new estimator with the same parameters, some replaced."""
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()

    __hash__ = None
