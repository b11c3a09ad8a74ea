"""The results dataset's writer: the full-size empty dataset of a study, each chunk's values
and the region they fill, and the provenance attributes. The layout it writes is the read
contract of :mod:`analysis.schema`.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from analysis import integrity
from analysis.schema import PER_TERM, RESULTS, STATUS_ATTRS, validate_dataset
from estimators.result import Status
from sims.run.durable import replace_file

LAZY_BLOCK = 20_000  # replicates per dask block of a new store's placeholder variables
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


def _coord(values) -> np.ndarray:
    return _string_coord(values) if any(isinstance(v, str) for v in values) else np.array(values)


def _variable_specs(study) -> dict[str, tuple[list[str], object, object]]:
    """name -> (trailing dims after the grid dims, dtype, fill value) of every variable.
    Text uses numpy's variable-width StringDType, which zarr stores as vlen-utf8."""
    text = np.dtypes.StringDType()
    specs = {name: (["estimator", "rep", "term"], np.float64, np.nan) for name in PER_TERM}
    specs["status"] = (["estimator", "rep"], np.int8, int(Status.failed))
    specs["message"] = (["estimator", "rep"], text, "not run")
    specs["elapsed_s"] = (["estimator", "rep"], np.float64, np.nan)
    for extra in study.extras:
        specs[extra] = (["estimator", "rep"], text, "")
    return specs


def _attach_metadata(ds: xr.Dataset, study, n_reps: int) -> xr.Dataset:
    ds["status"].attrs.update(STATUS_ATTRS)
    ds["elapsed_s"].attrs.update(units="s", long_name="wall-clock time of the fit")
    ds["truth"].attrs.update(long_name="true value of the estimand")
    ds.attrs.update(
        config=study.yaml(), seed=study.seed, n_reps=n_reps, alpha=study.alpha,
        grid_keys=" ".join(f"{dim}={key}" for dim, key in study.grid_keys.items()),
        **package_versions(),
    )
    return ds


def empty_dataset(study, n_reps: int, lazy: bool = False, rep_chunk: int | None = None) -> xr.Dataset:
    """The full-size results dataset before any replicate is in: NaN estimates, status
    ``failed`` with message "not run". ``lazy`` builds it for the store: chunked by grid cell
    and ``rep_chunk`` replicates, from dask arrays so that nothing big is allocated, except
    ``status``, which is small and written at once so that replicates whose chunk has not run
    read as ``failed`` rather than as zarr's default fill value 0 (``ok``)."""
    grid_dims = list(study.grid)
    grid_shape = [len(v) for v in study.grid.values()]
    sizes = {"estimator": len(study.estimator_names), "rep": n_reps, "term": len(study.terms)}
    data_vars = {}
    for name, (trailing, dtype, fill) in _variable_specs(study).items():
        shape = grid_shape + [sizes[d] for d in trailing]
        chunks = tuple([1] * len(grid_shape) + [rep_chunk if d == "rep" else sizes[d] for d in trailing])
        if lazy and name != "status":
            import dask.array

            # Blocks of whole store chunks: the store keeps rep_chunk (its encoding), while the
            # task graph of writing the placeholders stays small (one task per 25-replicate
            # chunk made a 10^5-replicate store cost the main process 80 MiB to create).
            block = rep_chunk * max(1, LAZY_BLOCK // rep_chunk)
            blocks = tuple(block if d == "rep" else c for d, c in zip(grid_dims + trailing, chunks))
            values = dask.array.full(shape, fill, dtype=dtype, chunks=blocks)
        else:
            values = np.full(shape, fill, dtype=dtype)
        data_vars[name] = xr.Variable(grid_dims + trailing, values,
                                      encoding={"chunks": chunks} if lazy else {})
    truth = np.full((len(study.cells), len(study.terms)), np.nan)
    for cell in study.cells:
        for term, value in cell.dgp.truth().items():
            truth[cell.index, study.terms.index(term)] = value
    data_vars["truth"] = (grid_dims + ["term"], truth.reshape(grid_shape + [len(study.terms)]))
    data_vars["cell_index"] = (grid_dims, np.arange(len(study.cells)).reshape(grid_shape))
    coords = {dim: _coord(values) for dim, values in study.grid.items()}
    coords.update(estimator=_string_coord(study.estimator_names), rep=np.arange(n_reps),
                  term=_string_coord(study.terms))
    return _attach_metadata(xr.Dataset(data_vars, coords=coords), study, n_reps)


def chunk_region(study, chunk) -> dict[str, slice]:
    """Where a chunk's replicates sit in the results dataset (positional slices per dim)."""
    return integrity.chunk_region(list(study.grid), tuple(len(v) for v in study.grid.values()), chunk.cell, chunk.reps)


def chunk_variables(study, chunk) -> dict[str, np.ndarray]:
    """A chunk's values, shaped like their region of the results dataset (grid dims of size 1)."""
    n_grid = len(study.grid)
    n_est, n_reps, n_terms = len(study.estimator_names), len(chunk.reps), len(study.terms)
    specs = _variable_specs(study)
    out = {
        name: np.full((n_est, n_reps) + ((n_terms,) if "term" in trailing else ()), fill, dtype=dtype)
        for name, (trailing, dtype, fill) in specs.items()
    }
    for e, name in enumerate(study.estimator_names):
        part = chunk.estimators[name]
        unknown = [t for t in part.terms if t not in study.terms]
        if unknown:
            raise RuntimeError(f"estimator {name!r} reported terms {unknown} that its trial fit did not")
        columns = [study.terms.index(t) for t in part.terms]
        for variable in PER_TERM:
            out[variable][e][:, columns] = part.values[variable]
        out["status"][e] = part.status
        out["message"][e] = part.message
        out["elapsed_s"][e] = part.elapsed_s
        for key, values in part.extras.items():
            if key in out:
                out[key][e] = ["" if v is None else str(v) for v in values]
    return {name: values.reshape((1,) * n_grid + values.shape) for name, values in out.items()}


def chunk_dataset(study, chunk) -> xr.Dataset:
    """A chunk as a dataset without coordinates, for a region write into the store."""
    grid_dims = list(study.grid)
    specs = _variable_specs(study)
    return xr.Dataset({
        name: (grid_dims + specs[name][0], values) for name, values in chunk_variables(study, chunk).items()
    })


def build_dataset(study, chunks) -> xr.Dataset:
    """Assemble the chunks of a study in memory (the Python API's path; the CLI streams them
    into the store instead)."""
    ds = empty_dataset(study, study.n_reps)
    for chunk in chunks:
        region = chunk_region(study, chunk)
        for name, values in chunk_variables(study, chunk).items():
            index = tuple(region.get(dim, slice(None)) for dim in ds[name].dims)
            ds[name].values[index] = values
    validate_dataset(ds)
    return ds


@contextlib.contextmanager
def quiet_consolidated_metadata():
    """zarr 3 warns that consolidated metadata is not in the v3 spec; xarray reads it fine and
    opening a store without it warns on every ``open_zarr``, so it is written on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def write_results(ds: xr.Dataset, run_dir: Path) -> Path:
    """Write ``ds`` as ``run_dir/results.zarr`` in one go, atomically (a half-written store never
    has the final name), with the checksum of its files in the run directory's ledger
    (:mod:`analysis.integrity`); returns the store's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESULTS
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with quiet_consolidated_metadata():
        ds.to_zarr(partial, mode="w", consolidated=True)
    replace_file(run_dir / integrity.LEDGER, f"all {integrity.files_digest(partial)}\n")
    shutil.rmtree(path, ignore_errors=True)
    os.replace(partial, path)
    return path
