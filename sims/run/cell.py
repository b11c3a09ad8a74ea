"""A grid cell of a study: one combination of grid values, with its DGP and estimators built.

Its own module because tasks carry cells to the worker processes: unpickling one there imports
this module and the cell's DGP and estimator classes, not the study's validation (Hydra's
configs, the results schema, xarray), which a worker never needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Cell:
    """One combination of grid values, with its DGP and estimators built."""

    index: int
    coords: dict[str, Any]
    dgp: Any
    estimators: dict[str, Any]
