"""The results dataset's read contract: its dimensions, variables and attributes, how to find
and open a run directory's store, and the check that a dataset follows the schema. The writer
(empty store, chunk regions, provenance attributes) is :mod:`sims.run.dataset`.

Dims: one per grid factor (named after the last segment of its config key), ``estimator``,
``rep``, ``term``. Variables over (grid..., estimator, rep, term): ``estimate``, ``std_error``,
``df``, ``ci_lower``, ``ci_upper``, ``p_value``; over (grid..., estimator, rep): ``status``
(int8 codes with CF ``flag_values``/``flag_meanings``), ``message``, ``elapsed_s``; over
(grid..., term): ``truth``; over (grid...): ``cell_index`` (a replicate's seed stream is
``SeedSequence(seed, spawn_key=(cell_index, rep))``). Attributes hold only strings and numbers:
the resolved config as YAML, the seed, and package versions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from estimators.result import NUMERIC_COLUMNS, Status

RESULTS = "results.zarr"  # the store's name in a run directory
REPORT = "report.html"  # the run's report (analysis.report)
# The command line's arguments as typed, a YAML list in the run directory's .hydra/ (Hydra's
# overrides.yaml holds them as clustersim rewrote them for Hydra).
COMMAND = "command.yaml"
PER_TERM = NUMERIC_COLUMNS  # estimate, std_error, df, ci_lower, ci_upper, p_value
STATUS_ATTRS = {
    "flag_values": [int(s) for s in Status],
    "flag_meanings": " ".join(s.name for s in Status),
    "long_name": "outcome of the fit",
}
def validate_dataset(ds: xr.Dataset) -> None:
    """Raise ValueError unless ``ds`` follows the schema above."""
    for name in ("estimator", "rep", "term"):
        if name not in ds.dims:
            raise ValueError(f"results dataset has no {name!r} dimension")
    grid_dims = [d for d in ds["truth"].dims if d != "term"]
    for name in PER_TERM:
        if name not in ds or set(ds[name].dims) != {*grid_dims, "estimator", "rep", "term"}:
            raise ValueError(f"results variable {name!r} is missing or has the wrong dimensions")
    for name in ("status", "elapsed_s"):
        if name not in ds or set(ds[name].dims) != {*grid_dims, "estimator", "rep"}:
            raise ValueError(f"results variable {name!r} is missing or has the wrong dimensions")
    for key, value in ds.attrs.items():
        if not isinstance(value, (str, int, float, np.integer, np.floating)):
            raise ValueError(f"attribute {key!r} is a {type(value).__name__}; attributes hold only strings and numbers")


def grid_dims(ds: xr.Dataset) -> list[str]:
    """The grid factors of a results dataset, in order."""
    return [d for d in ds["truth"].dims if d != "term"]


def open_results(path: Path) -> xr.Dataset:
    return xr.open_zarr(path)


def find_runs(path: str | Path) -> list[Path]:
    """Run directories under ``path``: ``path`` itself when it holds ``results.zarr``, else its
    immediate subdirectories that do (a Hydra multirun's sweep directory), in job order."""
    path = Path(path)
    if (path / RESULTS).is_dir():
        return [path]
    if not path.is_dir():
        return []
    children = [child for child in path.iterdir() if (child / RESULTS).is_dir()]
    return sorted(children, key=lambda p: (len(p.name), p.name))
