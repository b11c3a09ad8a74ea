"""The design of a GLMM: ``y ~ ...`` with y 0/1 or a count, or ``cbind(successes, failures) ~ ...``
(binomial with trials, as glmer), the response read and checked by :mod:`estimators.response`
(proportions y = k / m with prior weights m)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from estimators.lmm.design import MixedDesign, build_mixed_design
from estimators.lmm.formula import parse_formula
from estimators.response import PROPORTION_COLUMN, cbind_parts, response


def glmm_design(formula: str, data: pd.DataFrame, family: str) -> tuple[MixedDesign, np.ndarray, np.ndarray]:
    """The design of ``formula`` (lme4 syntax, observation-level terms allowed), y and m."""
    parsed = parse_formula(formula)
    y, m = response(parsed.outcome, data, family)
    if cbind_parts(parsed.outcome) is not None:
        parsed = dataclasses.replace(parsed, outcome=PROPORTION_COLUMN)
        data = data.assign(**{PROPORTION_COLUMN: y})
    design, _ = build_mixed_design(parsed, data, observation_levels=True)
    return design, y, m
