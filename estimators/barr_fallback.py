"""Design-driven random-effects structures with Barr et al.'s convergence fallback (Barr, Levy,
Scheepers & Tily 2013, "Random effects structure for confirmatory hypothesis testing: Keep it
maximal", J. Memory and Language 68:255; their simulation code is the simgen R package,
github.com/dalejbarr/simgen, functions ``mkDf``, ``fitlmer``, ``fitnocorr``).

The structure follows the design, per replicate: a grouping factor gets a random slope of the
predictor only when the predictor varies within its levels (condition within subjects: a
by-subject slope; items nested in condition, the "between-item" design: no by-item slope, which
could not be told apart from the item intercepts). For outcome y, predictor c and the factors
with a slope, S:

    maximal             y ~ c + (1 + c | g) for g in S, (1 | g) for the others
    zero_correlation    y ~ c + (1 + c || g) for g in S, (1 | g) for the others
    intercepts          y ~ c + (1 | g) for every g

Fallback (Barr et al.'s ``fitlmer`` in their simgen package): when the maximal model does not
converge, drop the slope with the smaller estimated variance in the failed fit and refit; if
that fails too, drop the next one, down to intercepts only (in the between-item design, where
only the subject slope exists, straight to intercepts). The model finally used is reported per
replicate as ``extras["model"]``: ``maximal``, ``maximal_no_<factor>_slope`` or ``intercepts``.
The other structures get no fallback (simgen's ``fitnocorr`` reports a failure as missing): a
fit that does not converge keeps its ``not_converged`` status, and so does a maximal fit that
fails even with intercepts only. A likelihood-ratio test whose fit without the predictor does
not converge is ``not_converged`` too, without a fallback (simgen's code 4). The data are never
redrawn.

Fits are by maximum likelihood, as Barr et al.'s. Tests (``inference``), as theirs:

- ``lrt``: likelihood-ratio test of the predictor, LR = d_ML(model without it) - d_ML(model)
  against chi-square(1). Only the predictor is tested: the other terms' p-values are NaN. The
  fit without the predictor takes the full model's products less the predictor's column and
  starts at the full fit's optimum and curvature (:func:`reduced_fit`; the nested optimum
  differs by one fixed effect's share of the fit, and is reached in about a quarter of a fresh
  fit's evaluations).
- ``wald_z``: t = estimate / SE against N(0, 1) ("t as z"), for every term.

Estimates, SEs and intervals come from the ML fit (Wald z intervals). The two tests of one
structure share their ML fit: fits are kept per process by formula and data (the runner
fits one estimator over a chunk, then the next), so ``max_lrt`` and ``max_z`` on the same
replicate cost one maximal fit, not two.

The structures, their formulas and slope variances are those of :mod:`estimators.lmm.structures`.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence, get_args

import numpy as np
import pandas as pd
from scipy import stats

from estimators.base import Estimator
from estimators.batch import DesignCache, frame_fingerprint
from estimators.design import InputError
from estimators.lmm.cache import model_and_outcomes
from estimators.lmm.estimator import infer
from estimators.lmm.fit import MixedFit, MixedModel
from estimators.lmm.structures import factors_with_slopes, smallest_slope, structure_formula, without_slopes
from estimators.params import require_columns, require_one_of, require_probability
from estimators.result import FitResult, Status

Structure = Literal["maximal", "zero_correlation", "intercepts"]
STRUCTURES = get_args(Structure)
BarrInference = Literal["lrt", "wald_z"]
BARR_INFERENCES = get_args(BarrInference)

# ML fits of the last few (formula, data) pairs: a chunk of replicates times the structures.
MAX_FITS = 512
fits = DesignCache(MAX_FITS)


def model_label(structure: Structure, dropped: Sequence[str], remaining: Sequence[str]) -> str:
    """The structure's name, ``maximal_no_<factor>_slope`` after a fallback step, or
    ``intercepts`` once the fallback has dropped every slope."""
    if structure == "intercepts" or (dropped and not remaining):
        return "intercepts"
    return without_slopes(structure, dropped)


def ml_fit(formula: str, data: pd.DataFrame) -> tuple[MixedModel, MixedFit, np.ndarray]:
    """The ML fit of ``formula`` to ``data``, its model and y (kept in :data:`fits`, keyed by the
    formula and the fingerprint of every column). Every replicate has its own design here (random
    deletions), fitted alone: the optimiser evaluates the criterion from one dense factor
    (``MixedModel.fit(dense=True)``, :mod:`estimators.lmm.dense`)."""
    def fit() -> tuple[MixedModel, MixedFit, np.ndarray]:
        model, Y = model_and_outcomes(formula, data, reml=False)
        return model, model.fit(model.outcomes(Y), dense=_dense(model))[0], Y[:, 0]

    return fits.get_or_build((formula, frame_fingerprint(data)), fit)


def _dense(model: MixedModel) -> bool:
    """One dense factor per evaluation unless W'Z_1 is held sparse (a large crossed design)."""
    return model.products.coupling is None


