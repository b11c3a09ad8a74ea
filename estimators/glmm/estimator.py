"""The GLMM as a clustersim estimator: an lme4 formula, a family and link, Laplace or adaptive
Gauss-Hermite quadrature, and Wald z or likelihood-ratio inference per fixed effect.

- ``wald_z``: z = estimate / SE against N(0, 1), Wald interval (glmer's ``summary``).
- ``lrt``: the p-value of the likelihood-ratio test of each fixed-effect column (the model
  refitted without it, chi-square with 1 df on the difference of -2 log-likelihoods, as
  ``anova(reduced, full)`` in lme4); estimate, SE and interval stay the Wald ones.

Status as the LMM engine (:mod:`estimators.lmm.estimator`): ``not_converged`` when the optimiser
or PIRLS did not converge and lme4's gradient check fails; ``singular`` (a valid replicate) when a
relative-factor diagonal is below 1e-4. A reduced fit that does not converge leaves its term's
p-value NaN, said in the message.
"""
from __future__ import annotations

from typing import Literal, Sequence, get_args

import numpy as np
import pandas as pd

from estimators.base import Estimator
from estimators.batch import stack_outcomes
from estimators.design import InputError
from estimators.families import FAMILIES, LINKS_OF_FAMILY, link_or_canonical
from estimators.glmm.family import Family
from estimators.glmm.fit import GLMMFit, GLMMModel
from estimators.lmm.estimator import fit_status
from estimators.lmm.formula import parse_formula
from estimators.lmm.lrt import chi2_sf
from estimators.params import InvalidParameter, require, require_one_of, require_positive_int, require_probability
from estimators.response import cbind_parts, require_cbind_binomial, response
from estimators.result import FitResult, t_test

Inference = Literal["wald_z", "lrt"]
INFERENCES = get_args(Inference)
MAX_AGQ = 25


