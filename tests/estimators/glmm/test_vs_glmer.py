"""The GLMM engine against lme4's glmer (tests/reference_glmm/make_glmm_references.R: glmer
refitted with bobyqa at rhoend = 1e-10 and PIRLS at tolPwrss = 1e-13): the -2 log-likelihood
never worse than glmer's by more than 1e-6 relative, fixed effects and SEs within 1e-4
relative (against the Richardson-extrapolated Hessian of glmer's deviance function, and within
1e-3 of glmer's own vcov), variance components within 1e-3 relative."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from estimators.glmm import GLMM
from helpers import TESTS

REFERENCE = TESTS / "reference_glmm"

CASES = {
    "cbpp": ("cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "logit", 1),
    "cbpp_agq25": ("cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "logit", 25),
    "cbpp_probit": ("cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "probit", 1),
    "crossed_slope": ("crossed_binary.csv", "y ~ condition + (1 + condition | subject) + (1 | item)", "binomial",
                      "logit", 1),
    "grouseticks": ("grouseticks.csv", "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                    "poisson", "log", 1),
    "verbagg": ("verbagg.csv", "y ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", "logit", 1),
}
FACTORS = {"period", "herd", "BROOD", "INDEX", "LOCATION", "id", "item", "subject"}


def _data(name: str) -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / "data" / name)
    for column in FACTORS & set(data.columns):
        data[column] = data[column].astype(str)
    return data


def _r_name(name: str) -> str:
    """R's name of a patsy column: ``Gender[T.M]`` -> ``GenderM``, ``Intercept`` -> ``(Intercept)``."""
    return "(Intercept)" if name == "Intercept" else re.sub(r"\[T\.(.*?)\]", r"\1", name)


@pytest.mark.parametrize("case", CASES)
def test_matches_glmer(case):
    file, formula, family, link, n_agq = CASES[case]
    ref = json.loads((REFERENCE / f"glmer_{case}.json").read_text())
    fit = GLMM(formula, family=family, link=link, nAGQ=n_agq).fit_model(_data(file))
    assert fit.converged
    assert fit.objective <= ref["objective"] * (1 + 1e-6), (fit.objective, ref["objective"])
    if n_agq == 1:
        assert fit.minus_two_loglik == pytest.approx(ref["minus_two_loglik"], rel=1e-6)
    order = [[_r_name(name) for name in fit.fixed_names].index(name) for name in ref["fixef_names"]]
    np.testing.assert_allclose(fit.beta[order], ref["fixef"], rtol=1e-4)
    # SEs against glmer's deviance function differentiated by Richardson extrapolation
    # (numDeriv); glmer's vcov() (central differences at step 1e-4) is within 1e-3 of them.
    np.testing.assert_allclose(fit.std_errors[order], ref["se_richardson"], rtol=1e-4)
    np.testing.assert_allclose(fit.std_errors[order], ref["se"], rtol=1e-3)
    ours = {(g, a, b or None): v for g, a, b, v in fit.varcorr()}
    for row in ref["varcorr"]:
        key = (row["grp"], row["var1"].replace("(Intercept)", "Intercept"),
               None if row.get("var2") in (None, "NA") else row["var2"].replace("(Intercept)", "Intercept"))
        assert ours[key] == pytest.approx(row["sdcor"], rel=1e-3, abs=1e-6), key
