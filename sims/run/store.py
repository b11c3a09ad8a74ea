"""A run directory's results store, written chunk by chunk so that a study survives a crash.

Layout of a run directory:

- ``results.zarr``: the results dataset (schema in :mod:`analysis.schema`, written by
  :mod:`sims.run.dataset`), created full-size before the first replicate, zarr-chunked by grid
  cell and by ``chunk_size`` replicates, so each runner chunk fills exactly its own zarr chunks.
- ``results.progress``: the ledger (:mod:`analysis.integrity`), one line per finished chunk with
  the checksum of its files, and a checksum of the store's metadata each time the run changes
  it; appended and fsync'd only after the data are on disk. A chunk is done when its line is
  there and its files still hash to it: a damaged chunk is named and recomputed, which gives its
  original bits because a replicate's numbers depend only on (seed, cell, rep).
- ``results.journal``: present only while the store's size or attributes change (growing
  ``n_reps``, recording why an auto-sized study stopped): the state being written, which the
  next run completes before anything else, so that a kill at any moment leaves a store that
  resumes.

Identity guard: the store records a hash of everything in the config that changes the numbers
(all but ``runner``, ``n_reps``, ``precision``, ``print_table`` and ``report``), and of what the
DGP reads besides its parameters (``DGP.provenance()``: the SHA-256 of a pilot data file, as
``dgp.data_sha256``); resuming with a different config or a changed file stops with the list of
differing keys. The hash sorts keys, so the order of
estimators, grid factors and grid values is checked against the store's coordinates as well:
estimators (and terms) listed in another order are mapped to the stored order by name; grid
factors or values in another order would renumber the cells and their seeds, and are refused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from analysis import integrity
from analysis.integrity import LEDGER, ChunkFiles, DamagedStore, Ledger
from analysis.schema import RESULTS
from estimators.presets import ConfigError
from estimators.result import Status
from sims.run.durable import append_line, replace_file
from sims.run.dataset import chunk_dataset, chunk_region, empty_dataset, quiet_consolidated_metadata

log = logging.getLogger("clustersim")

READ_BLOCK = 20_000  # replicates per dask block when summarising
JOURNAL = "results.journal"
# Keys that say how to run a study, not what it computes.
NOT_PROVENANCE = ("runner", "n_reps", "precision", "print_table", "report")


def provenance(study) -> dict:
    """The part of the resolved config that determines the numbers, with what the DGPs read
    besides their parameters (:func:`dgp_inputs`) under ``dgp``."""
    config = OmegaConf.to_container(study.config, resolve=True)
    record = {k: v for k, v in config.items() if k not in NOT_PROVENANCE}
    inputs = dgp_inputs(study.cells)
    if inputs:
        record["dgp"] = {**record.get("dgp", {}), **inputs}
    return record


def dgp_inputs(cells) -> dict:
    """Each key of the cells' ``dgp.provenance()`` (e.g. ``data_sha256``): one value when every
    cell agrees, else the list of the cells' values in cell order."""
    per_cell = [getattr(cell.dgp, "provenance", dict)() for cell in cells]
    keys = list(dict.fromkeys(key for facts in per_cell for key in facts))
    inputs = {}
    for key in keys:
        values = [facts.get(key) for facts in per_cell]
        inputs[key] = values[0] if all(v == values[0] for v in values) else values
    return inputs


def provenance_hash(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def flatten_config(node, prefix: str = "") -> dict:
    """A nested config as {dotted key: value}; an empty mapping keeps its key."""
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(flatten_config(value, f"{prefix}{key}."))
        return flat or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): node}


