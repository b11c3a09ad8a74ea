"""The summary table a study prints: per cell, estimator and term, the headline measures as
``value (mcse)``."""
from __future__ import annotations

import pandas as pd
import xarray as xr

HEADLINE = ("bias", "empse", "modelse", "coverage", "rejection", "failure_rate")


def _cell(value: float, mcse: float) -> str:
    if pd.isna(value):
        return "-"
    digits = 3 if abs(value) < 100 else 1
    return f"{value:.{digits}f} ({mcse:.{digits}f})"


def format_table(summary: xr.Dataset, measures=HEADLINE) -> str:
    """One block per grid cell; rows estimator x term, columns the measures."""
    grid = [d for d in summary["value"].dims if d not in ("estimator", "term", "measure")]
    frame = summary.sel(measure=list(measures)).to_dataframe().reset_index()
    frame["shown"] = [_cell(v, m) for v, m in zip(frame["value"], frame["mcse"])]
    blocks = []
    groups = frame.groupby(grid, sort=False) if grid else [((), frame)]
    for key, part in groups:
        table = part.pivot_table(index=["estimator", "term"], columns="measure", values="shown",
                                 aggfunc="first", sort=False)[list(measures)]
        table.columns.name = None
        header = ", ".join(f"{d}={k}" for d, k in zip(grid, key if isinstance(key, tuple) else (key,)))
        n = int(part["n"].max())
        title = f"{header}  " if header else ""
        blocks.append(f"{title}(value (Monte Carlo SE); up to {n} replicates)\n{table.to_string()}")
    return "\n\n".join(blocks)
