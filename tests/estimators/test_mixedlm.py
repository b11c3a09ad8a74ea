"""statsmodels MixedLM (estimators/mixedlm.py) against lme4 on real data."""
import numpy as np
import pandas as pd

import estimators
from estimators.result import Status
from helpers import TESTS

LMM_REFERENCE = TESTS / "reference_lmm"


def test_dyestuff_matches_lme4_reml():
    """lme4's Dyestuff, Yield ~ 1 + (1 | Batch): the intercept and its SE of lmer's REML fit
    (tests/reference_lmm/make_dyestuff_reference.R). statsmodels' optimiser stops within
    about 3e-5 of lme4's variance components, so the SE agrees to 1e-4 relative."""
    data = pd.read_csv(LMM_REFERENCE / "data" / "dyestuff.csv")
    expected = pd.read_csv(LMM_REFERENCE / "dyestuff.csv").set_index("term")
    fit = estimators.build("mixedlm_ri", formula="Yield ~ 1", groups="Batch").fit(data)
    assert fit.terms == ("Intercept",)
    assert fit.status == Status.ok, fit.message
    np.testing.assert_allclose(fit.estimate, expected.estimate.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(fit.std_error, expected.std_error.to_numpy(), rtol=1e-4)
