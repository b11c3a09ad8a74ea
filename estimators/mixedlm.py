"""statsmodels' MixedLM: the reference "what statsmodels gives you" linear mixed model.

Random intercept (``re_formula=None``) or random intercept and slopes (``re_formula="~X"``)
for one grouping column, fitted by REML (or ML) with statsmodels' own optimiser order (BFGS,
then L-BFGS, then CG, each started where the previous stopped; L-BFGS alone meets a singular
Hessian on lme4's Dyestuff), fixed effects tested by Wald z (df = inf), as
``MixedLMResults.summary()`` reports them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.regression.mixed_linear_model import MixedLM as _StatsmodelsMixedLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from estimators.base import Estimator
from estimators.design import cluster_codes, outcome_and_matrix
from estimators.params import require_probability
from estimators.result import FitResult, Status, wald_inference

# A random-effects covariance eigenvalue below this share of its largest one counts as on the
# boundary of the parameter space (lme4's isSingular uses a 1e-4 tolerance on theta).
SINGULAR_TOLERANCE = 1e-4


class MixedLM(Estimator):
    """statsmodels MixedLM of ``formula`` with groups ``groups`` and random part ``re_formula``."""

    def __init__(self, formula: str = "y ~ X", groups: str = "subject", re_formula: str | None = None,
                 reml: bool = True, alpha: float = 0.05):
        self.formula = formula
        self.groups = groups
        self.re_formula = re_formula
        self.reml = reml
        self.alpha = alpha
        require_probability(alpha, "alpha")

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        y, X, terms, _ = outcome_and_matrix(self.formula, data)
        cluster_codes(data, self.groups)
        model = _StatsmodelsMixedLM.from_formula(self.formula, data, groups=self.groups, re_formula=self.re_formula)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = model.fit(reml=self.reml)
        estimate = np.asarray(result.fe_params, dtype=float)
        std_error = np.asarray(result.bse_fe, dtype=float)
        status, message = Status.ok, ""
        convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if not result.converged:
            status, message = Status.not_converged, "statsmodels MixedLM did not converge"
        elif self._on_boundary(np.asarray(result.cov_re, dtype=float)):
            status, message = Status.singular, "random-effects covariance on the boundary (singular fit)"
        elif convergence:
            message = str(convergence[0].message).splitlines()[0]
        return wald_inference(terms, estimate, std_error, np.inf, self.alpha, status, message)

    @staticmethod
    def _on_boundary(cov_re: np.ndarray) -> bool:
        eigenvalues = np.linalg.eigvalsh(np.atleast_2d(cov_re))
        return bool(eigenvalues.min() <= SINGULAR_TOLERANCE * max(eigenvalues.max(), 1e-300))
