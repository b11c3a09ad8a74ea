"""Performance measures with Monte Carlo standard errors (Morris, White & Crowther 2019,
Stat Med 38:2074, Table 6; the formulas of rsimsum).

With n valid replicates, estimates t_i, their mean t_bar, the truth theta and model SEs s_i:

    bias              mean(t_i - theta)                  sqrt(sum (t_i - t_bar)^2 / (n (n-1)))
    empse             sqrt(sum (t_i - t_bar)^2 / (n-1))  empse / sqrt(2 (n-1))
    mse               mean((t_i - theta)^2)              sqrt(sum ((t_i - theta)^2 - mse)^2 / (n (n-1)))
    rmse              sqrt(mse)                          mcse(mse) / (2 rmse)          (delta method)
    modelse           sqrt(mean(s_i^2))                  sqrt(var(s_i^2) / (4 n modelse^2))
    relerror_modelse  100 (modelse/empse - 1)            100 (modelse/empse) sqrt(var(s_i^2)/(4 n modelse^4) + 1/(2(n-1)))
    coverage          mean(lo_i <= theta <= hi_i)        sqrt(C (1-C) / n)
    rejection         mean(p_i < alpha)                  sqrt(P (1-P) / n)
    failure_rate      share of replicates not valid      sqrt(F (1-F) / N), N all replicates

A replicate is valid for an estimator when its status is ``ok`` or ``singular`` and the
quantity the measure needs is finite; ``n`` is counted per measure.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.schema import grid_dims
from estimators.result import Status

MEASURES = ("bias", "empse", "mse", "rmse", "modelse", "relerror_modelse", "coverage", "rejection", "failure_rate")
VALID_STATUSES = (Status.ok, Status.singular)


def valid_mask(ds: xr.Dataset) -> xr.DataArray:
    """Replicates whose fit counts: status ok or singular, with a finite estimate."""
    ok = ds["status"].isin([int(s) for s in VALID_STATUSES])
    return ok & np.isfinite(ds["estimate"])


def _sum(x: xr.DataArray) -> xr.DataArray:
    return x.sum("rep", skipna=True)


def _proportion(events: xr.DataArray, usable: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    n = usable.sum("rep")
    share = _sum(events.where(usable)) / n
    return share, np.sqrt(share * (1 - share) / n), n


def summarise(ds: xr.Dataset, alpha: float | None = None) -> xr.Dataset:
    """Measures over (grid..., estimator, term, measure) with variables ``value``, ``mcse``, ``n``."""
    alpha = float(ds.attrs.get("alpha", 0.05) if alpha is None else alpha)
    valid = valid_mask(ds)
    theta = ds["truth"]
    estimate = ds["estimate"].where(valid)
    n = estimate.count("rep")
    mean = estimate.mean("rep")
    deviation2 = _sum((estimate - mean) ** 2)
    error2 = (estimate - theta) ** 2

    out = {}
    out["bias"] = (mean - theta, np.sqrt(deviation2 / (n * (n - 1))), n)
    empse = np.sqrt(deviation2 / (n - 1))
    out["empse"] = (empse, empse / np.sqrt(2 * (n - 1)), n)
    mse = error2.mean("rep")
    mse_mcse = np.sqrt(_sum((error2 - mse) ** 2) / (n * (n - 1)))
    out["mse"] = (mse, mse_mcse, n)
    out["rmse"] = (np.sqrt(mse), mse_mcse / (2 * np.sqrt(mse)), n)

    se_usable = valid & np.isfinite(ds["std_error"])
    variance = (ds["std_error"] ** 2).where(se_usable)
    n_se = se_usable.sum("rep")
    modelse = np.sqrt(variance.mean("rep"))
    variance_var = variance.var("rep", ddof=1)
    out["modelse"] = (modelse, np.sqrt(variance_var / (4 * n_se * modelse**2)), n_se)
    ratio = modelse / empse
    out["relerror_modelse"] = (
        100 * (ratio - 1),
        100 * ratio * np.sqrt(variance_var / (4 * n_se * modelse**4) + 1 / (2 * (n_se - 1))),
        np.minimum(n, n_se),
    )

    ci_usable = valid & np.isfinite(ds["ci_lower"]) & np.isfinite(ds["ci_upper"])
    covered = (ds["ci_lower"] <= theta) & (theta <= ds["ci_upper"])
    out["coverage"] = _proportion(covered, ci_usable)
    p_usable = valid & np.isfinite(ds["p_value"])
    out["rejection"] = _proportion(ds["p_value"] < alpha, p_usable)

    everything = xr.ones_like(valid, dtype=bool)
    out["failure_rate"] = _proportion(~valid, everything)

    measure_coord = xr.DataArray(list(out), dims="measure", name="measure")
    stacked = {
        name: xr.concat([out[m][k].astype(float) for m in out], dim=measure_coord, coords="minimal", compat="override")
        for k, name in enumerate(("value", "mcse", "n"))
    }
    result = xr.Dataset(stacked)
    result["n"] = result["n"].astype(np.int64)
    result.attrs.update(alpha=alpha)
    order = [*grid_dims(ds), "estimator", "term", "measure"]
    return result.transpose(*order)


def to_tidy(summary: xr.Dataset) -> pd.DataFrame:
    """Long table: grid factors..., estimator, term, measure, value, mcse, n."""
    frame = summary.to_dataframe().reset_index()
    dims = [d for d in summary["value"].dims]
    return frame[[*dims, "value", "mcse", "n"]]
