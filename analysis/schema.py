"""The results dataset: the one place that knows its dimensions, variables and attributes.

Dims: one per grid factor (named after the last segment of its config key), ``estimator``,
``rep``, ``term``. Variables over (grid..., estimator, rep, term): ``estimate``, ``std_error``,
``df``, ``ci_lower``, ``ci_upper``, ``p_value``; over (grid..., estimator, rep): ``status``
(int8 codes with CF ``flag_values``/``flag_meanings``), ``message``, ``elapsed_s``; over
(grid..., term): ``truth``; over (grid...): ``cell_index`` (a replicate's seed stream is
``SeedSequence(seed, spawn_key=(cell_index, rep))``). Attributes hold only strings and numbers:
the resolved config as YAML, the seed, and package versions.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from estimators.result import NUMERIC_COLUMNS, Status

PER_TERM = NUMERIC_COLUMNS  # estimate, std_error, df, ci_lower, ci_upper, p_value
PER_REPLICATE = ("status", "message", "elapsed_s")
STATUS_ATTRS = {
    "flag_values": [int(s) for s in Status],
    "flag_meanings": " ".join(s.name for s in Status),
    "long_name": "outcome of the fit",
}
VERSIONED_PACKAGES = ("clustersim", "numpy", "scipy", "pandas", "statsmodels", "xarray", "zarr", "hydra-core")


def package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[f"version_{package.replace('-', '_')}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[f"version_{package.replace('-', '_')}"] = "not installed"
    return versions


def _string_coord(values) -> np.ndarray:
    # Object arrays of str become zarr's variable-length strings (no unstable fixed-width dtype).
    return np.array(list(values), dtype=object)


def build_dataset(study, chunks) -> xr.Dataset:
    """Assemble the chunks of a finished study into the results dataset."""
    grid_dims = list(study.grid)
    grid_shape = [len(v) for v in study.grid.values()]
    estimators = study.estimator_names
    terms: list[str] = []
    for cell in study.cells:
        terms.extend(t for t in cell.dgp.truth() if t not in terms)
    for chunk in chunks:
        for part in chunk.estimators.values():
            terms.extend(t for t in part.terms if t not in terms)
    term_index = {t: j for j, t in enumerate(terms)}
    n_cells, n_est, n_reps, n_terms = len(study.cells), len(estimators), study.n_reps, len(terms)

    per_term = {name: np.full((n_cells, n_est, n_reps, n_terms), np.nan) for name in PER_TERM}
    status = np.full((n_cells, n_est, n_reps), int(Status.failed), dtype=np.int8)
    message = np.full((n_cells, n_est, n_reps), "not run", dtype=object)
    elapsed = np.full((n_cells, n_est, n_reps), np.nan)
    extras: dict[str, np.ndarray] = {}
    for chunk in chunks:
        reps = np.arange(chunk.reps.start, chunk.reps.stop)
        for e, name in enumerate(estimators):
            part = chunk.estimators[name]
            columns = [term_index[t] for t in part.terms]
            for variable in PER_TERM:
                block = per_term[variable][chunk.cell, e]
                block[np.ix_(reps, columns)] = part.values[variable]
            status[chunk.cell, e, reps] = part.status
            message[chunk.cell, e, reps] = part.message
            elapsed[chunk.cell, e, reps] = part.elapsed_s
            for key, values in part.extras.items():
                array = extras.setdefault(key, np.full((n_cells, n_est, n_reps), "", dtype=object))
                array[chunk.cell, e, reps] = ["" if v is None else str(v) for v in values]

    truth = np.full((n_cells, n_terms), np.nan)
    for cell in study.cells:
        for term, value in cell.dgp.truth().items():
            truth[cell.index, term_index[term]] = value

    def shaped(array, trailing):
        return array.reshape(grid_shape + list(array.shape[1:])), grid_dims + trailing

    data_vars = {}
    for variable in PER_TERM:
        values, dims = shaped(per_term[variable], ["estimator", "rep", "term"])
        data_vars[variable] = (dims, values)
    for variable, array in (("status", status), ("message", message), ("elapsed_s", elapsed), *extras.items()):
        values, dims = shaped(array, ["estimator", "rep"])
        data_vars[variable] = (dims, values)
    values, dims = shaped(truth, ["term"])
    data_vars["truth"] = (dims, values)
    values, dims = shaped(np.arange(n_cells), [])
    data_vars["cell_index"] = (dims, values)

    coords = {dim: (_string_coord(v) if any(isinstance(x, str) for x in v) else np.array(v))
              for dim, v in study.grid.items()}
    coords.update(estimator=_string_coord(estimators), rep=np.arange(n_reps), term=_string_coord(terms))
    ds = xr.Dataset(data_vars, coords=coords)
    ds["status"].attrs.update(STATUS_ATTRS)
    ds["elapsed_s"].attrs.update(units="s", long_name="wall-clock time of the fit")
    ds["truth"].attrs.update(long_name="true value of the estimand")
    ds.attrs.update(
        config=study.yaml(), seed=study.seed, n_reps=study.n_reps, alpha=study.alpha,
        grid_keys=" ".join(f"{dim}={key}" for dim, key in study.grid_keys.items()),
        **package_versions(),
    )
    validate_dataset(ds)
    return ds


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


def write_results(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` as a zarr store, atomically: a half-written store never has the final name."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    with warnings.catch_warnings():
        # zarr 3 notes that consolidated metadata is not in the v3 spec; xarray reads it fine
        # and opening without it would warn on every open_zarr, so it is written on purpose.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(partial, mode="w", consolidated=True)
    partial.rename(path)


def open_results(path: Path) -> xr.Dataset:
    return xr.open_zarr(path)
