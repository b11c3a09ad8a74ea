"""Precision-targeted replication (``n_reps: auto``): how many replicates a study needs.

The Monte Carlo SE of the measures here shrinks like 1/sqrt(n), so a cell whose MCSE is s at
n replicates needs about n (s / target)^2 of them. The study grows to the largest such need
over cells, estimators and terms (rounded up to ``step``, capped at ``max_reps``) and stops
when every MCSE is at or below the target.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr


def next_n_reps(summary: xr.Dataset, precision, current: int) -> tuple[int, str | None]:
    """(replicates to have, None) to go on, or (current, reason) to stop."""
    mcse = summary["mcse"].sel(measure=precision.measure).values
    mcse = mcse[np.isfinite(mcse)]
    if mcse.size == 0:
        return current, f"no finite Monte Carlo SE for {precision.measure} at {current} replicates"
    worst = float(mcse.max())
    if worst <= precision.mcse:
        return current, f"target reached: max MCSE of {precision.measure} {worst:.4g} <= {precision.mcse:g} at {current} replicates"
    if current >= precision.max_reps:
        return current, f"max_reps reached: max MCSE of {precision.measure} {worst:.4g} > {precision.mcse:g} at {current} replicates"
    needed = current * (worst / precision.mcse) ** 2
    step = int(precision.step)
    target = max(step * math.ceil(needed / step), current + step)
    return min(int(precision.max_reps), target), None
