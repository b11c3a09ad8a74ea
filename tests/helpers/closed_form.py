"""Closed-form power of the sleepstudy example (docs/dgps.md, "fitted")."""
from __future__ import annotations

import numpy as np
from scipy import stats

import sims

DAYS = np.arange(10.0)
SXX = float(((DAYS - DAYS.mean()) ** 2).sum())  # 82.5


def sleepstudy_power(effect: float, n_subjects: int, alpha: float = 0.05) -> float:
    """Balanced random-slope design of the pilot fit (sims.build("fitted")): the GLS slope is
    the mean of the per-subject OLS slopes, Var = (sd_slope^2 + sigma^2 / Sxx) / m, tested by t
    with m - 1 df (the Satterthwaite df of the balanced design), so the power is
    P(|T| > t_crit) with T ~ noncentral t(m - 1, effect / SE)."""
    dgp = sims.build("fitted")
    se = np.sqrt((dgp.covariances["Subject"][1, 1] + dgp.residual_sd ** 2 / SXX) / n_subjects)
    df = n_subjects - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, effect / se) + stats.nct.cdf(-critical, df, effect / se))
