"""Random-effects model selection for a predictor whose effect may vary over grouping factors:
the "keep it maximal" (Barr, Levy, Scheepers & Tily 2013) against the "parsimonious" position
(Bates, Kliegl, Vasishth & Baayen 2015; Matuschek, Kliegl, Vasishth, Baayen & Bates 2017).

Candidates (:func:`.structures.candidates`), for outcome y, predictor c and grouping factors
g_1..g_k (default subject, item):

    max           y ~ c + (1 + c | g_1) + ... + (1 + c | g_k)
    zcp           y ~ c + (1 + c || g_1) + ... + (1 + c || g_k)      (zero correlations)
    zcp_no_g_slope   zcp without the slope of g (and so on for several factors)
    intercepts    y ~ c + (1 | g_1) + ... + (1 | g_k)

Every candidate is fitted (REML unless ``reml=False``) to every replicate of a chunk in one
batch; each replicate then chooses, and its fixed-effect inference comes from the chosen model.
The choice is reported as ``extras["model"]`` (a per-replicate string in the results).

Likelihood-ratio tests between nested candidates use the REML (or ML) criteria, which share
the fixed effects, against chi-square with df = difference in the number of covariance
parameters (no boundary correction, as Matuschek et al. 2017).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from estimators.base import Estimator
from estimators.design import InputError
from estimators.lmm.cache import shared_model
from estimators.lmm.estimator import INFERENCES, Inference, infer, require_reml_for
from estimators.lmm.fit import MixedFit
from estimators.lmm.lrt import chi2_sf
from estimators.lmm.structures import Candidate, candidates, factor_variance, slope_variance, smallest_slope
from estimators.params import require, require_columns, require_one_of, require_probability
from estimators.result import FitResult

# A principal component (or a zcp variance component) with less than this share of its factor's
# random-effect variance "carries no variance" (Bates et al. 2015, section 2.2).
PCA_TOLERANCE = 0.005


def lrt_p_value(bigger: MixedFit, smaller: MixedFit) -> float:
    """P(chi^2_df > d_smaller - d_bigger), df = difference in the number of thetas."""
    df = len(bigger.theta) - len(smaller.theta)
    return float(chi2_sf(max(smaller.criterion - bigger.criterion, 0.0), df))


class _Selection(Estimator):
    """Shared machinery: fit all candidates in a batch, let each replicate choose."""

    # factors defaults to a list, as a config gives it (get_params must survive YAML); never mutated.
    def __init__(self, outcome: str = "y", predictor: str = "condition", factors: Sequence[str] = ["subject", "item"],  # noqa: B006
                 alpha_select: float = 0.2, reml: bool = True, inference: Inference = "satterthwaite",
                 alpha: float = 0.05):
        self.outcome = outcome
        self.predictor = predictor
        self.factors = factors
        self.alpha_select = alpha_select
        self.reml = reml
        self.inference = inference
        self.alpha = alpha
        require_columns(factors, "factors")
        require_one_of(inference, "inference", INFERENCES)
        require_reml_for(inference, reml)
        require(inference != "parametric_bootstrap", "inference", "parametric_bootstrap is not offered with model selection")
        require_probability(alpha_select, "alpha_select")
        require_probability(alpha, "alpha")

    def fit(self, data: pd.DataFrame, rng=None) -> FitResult:
        return self._fit_frames([data])[0]

    def fit_batch(self, frames: Sequence[pd.DataFrame], rngs=None) -> list[FitResult]:
        pool = self._pool()
        if shared_model(pool[0].formula, frames, self.reml) is None:
            return super().fit_batch(frames, rngs)
        return self._fit_frames(frames)

    def _pool(self) -> list[Candidate]:
        return candidates(self.outcome, self.predictor, self.factors)

    def _fit_frames(self, frames: Sequence[pd.DataFrame]) -> list[FitResult]:
        if self.outcome not in frames[0].columns:
            raise InputError(f"outcome column {self.outcome!r} is not in the data")
        pool = self._pool()
        prepared = []
        for candidate in pool:
            shared = shared_model(candidate.formula, frames, self.reml)
            if shared is None:
                raise InputError(f"outcome column {self.outcome!r} is not numeric, or the frames of a batch "
                                 "differ in other columns")
            model, Y = shared
            outcomes = model.outcomes(Y)
            prepared.append((model, outcomes, model.fit(outcomes)))
        chosen = np.array([self.choose(pool, [fits[r] for _, _, fits in prepared]) for r in range(Y.shape[1])])
        results: list[FitResult | None] = [None] * Y.shape[1]
        for index, (model, outcomes, fits) in enumerate(prepared):
            rows = np.flatnonzero(chosen == index)
            if rows.size == 0:
                continue
            part = infer(model, outcomes.take(rows), [fits[r] for r in rows], Y[:, rows], self.inference, self.alpha)
            for r, result in zip(rows, part):
                results[r] = dataclasses.replace(result, extras={"model": pool[index].name})
        return results

    def choose(self, pool: list[Candidate], fits: list[MixedFit]) -> int:
        raise NotImplementedError

    def _backward_from_zcp(self, pool: list[Candidate], fits: list[MixedFit], current: int) -> int:
        """Drop the smallest remaining slope variance while the LRT does not reject (p >= alpha_select)."""
        index = {c.slopes: i for i, c in enumerate(pool) if not c.correlated}
        while pool[current].slopes:
            smallest = smallest_slope(fits[current], pool[current].slopes)
            reduced = index[tuple(g for g in pool[current].slopes if g != smallest)]
            if lrt_p_value(fits[current], fits[reduced]) < self.alpha_select:
                break
            current = reduced
        return current


class LMMSelectLRT(_Selection):
    """Backward selection by likelihood-ratio tests at ``alpha_select`` (Matuschek et al. 2017
    used 0.2): maximal -> zero-correlation -> without the smaller slope variance -> ... ->
    intercepts only, stopping at the first significant test."""

    def choose(self, pool, fits) -> int:
        if lrt_p_value(fits[0], fits[1]) < self.alpha_select:
            return 0
        return self._backward_from_zcp(pool, fits, 1)


class LMMSelectAIC(_Selection):
    """The candidate with the smallest AIC (REML AIC for REML fits: the candidates share their
    fixed effects). ``alpha_select`` is not used."""

    def choose(self, pool, fits) -> int:
        return int(np.argmin([fit.aic for fit in fits]))


class LMMParsimonious(_Selection):
    """Bates, Kliegl, Vasishth & Baayen (2015): keep the maximal model unless it is singular or
    its random-effects PCA has a component with less than 0.5% of a factor's variance; then
    take the zero-correlation model unless the LRT against the maximal one rejects at
    ``alpha_select``; then drop the slopes whose variance is below 0.5% of their factor's,
    unless the LRT for that step rejects."""

    def choose(self, pool, fits) -> int:
        maximal = fits[0]
        supported = all(np.all(p >= PCA_TOLERANCE) for p in maximal.pca.values())
        if supported and not maximal.singular:
            return 0
        if lrt_p_value(maximal, fits[1]) < self.alpha_select:
            return 0
        zcp = fits[1]
        negligible = [g for g in pool[1].slopes if slope_variance(zcp, g) <= PCA_TOLERANCE * factor_variance(zcp, g)]
        if not negligible:
            return 1
        index = {c.slopes: i for i, c in enumerate(pool) if not c.correlated}
        reduced = index[tuple(g for g in pool[1].slopes if g not in negligible)]
        return 1 if lrt_p_value(zcp, fits[reduced]) < self.alpha_select else reduced