def differing_keys(old: dict, new: dict) -> list[str]:
    a, b = flatten_config(old), flatten_config(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _metadata(path: Path) -> xr.Dataset:
    """The store opened for its attributes, sizes and coordinates: no dask arrays built."""
    return xr.open_zarr(path, chunks=None)


def _stored_list(ds: xr.Dataset, name: str) -> list:
    return np.asarray(ds[name].values).tolist()


class RunStore:
    """The results store, ledger and journal of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS
        self.ledger = self.run_dir / LEDGER
        self.journal = self.run_dir / JOURNAL
        self._files: ChunkFiles | None = None

    def exists(self) -> bool:
        return self.path.is_dir()

    def open(self) -> xr.Dataset:
        """The results, lazily (dask arrays over blocks of whole store chunks, at least
        ``READ_BLOCK`` replicates): nothing is read until computed."""
        rep_chunk = int(_metadata(self.path).attrs["rep_chunk"])
        block = rep_chunk * max(1, READ_BLOCK // rep_chunk)
        return xr.open_zarr(self.path, chunks={"rep": block})  # each block read in one call to zarr

    @property
    def rep_chunk(self) -> int:
        return int(_metadata(self.path).attrs["rep_chunk"])

    @property
    def n_reps(self) -> int:
        return int(_metadata(self.path).sizes["rep"])

    # --- opening an existing store -----------------------------------------------------------

    def recover(self) -> None:
        """Complete a change of size or attributes that a killed run left half done."""
        if self.exists() and self.journal.exists():
            self._apply(json.loads(self.journal.read_text()))

    def discard_if_unverifiable(self) -> None:
        """Remove a store whose ledger was lost (no checksum of its metadata): none of its
        replicates can be trusted, so all are recomputed (to the same bits)."""
        if self.exists() and Ledger.read(self.ledger).meta is None:
            log.warning("%s has no checksums in %s: every replicate will be recomputed", self.path, self.ledger)
            shutil.rmtree(self.path)

    def check_provenance(self, study) -> None:
        """Refuse a study whose numbers would differ from the stored ones."""
        stored = _metadata(self.path).attrs
        record = provenance(study)
        if stored.get("provenance_hash") != provenance_hash(record):
            keys = differing_keys(json.loads(stored.get("provenance", "{}")), record)
            raise ConfigError(
                keys[0] if keys else "config",
                f"differs from the config of the results in {self.path} "
                f"(differing keys: {', '.join(keys) or 'unknown'}); use a new hydra.run.dir",
            )

    def check_integrity(self) -> None:
        """Refuse a store whose metadata differ from what the run wrote (one-line
        :class:`~analysis.integrity.DamagedStore`)."""
        if integrity.metadata_digest(self.path) != Ledger.read(self.ledger).meta:
            raise DamagedStore(f"{self.path}: its attributes, coordinates or truth differ from what the run wrote; "
                               f"use a new hydra.run.dir")

    def align(self, study) -> None:
        """Check the study against the store's coordinates, in order and by label: estimators
        and terms in another order are put in the stored order (they are found by name, and
        an estimator's seeds follow its name); a grid in another order is refused, since the
        cells, and so their seeds, are numbered in grid order."""
        ds = _metadata(self.path)
        stored_dims = [d for d in ds["truth"].dims if d != "term"]
        if stored_dims != list(study.grid):
            raise ConfigError("grid", f"factors are ({', '.join(study.grid)}) but the results in {self.path} have "
                                      f"({', '.join(stored_dims)}) in that order: list the grid keys in the stored "
                                      f"order or use a new hydra.run.dir")
        for dim, values in study.grid.items():
            stored = _stored_list(ds, dim)
            if stored != list(values):
                raise ConfigError(f"grid.{study.grid_keys[dim]}", f"is {list(values)} but the results in {self.path} "
                                  f"have {stored} in that order: list the values in the stored order or use a new "
                                  f"hydra.run.dir")
        stored_estimators = _stored_list(ds, "estimator")
        if stored_estimators != study.estimator_names:
            if sorted(stored_estimators) != sorted(study.estimator_names):
                raise ConfigError("estimators", f"are {study.estimator_names} but the results in {self.path} hold "
                                                f"{stored_estimators}; use a new hydra.run.dir")
            study.reorder_estimators(stored_estimators)
        stored_terms = _stored_list(ds, "term")
        if sorted(stored_terms) != sorted(study.terms):
            raise ConfigError("estimators", f"report the terms {study.terms} but the results in {self.path} hold "
                                            f"{stored_terms}; use a new hydra.run.dir")
        study.terms = stored_terms

    # --- creating and changing the store -----------------------------------------------------

    def prepare(self, study) -> None:
        """Create the store for ``study``, or grow an existing one (whose identity the caller
        has checked) to ``study.n_reps`` replicates."""
        if not self.exists():
            self._create(study)
        elif study.n_reps > self.n_reps:
            stored = _metadata(self.path).attrs
            self._change({"from": self.n_reps, "to": study.n_reps,
                          "attrs": {**stored, "n_reps": study.n_reps, "config": study.yaml()}})

    def record(self, **attrs) -> None:
        """Store run-level facts (e.g. why an auto-sized study stopped) as attributes."""
        stored = _metadata(self.path).attrs
        self._change({"from": self.n_reps, "to": self.n_reps, "attrs": {**stored, **attrs}})

    def _create(self, study) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = provenance(study)
        ds = empty_dataset(study, study.n_reps, lazy=True, rep_chunk=study.chunk_size)
        ds.attrs.update(provenance=json.dumps(record, sort_keys=True, default=str),
                        provenance_hash=provenance_hash(record), rep_chunk=study.chunk_size)
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.journal.unlink(missing_ok=True)
        with quiet_consolidated_metadata():
            # Writes the coordinates and the numpy-backed truth and cell_index now; the
            # dask-backed per-replicate variables get only metadata, and data chunk by chunk.
            ds.to_zarr(partial, mode="w", compute=False, consolidated=True)
        # The ledger starts with the store's checksum before the store takes its name: a kill
        # before the rename leaves no store, after it a store with its checksum.
        replace_file(self.ledger, f"meta {integrity.metadata_digest(partial)}\n")
        os.replace(partial, self.path)

    def _change(self, state: dict) -> None:
        """Journal ``state`` (replicates ``from`` -> ``to``, the attributes), then apply it."""
        replace_file(self.journal, json.dumps(state, default=str))
        self._apply(state)

    def _apply(self, state: dict) -> None:
        """Give the store ``state['to']`` replicates (new ones ``failed``, "not run", until
        their chunks are done) and ``state['attrs']``; idempotent, so an interrupted change is
        completed by applying it again. Removes the journal when done."""
        import zarr

        old, new = int(state["from"]), int(state["to"])
        group = zarr.open_group(self.path, mode="r+", use_consolidated=False)
        for _, array in group.arrays():
            dims = tuple(array.metadata.dimension_names or ())
            if "rep" in dims and array.shape[dims.index("rep")] != new:
                array.resize(tuple(new if d == "rep" else n for d, n in zip(dims, array.shape)))
        if new > old:
            group["rep"][old:new] = np.arange(old, new)
            status = group["status"]
            index = tuple(slice(old, new) if d == "rep" else slice(None) for d in status.metadata.dimension_names)
            status[index] = np.int8(Status.failed)
        group.attrs.update(state["attrs"])
        with quiet_consolidated_metadata():
            zarr.consolidate_metadata(self.path)
        self._files = None
        self._record_metadata()
        self.journal.unlink(missing_ok=True)

    def _record_metadata(self) -> None:
        append_line(self.ledger, f"meta {integrity.metadata_digest(self.path)}\n")

    # --- chunks ------------------------------------------------------------------------------

    def done(self) -> set[tuple[int, int, int]]:
        """(cell, start, stop) of every finished chunk whose files still hold what was written;
        damaged chunks are named in the log and left to be recomputed."""
        ledger = Ledger.read(self.ledger)
        damaged = set(integrity.damaged_chunks(self.run_dir, ledger)) if ledger.chunks else set()
        if damaged:
            log.warning("%d damaged chunk(s) in %s will be recomputed: %s", len(damaged), self.path,
                        integrity.describe_chunks(damaged))
        return set(ledger.chunks) - damaged

    def write_chunk(self, study, chunk) -> None:
        """Write one chunk's replicates into their region, then record the chunk and the
        checksum of its files as done."""
        region = chunk_region(study, chunk)
        with quiet_consolidated_metadata():
            chunk_dataset(study, chunk).to_zarr(self.path, region=region, consolidated=True)
        if self._files is None:
            self._files = ChunkFiles(self.path)
        digest = self._files.digest(region)
        append_line(self.ledger, integrity.chunk_line(chunk.cell, chunk.reps.start, chunk.reps.stop, digest))
