"""The summary table a study prints, and the per-cell tables of the report: per grid cell,
estimator and term, measures labelled in words as ``value (Monte Carlo SE)``, followed by
what each estimator fits.

Numbers are rounded to their Monte Carlo precision: the MCSE to 2 significant digits and the
value to the same decimal place, at most 4 significant digits of the value (a value known to
0.0012 prints as 0.5120 (0.0012); one of 0.00034 as 0.00213 (0.00034)). A cell whose value is
undefined (a term an estimator does not report) is left empty, and a row with no defined
measure is left out. The rejection rate is called power where the term's truth is not 0 and
Type I error where it is 0 (Morris, White & Crowther 2019, table 6).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd
import xarray as xr

HEADLINE = ("bias", "empse", "modelse", "coverage", "rejection", "failure_rate")

# Column names in words; ``rejection`` becomes POWER or TYPE_I_ERROR by the term's truth.
WORDS = {"bias": "bias", "relbias": "relative bias (%)", "empse": "empirical SE", "modelse": "model SE",
         "relerror_modelse": "model SE error (%)", "coverage": "coverage", "becoverage": "bias-eliminated coverage",
         "mse": "MSE", "rmse": "RMSE", "ci_width": "interval width", "failure_rate": "failures",
         "coverage_all": "coverage (failures miss)", "rejection_all": "rejection (failures count)"}
POWER, TYPE_I_ERROR, REJECTION = "power", "Type I error", "rejection rate"
VALUE_DIGITS, MCSE_DIGITS = 4, 2
ZERO_DECIMALS = 3  # a value and MCSE both 0 (no failures): 0.000 (0.000)
# Parameters too common or too technical for the one-line description of an estimator.
UNDESCRIBED = ("_target_", "formula", "alpha", "timeout_s")


def _decimals(x: float, significant: int) -> float:
    """Decimal places that show ``x`` to ``significant`` digits (inf for 0 or a non-number)."""
    if not math.isfinite(x) or x == 0:
        return math.inf
    return max(significant - 1 - math.floor(math.log10(abs(x))), 0)


def value_with_mcse(value: float, mcse: float) -> str:
    """``value (mcse)`` at the MCSE's precision (see the module docstring); "" if undefined."""
    if not math.isfinite(value):
        return ""
    decimals = min(_decimals(mcse, MCSE_DIGITS), _decimals(value, VALUE_DIGITS))
    decimals = ZERO_DECIMALS if math.isinf(decimals) else int(decimals)
    shown = f"{value:.{decimals}f}"
    shown = shown.lstrip("-") if float(shown) == 0 else shown  # -0.04 at 1 decimal is 0.0, not -0.0
    return f"{shown} ({mcse:.{decimals}f})" if math.isfinite(mcse) else shown


def column_name(measure: str, truth: float | None = None) -> str:
    """The measure's name in words; the rejection rate's by the truth (None: unknown)."""
    if measure == "rejection":
        return REJECTION if truth is None or not math.isfinite(truth) else (TYPE_I_ERROR if truth == 0 else POWER)
    return WORDS.get(measure, measure)


def cell_tables(summary: xr.Dataset, measures: Sequence[str] = HEADLINE,
                truth: xr.DataArray | None = None) -> list[tuple[dict[str, Any], int, pd.DataFrame]]:
    """Per grid cell: (its grid coordinates, the most replicates of any value, the table with
    rows (estimator, term) and a column per measure in words, cells :func:`value_with_mcse`).

    ``truth`` (the dataset's, over grid... and term) names the rejection rate's column: power,
    Type I error, or both columns when the cell has terms of both kinds."""
    measures = [m for m in measures if m in summary["measure"].values]
    grid = [d for d in summary["value"].dims if d not in ("estimator", "term", "measure")]
    frame = summary.sel(measure=measures).to_dataframe().reset_index()
    frame = frame[frame["value"].map(math.isfinite)]
    if truth is not None:
        frame = frame.merge(truth.rename("truth").to_dataframe().reset_index()[[*grid, "term", "truth"]],
                            on=[*grid, "term"], how="left")
    frame["column"] = [column_name(m, t if truth is not None else None)
                       for m, t in zip(frame["measure"], frame.get("truth", [None] * len(frame)))]
    frame["shown"] = [value_with_mcse(v, m) for v, m in zip(frame["value"], frame["mcse"])]
    # A row whose only defined measure is its failure rate is a term the estimator does not report.
    reported = frame[frame["measure"] != "failure_rate"].groupby(["estimator", "term"], sort=False).size()
    frame = frame.set_index(["estimator", "term"]).loc[lambda f: f.index.isin(reported.index)].reset_index()
    order = [c for m in measures for c in ((POWER, TYPE_I_ERROR, REJECTION) if m == "rejection" else (column_name(m),))]
    tables = []
    groups = frame.groupby(grid, sort=False) if grid else [((), frame)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        table = part.pivot_table(index=["estimator", "term"], columns="column", values="shown", aggfunc="first",
                                 sort=False)
        table = table[[c for c in order if c in table.columns]].fillna("")
        table.columns.name = None
        tables.append((dict(zip(grid, key)), int(part["n"].max()), table))
    return tables


def describe_estimator(params: Mapping[str, Any]) -> str:
    """One line for an estimator's config: its class, its formula, its other scalar parameters,
    e.g. ``OLS  y ~ X  (vcov CR1, cluster subject)``; booleans as in YAML (``reml true``)."""
    kind = str(params.get("_target_", "?")).rsplit(".", 1)[-1]
    others = [f"{k} {str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items()
              if k not in UNDESCRIBED and v is not None and not isinstance(v, (Mapping, list, tuple))]
    formula = params.get("formula")
    return "  ".join(filter(None, [kind, str(formula) if formula else "", f"({', '.join(others)})" if others else ""]))


def format_table(summary: xr.Dataset, measures: Sequence[str] = HEADLINE, truth: xr.DataArray | None = None,
                 estimators: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """One block per grid cell (rows estimator x term, columns the measures in words), then
    one line per estimator of ``estimators`` (name -> its config) saying what it fits."""
    blocks = []
    alpha = summary.attrs.get("alpha", 0.05)
    for cell, n, table in cell_tables(summary, measures, truth):
        header = ", ".join(f"{d}={k}" for d, k in cell.items())
        title = f"{header}  " if header else ""
        rates = [c for c in (POWER, TYPE_I_ERROR, REJECTION) if c in table.columns]
        rejection = f"; {' and '.join(rates)}: share of p < {alpha}" if rates else ""
        blocks.append(f"{title}(value (Monte Carlo SE); up to {n} replicates{rejection})\n{table.to_string()}")
    if estimators:
        width = max(map(len, estimators))
        blocks.append("\n".join(f"{name:<{width}}  {describe_estimator(params)}" for name, params in estimators.items()))
    return "\n\n".join(blocks)
