"""The linear mixed model as a clustersim estimator: an lme4 formula, REML or ML, and a test.

Inference per fixed-effect term (``inference``):

- ``wald_z``: t = estimate / SE against N(0, 1), Wald interval (lme4's ``summary`` z values).
- ``satterthwaite``: the same t against t(nu) with lmerTest's Satterthwaite df
  (:mod:`.satterthwaite`), interval estimate -/+ t_{nu, 1-alpha/2} SE.
- ``lrt``: p-value of the likelihood-ratio test of the term (ML fits with and without it,
  chi-square with 1 df; :mod:`.lrt`); the interval is the Wald z interval, df = inf.
- ``parametric_bootstrap``: as ``lrt``, with the p-value of pbkrtest's ``PBmodcomp`` from
  ``n_boot`` samples simulated from the reduced model's ML fit (:mod:`.bootstrap`), drawn from
  the replicate's own generator (``rng``).
- ``kenward_roger`` (REML fits only): estimate / SE_KR against t(m), SE_KR from pbkrtest's
  adjusted covariance Phi_A and m its Kenward-Roger df (:mod:`.kenward_roger`), interval
  estimate -/+ t_{m, 1-alpha/2} SE_KR (lmerTest's ``summary(ddf = "Kenward-Roger")``).

F tests as result rows (``test``): each hypothesis L beta = 0 gets the row ``F:<name>`` with
estimate = its F statistic, std_error and interval NaN, df = its denominator df and p_value =
P(F(q, df) > F), q = rank(L) the numerator df (fixed by the hypothesis, not stored), so that the
rejection rate measures the Type I error or power of the omnibus test. The statistic follows
``inference``: lmerTest's Satterthwaite F or pbkrtest's scaled Kenward-Roger F; for ``wald_z``
the Wald statistic over q with df = inf; for ``lrt`` and ``parametric_bootstrap`` the likelihood
ratio over q with df = inf (a term's LRT drops all its columns).

Status: a fit whose optimiser did not converge is ``not_converged`` (numbers kept); a fit with
a relative-factor diagonal below 1e-4 (lme4's ``isSingular``) is ``singular`` and counts as a
valid replicate, as in lme4, where such fits are reported with a message but not dropped. With
``lrt``, a term whose reduced ML fit does not converge has no p-value (NaN, said in the message)
while the other terms keep theirs; when no test stands (the full ML fit failed) the fit is
``not_converged``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Sequence, get_args

import numpy as np
import pandas as pd

from estimators.base import Estimator
from estimators.design import InputError
from estimators.lmm.cache import model_and_outcomes, shared_model
from estimators.lmm.crossprod import OutcomeProducts
from estimators.lmm.fit import MixedFit, MixedModel
from estimators.lmm.formula import parse_formula
from estimators.lmm.kenward_roger import kenward_roger
from estimators.lmm.ftest import (TEST_PREFIX, SatterthwaiteParts, check_test_option, f_p_value, hypothesis_of,
                                  satterthwaite_f, test_terms, wald_f)
from estimators.lmm.bootstrap import bootstrap_tests
from estimators.lmm.lrt import chi2_sf, deviances, hypothesis_test, likelihood_ratio_tests, reduced_design
from estimators.lmm.satterthwaite import coefficient_df, contrast_parts, curvature
from estimators.params import (InvalidParameter, require, require_bool, require_one_of, require_positive_int,
                               require_probability)
from estimators.result import FitResult, Status, t_test

Inference = Literal["wald_z", "satterthwaite", "lrt", "kenward_roger", "parametric_bootstrap"]
LIKELIHOOD_RATIO = ("lrt", "parametric_bootstrap")
INFERENCES = get_args(Inference)


class LMM(Estimator):
    """Linear mixed model ``formula`` (lme4 syntax) fitted by REML (``reml=True``) or ML.

    Parameters
    ----------
    formula : e.g. ``"y ~ condition + (1 + condition | subject) + (1 | item)"``.
    reml : REML (True, lme4's default) or maximum likelihood.
    inference : ``wald_z``, ``satterthwaite``, ``lrt``, ``parametric_bootstrap`` or
        ``kenward_roger`` (see the module docstring; ``kenward_roger`` needs ``reml=True``,
        ``parametric_bootstrap`` the ``rng`` of ``fit``).
    alpha : 1 - confidence level of the intervals.
    n_boot : samples of the parametric bootstrap (``inference=parametric_bootstrap``).
    test : optional ``{name: hypothesis}``, each reported as a result row ``F:<name>`` (module
        docstring); a hypothesis is a term of the formula (its type III hypothesis, as in
        ``MixedFit.anova``), a list of coefficient names, or a contrast matrix (list of rows).
    """

    def __init__(self, formula: str = "y ~ X + (1 | subject)", reml: bool = True,
                 inference: Inference = "satterthwaite", alpha: float = 0.05, test: Mapping | None = None,
                 n_boot: int = 1000):
        self.formula = formula
        self.reml = reml
        self.inference = inference
        self.alpha = alpha
        self.test = test
        self.n_boot = n_boot
        try:
            parse_formula(formula)
        except InputError as error:
            raise InvalidParameter("formula", str(error)) from None
        require_one_of(inference, "inference", INFERENCES)
        require_bool(reml, "reml")
        require_reml_for(inference, reml)
        require_probability(alpha, "alpha")
        check_test_option(test)
        require_positive_int(n_boot, "n_boot")

    @property
    def draws_from_rng(self) -> bool:
        """Only the parametric bootstrap draws (the runner builds a generator only then)."""
        return self.inference == "parametric_bootstrap"

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        return self._fit_model(*model_and_outcomes(self.formula, data, self.reml), [rng])[0]

    def fit_batch(self, frames: Sequence[pd.DataFrame], rngs=None) -> list[FitResult]:
        """All replicates of a shared design in one batch (Z'Z, Z'X, X'X computed once)."""
        shared = shared_model(self.formula, frames, self.reml)
        if shared is None:
            return super().fit_batch(frames, rngs)
        return self._fit_model(*shared, rngs if rngs is not None else [None] * len(frames))

    def fit_model(self, data: pd.DataFrame) -> MixedFit:
        """The full fit: fixed effects and their covariance, variance components, criterion,
        log-likelihood, AIC/BIC, convergence and singularity flags, random-effects PCA."""
        model, Y = model_and_outcomes(self.formula, data, self.reml)
        return model.fit(model.outcomes(Y))[0]

    def _fit_model(self, model: MixedModel, Y: np.ndarray, rngs: Sequence) -> list[FitResult]:
        if self.inference == "parametric_bootstrap" and any(rng is None for rng in rngs):
            raise ValueError("rng: the parametric bootstrap draws its samples from the rng passed to fit "
                             "(numpy.random.default_rng(seed)); none was given")
        size = model.batch_size
        return [result for start in range(0, Y.shape[1], size)
                for result in fit_and_infer(model, Y[:, start:start + size], self.inference, self.alpha, self.test,
                                            rngs[start:start + size], self.n_boot)[1]]


def require_reml_for(inference: str, reml: bool) -> None:
    """Kenward and Roger's adjustment is defined for REML estimates only (as in pbkrtest)."""
    require(reml or inference != "kenward_roger", "inference", "kenward_roger needs reml: true")


def fit_and_infer(model: MixedModel, Y: np.ndarray, inference: Inference, alpha: float, tests: Mapping | None = None,
                  rngs: Sequence | None = None, n_boot: int = 1000) -> tuple[list[MixedFit], list[FitResult]]:
    """Fit ``model`` to each column of Y and test each fixed effect (and each hypothesis of
    ``tests``) as ``inference`` says (``rngs``, ``n_boot``: the parametric bootstrap's)."""
    outcomes = model.outcomes(Y)
    fits = model.fit(outcomes)
    return fits, infer(model, outcomes, fits, Y, inference, alpha, tests, rngs, n_boot)


def infer(model: MixedModel, outcomes: OutcomeProducts, fits: list[MixedFit], Y: np.ndarray,
          inference: Inference, alpha: float, tests: Mapping | None = None, rngs: Sequence | None = None,
          n_boot: int = 1000) -> list[FitResult]:
    """Per-term results of ``fits`` (one per column of Y and replicate of ``outcomes``), and a
    row ``F:<name>`` per hypothesis of ``tests`` (:func:`test_rows`)."""
    design = model.design
    estimate = np.array([fit.beta for fit in fits])
    std_error = np.array([fit.std_errors for fit in fits])
    statuses = [fit_status(fit) for fit in fits]
    parts = adjusted = full = converged_full = None
    if inference == "satterthwaite":
        theta = np.array([fit.theta for fit in fits])
        sigma = np.array([fit.sigma for fit in fits])
        shared = curvature(model, outcomes, theta, sigma)
        df = coefficient_df(shared, sigma)
        if tests:
            parts = contrast_parts(shared, sigma)
    elif inference == "kenward_roger":
        std_error, df, statuses, adjusted = _kenward_roger(model, fits, statuses)
    else:
        df = np.full(estimate.shape, np.inf)
    p_value, lower, upper = t_test(estimate, std_error, df, alpha)
    if inference in LIKELIHOOD_RATIO:
        if model.reml:
            full, ml_fits = deviances(design, Y)
            converged_full = np.array([fit.converged for fit in ml_fits])
        else:
            full, converged_full = np.array([fit.criterion for fit in fits]), np.ones(len(fits), dtype=bool)
        if inference == "lrt":
            _, p_value, converged = likelihood_ratio_tests(design, Y, full, converged_full)
        else:
            reduced = [design.without_fixed(j) for j in range(design.p)]
            _, p_value, converged = bootstrap_tests(design, Y, reduced, full, converged_full, rngs, n_boot)
        p_value = np.where(converged, p_value, np.nan)
        for r in np.flatnonzero(~converged.all(axis=1)):
            if statuses[r][0] == Status.not_converged:
                continue
            untested = [name for name, ok in zip(design.fixed_names, converged[r]) if not ok]
            if len(untested) == len(design.fixed_names):
                statuses[r] = (Status.not_converged, "the ML fits of the likelihood-ratio tests did not converge")
            else:  # the other terms' tests stand
                statuses[r] = (statuses[r][0], f"no likelihood-ratio test of {', '.join(untested)}: "
                                               "the ML fit without it did not converge")
    terms = design.fixed_names
    if tests:
        F, den_df, F_p, statuses = test_rows(model, fits, Y, inference, tests, parts, adjusted, full, converged_full,
                                             statuses, rngs, n_boot)
        nan = np.full(F.shape, np.nan)
        terms = terms + test_terms(tests)
        estimate, std_error, df = np.hstack([estimate, F]), np.hstack([std_error, nan]), np.hstack([df, den_df])
        lower, upper, p_value = np.hstack([lower, nan]), np.hstack([upper, nan]), np.hstack([p_value, F_p])
    return [FitResult.of_batch(terms, estimate[r], std_error[r], df[r], lower[r], upper[r], p_value[r], *statuses[r])
            for r in range(len(fits))]


def test_rows(model: MixedModel, fits: list[MixedFit], Y: np.ndarray, inference: Inference, tests: Mapping,
              parts, adjusted, full, converged_full, statuses, rngs=None, n_boot: int = 1000
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """F statistic, denominator df and p-value (R, T) of each hypothesis of ``tests``
    (:func:`~estimators.lmm.ftest.hypothesis_of`) with the method of ``inference``:

    - ``satterthwaite``, ``kenward_roger``: lmerTest's F tests (:mod:`.ftest`);
    - ``wald_z``: W / q against F(q, inf), W = (L beta)'(L C L')^-1 (L beta);
    - ``lrt``: LR / q against F(q, inf), LR the ML likelihood ratio of the model under
      L beta = 0 (a term: without its columns) (:func:`~estimators.lmm.lrt.hypothesis_test`);
    - ``parametric_bootstrap``: the same LR / q, df = inf, with the bootstrap p-value.

    A replicate whose test cannot be computed has NaNs there; a failed reduced ML fit says so
    in the message."""
    design = model.design
    clash = [name for name in test_terms(tests) if name in design.fixed_names]
    if clash:
        raise InputError(f"test {clash[0][len(TEST_PREFIX):]!r}: its row {clash[0]!r} has the name of a fixed effect; rename the test")
    XtX = design.X.T @ design.X
    R, T = len(fits), len(tests)
    F, den_df, p_value = np.full((R, T), np.nan), np.full((R, T), np.nan), np.full((R, T), np.nan)
    statuses = list(statuses)
    for t, (name, spec) in enumerate(tests.items()):
        L = hypothesis_of(name, spec, design.fixed_names, XtX, drop_columns=inference in LIKELIHOOD_RATIO)
        if inference in LIKELIHOOD_RATIO:
            if inference == "lrt":
                statistic, q, converged = hypothesis_test(design, Y, L, full, converged_full)
                p = chi2_sf(statistic, q)
            else:
                statistic, p, converged = (a[:, 0] for a in bootstrap_tests(
                    design, Y, [reduced_design(design, L)], full, converged_full, rngs, n_boot))
                q = int(np.linalg.matrix_rank(L))
            F[:, t], den_df[:, t] = statistic / q, np.inf
            p_value[:, t] = np.where(converged, p, np.nan)
            for r in np.flatnonzero(~converged):
                text = f"no likelihood-ratio test of {TEST_PREFIX}{name}: the ML fit under it did not converge"
                statuses[r] = (statuses[r][0], "; ".join(filter(None, [statuses[r][1], text])))
            continue
        for r, fit in enumerate(fits):
            try:
                if inference == "satterthwaite":
                    F[r, t], q, den_df[r, t] = satterthwaite_f(L, fit.beta, SatterthwaiteParts(*(a[r] for a in parts)))
                elif inference == "kenward_roger":
                    if adjusted[r] is None:
                        continue
                    F[r, t], q, den_df[r, t] = adjusted[r].f_test(L, fit.beta)
                else:
                    (F[r, t], q), den_df[r, t] = wald_f(L, fit.beta, fit.vcov), np.inf
            except np.linalg.LinAlgError:
                continue
            p_value[r, t] = f_p_value(F[r, t], q, den_df[r, t])
    return F, den_df, p_value, statuses


def _kenward_roger(model: MixedModel, fits: list[MixedFit], statuses: list[tuple[Status, str]]):
    """Adjusted SEs and Kenward-Roger df (R, p); a fit whose adjustment fails numerically
    (an information matrix that cannot be formed) has NaNs and the status ``failed``."""
    adjusted = kenward_roger(model, np.array([fit.theta for fit in fits]), np.array([fit.sigma for fit in fits]))
    p = model.design.p
    std_error, df = np.full((len(fits), p), np.nan), np.full((len(fits), p), np.nan)
    statuses = list(statuses)
    for r, kr in enumerate(adjusted):
        if kr is None:
            if statuses[r][0] != Status.not_converged:
                statuses[r] = (Status.failed, "the Kenward-Roger adjustment could not be computed")
            continue
        std_error[r], df[r] = kr.std_errors, kr.coefficient_df()
    return std_error, df, statuses, adjusted


def fit_status(fit) -> tuple[Status, str]:
    """The status and message of a mixed-model fit (an LMM's or a GLMM's): not converged,
    singular (a variance or correlation on its bound) or ok."""
    if not fit.converged:
        return Status.not_converged, "the optimiser did not converge"
    if fit.singular:
        return Status.singular, "boundary (singular) fit: a random-effects variance or correlation is on its bound"
    return Status.ok, ""