def reduced_fit(model: MixedModel, fit: MixedFit, column: int, Y: np.ndarray) -> MixedFit:
    """The ML fit without fixed-effect ``column``: the nested model's products taken from the
    full model's (:meth:`MixedModel.without_fixed`), the optimiser started at the full fit's
    optimum and curvature (the two optima differ by one fixed effect's share of the fit)."""
    reduced = model.without_fixed(column)
    x, H = fit.optimum
    return reduced.fit(reduced.outcomes(Y), dense=_dense(reduced), start=(x[None], H[None]))[0]


class BarrFallback(Estimator):
    """Barr et al.'s (2013) design-driven ``structure`` (``maximal``, ``zero_correlation`` or
    ``intercepts``), fitted by ML, with the convergence fallback (module docstring).

    Parameters
    ----------
    structure : ``maximal``, ``zero_correlation`` or ``intercepts``.
    outcome, predictor : column names of the outcome and of the (numeric) predictor tested.
    factors : grouping columns (crossed random factors), e.g. ``[subject, item]``.
    inference : ``lrt`` (likelihood-ratio test of the predictor) or ``wald_z`` (t as z).
    alpha : 1 - confidence level of the (Wald z) intervals.
    """

    # factors defaults to a list, as a config gives it (get_params must survive YAML); never mutated.
    def __init__(self, structure: Structure = "maximal", outcome: str = "y", predictor: str = "condition",
                 factors: Sequence[str] = ["subject", "item"], inference: BarrInference = "lrt",  # noqa: B006
                 alpha: float = 0.05):
        self.structure = structure
        self.outcome = outcome
        self.predictor = predictor
        self.factors = factors
        self.inference = inference
        self.alpha = alpha
        require_one_of(structure, "structure", STRUCTURES)
        require_columns(factors, "factors")
        require_one_of(inference, "inference", BARR_INFERENCES)
        require_probability(alpha, "alpha")

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        if self.predictor not in data.columns:
            raise InputError(f"predictor column {self.predictor!r} is not in the data")
        justified = () if self.structure == "intercepts" else factors_with_slopes(data, self.predictor, self.factors)
        slopes, dropped = list(justified), []
        while True:
            formula = structure_formula(self.outcome, self.predictor, self.factors, slopes,
                                        correlated=self.structure == "maximal")
            model, fit, y = ml_fit(formula, data)
            if fit.converged or not slopes or self.structure != "maximal":
                break
            smallest = smallest_slope(fit, slopes)
            slopes.remove(smallest)
            dropped.append(smallest)
        result = self._test(model, fit, y)
        return dataclasses.replace(result, extras={"model": model_label(self.structure, dropped, slopes)})

    def _test(self, model: MixedModel, fit: MixedFit, y: np.ndarray) -> FitResult:
        """Wald z inference from the ML fit; for ``lrt``, the predictor's p-value from the LRT."""
        Y = y[:, None]
        result = infer(model, model.outcomes(Y), [fit], Y, "wald_z", self.alpha)[0]
        if self.inference == "wald_z":
            return result
        j = model.design.fixed_names.index(self.predictor)
        reduced = reduced_fit(model, fit, j, Y)
        p_value = np.full(len(result.terms), np.nan)
        p_value[j] = stats.chi2.sf(max(reduced.criterion - fit.criterion, 0.0), 1)
        result = dataclasses.replace(result, p_value=p_value)
        if result.status != Status.not_converged and not reduced.converged:
            result = dataclasses.replace(result, status=Status.not_converged,
                                         message="the ML fit without the predictor did not converge")
        return result