class GLMM(Estimator):
    """Generalised linear mixed model ``formula`` (lme4 syntax) fitted by maximum likelihood.

    Parameters
    ----------
    formula : e.g. ``"y ~ condition + (1 + condition | subject) + (1 | item)"`` or
        ``"cbind(successes, failures) ~ X + (1 | subject)"``.
    family : ``binomial`` (0/1 or cbind response) or ``poisson`` (counts).
    link : ``logit`` or ``probit`` (binomial), ``log`` (poisson); None: the canonical link.
    nAGQ : 1 for the Laplace approximation; 2..25 adaptive Gauss-Hermite points, only for a
        single scalar random-effect term (as glmer).
    inference : ``wald_z`` or ``lrt`` (module docstring).
    alpha : 1 - confidence level of the intervals.
    """

    draws_from_rng = False  # deterministic (PIRLS and BFGS): the runner builds it no generator

    def __init__(self, formula: str = "y ~ X + (1 | subject)", family: str = "binomial", link: str | None = None,
                 nAGQ: int = 1, inference: Inference = "wald_z", alpha: float = 0.05):
        self.formula = formula
        self.family = family
        self.link = link
        self.nAGQ = nAGQ
        self.inference = inference
        self.alpha = alpha
        require_one_of(family, "family", FAMILIES)
        if link is not None:
            require_one_of(link, "link", LINKS_OF_FAMILY[family])
        try:
            parsed = parse_formula(formula)
            require_cbind_binomial(parsed.outcome, family)
        except InputError as error:
            raise InvalidParameter("formula", str(error)) from None
        require_positive_int(nAGQ, "nAGQ")
        require(nAGQ <= MAX_AGQ, "nAGQ", f"at most {MAX_AGQ} quadrature points (got {nAGQ})")
        require(nAGQ == 1 or (len(parsed.random) == 1 and parsed.random[0].lhs.strip() == "1"), "nAGQ",
                "adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single scalar random-effect term such as "
                "(1 | subject)")
        require_one_of(inference, "inference", INFERENCES)
        require_probability(alpha, "alpha")

    @property
    def family_link(self) -> Family:
        return Family(self.family, link_or_canonical(self.family, self.link))

    def model(self, data: pd.DataFrame) -> tuple[GLMMModel, np.ndarray, np.ndarray]:
        """The prepared model on ``data``, the response y and prior weights m."""
        return GLMMModel.from_data(self.formula, data, self.family_link, self.nAGQ)

    def fit_model(self, data: pd.DataFrame) -> GLMMFit:
        """The full fit: fixed effects and their covariance, variance components, -2 log L."""
        model, y, m = self.model(data)
        return model.fit(y[:, None], m[:, None])[0]

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        model, y, m = self.model(data)
        return self._results(model, y[:, None], m[:, None])[0]

    def fit_batch(self, frames: Sequence[pd.DataFrame], rngs=None) -> list[FitResult]:
        """A chunk of replicates that share a design and a one-column outcome, fitted as one
        batch (:meth:`fit_outcomes`); otherwise one by one."""
        stacked = stack_outcomes(self.formula, frames)
        if stacked is None:
            return super().fit_batch(frames, rngs)
        return self.fit_outcomes(frames[0], stacked[0])

    def fit_outcomes(self, design_frame: pd.DataFrame, Y: np.ndarray, M: np.ndarray | None = None) -> list[FitResult]:
        """Each column of the response matrix Y (n, R) on the design of ``design_frame`` (the
        columns besides the outcome; prior weights M, default 1): the batched path of a fixed
        design, all replicates optimised in lockstep. A column's numbers are bit for bit those
        of :meth:`fit` on it alone, whatever else the batch holds (every reduction of the
        optimiser, of PIRLS and of the derivatives runs row by row), so a study's numbers do not
        depend on its chunks. With M, Y holds proportions of M trials; without, every column is
        checked as a response of the family (0/1, counts)."""
        Y = np.asarray(Y, dtype=float)
        parsed = parse_formula(self.formula)
        if cbind_parts(parsed.outcome) is not None:
            raise InputError(f"formula: fit_outcomes takes a one-column outcome, not {parsed.outcome}; "
                             "pass proportions Y and trials M")
        if M is None:
            for r in range(Y.shape[1]):
                response(parsed.outcome, pd.DataFrame({parsed.outcome: Y[:, r]}), self.family)
        model, _, _ = self.model(design_frame.assign(**{parsed.outcome: Y[:, 0]}))
        return self._results(model, Y, np.ones_like(Y) if M is None else np.asarray(M, dtype=float))

    def _results(self, model: GLMMModel, Y: np.ndarray, M: np.ndarray) -> list[FitResult]:
        fits = model.fit(Y, M)
        estimate = np.array([fit.beta for fit in fits])
        std_error = np.array([fit.std_errors for fit in fits])
        p_value, lower, upper = t_test(estimate, std_error, np.inf, self.alpha)
        statuses = [fit_status(fit) for fit in fits]
        if self.inference == "lrt":
            p_value, statuses = self._lrt(model, Y, M, fits, statuses)
        df = np.full(estimate.shape, np.inf)
        return [FitResult.of_batch(model.design.fixed_names, estimate[r], std_error[r], df[r], lower[r], upper[r],
                          p_value[r], *statuses[r]) for r in range(len(fits))]

    def _lrt(self, model: GLMMModel, Y, M, fits: list[GLMMFit], statuses):
        full = np.array([fit.minus_two_loglik for fit in fits])
        p = model.design.p
        p_value = np.full((len(fits), p), np.nan)
        statuses = list(statuses)
        for j in range(p):
            reduced = GLMMModel(model.design.without_fixed(j), model.family, model.n_agq).fit(Y, M)
            statistic = np.maximum(np.array([fit.minus_two_loglik for fit in reduced]) - full, 0.0)
            ok = np.array([fit.converged for fit in reduced])
            p_value[:, j] = np.where(ok, chi2_sf(statistic, 1), np.nan)
            for r in np.flatnonzero(~ok):
                text = f"no likelihood-ratio test of {model.design.fixed_names[j]}: the fit without it did not converge"
                statuses[r] = (statuses[r][0], "; ".join(filter(None, [statuses[r][1], text])))
        return p_value, statuses

