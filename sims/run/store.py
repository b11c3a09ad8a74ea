"""A run directory's results store, written chunk by chunk so that a study survives a crash.

Layout of a run directory:

- ``results.zarr``: the results dataset (schema in :mod:`analysis.schema`, written by :mod:`sims.run.dataset`), created full-size
  before the first replicate, zarr-chunked by grid cell and by ``chunk_size`` replicates, so
  each runner chunk fills exactly its own zarr chunks (zarr writes each chunk file atomically).
- ``results.progress``: the ledger, one line ``cell start stop`` per finished chunk, appended
  and fsync'd only after the chunk's data are on disk. A chunk is done when its line is there;
  a torn last line (power loss mid-append) is ignored and the chunk is simply redone, which is
  harmless because a replicate's numbers depend only on (seed, cell, rep).

Provenance guard: the store records a hash of everything in the config that changes the
numbers (all but ``runner``, ``n_reps``, ``precision``, ``print_table`` and ``report``).
Resuming with a different config stops with the list of differing keys; raising ``n_reps``
grows the store and runs only the new replicates.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import xarray as xr
from omegaconf import OmegaConf

from analysis.schema import RESULTS
from sims.run.dataset import chunk_dataset, chunk_region, empty_dataset, quiet_consolidated_metadata
from estimators.presets import ConfigError

READ_BLOCK = 20_000  # replicates per dask block when summarising
LEDGER = "results.progress"
# Keys that say how to run a study, not what it computes.
NOT_PROVENANCE = ("runner", "n_reps", "precision", "print_table", "report")


def provenance(study) -> dict:
    """The part of the resolved config that determines the numbers."""
    config = OmegaConf.to_container(study.config, resolve=True)
    return {k: v for k, v in config.items() if k not in NOT_PROVENANCE}


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


class RunStore:
    """The results store and ledger of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS
        self.ledger = self.run_dir / LEDGER

    def exists(self) -> bool:
        return self.path.is_dir()

    def open(self) -> xr.Dataset:
        """The results, lazily (dask arrays over blocks of whole store chunks, at least
        ``READ_BLOCK`` replicates): nothing is read until computed."""
        ds = xr.open_zarr(self.path)
        rep_chunk = int(ds.attrs["rep_chunk"])
        block = rep_chunk * max(1, READ_BLOCK // rep_chunk)
        return ds.chunk({"rep": block})

    @property
    def rep_chunk(self) -> int:
        return int(xr.open_zarr(self.path).attrs["rep_chunk"])

    @property
    def n_reps(self) -> int:
        return int(xr.open_zarr(self.path).sizes["rep"])

    def check_provenance(self, study) -> None:
        """Refuse a study whose numbers would differ from the stored ones."""
        stored = self.open().attrs
        record = provenance(study)
        if stored.get("provenance_hash") != provenance_hash(record):
            keys = differing_keys(json.loads(stored.get("provenance", "{}")), record)
            raise ConfigError(
                keys[0] if keys else "config",
                f"differs from the config of the results in {self.path} "
                f"(differing keys: {', '.join(keys) or 'unknown'}); use a new hydra.run.dir",
            )

    def prepare(self, study) -> None:
        """Create the store for ``study``, or grow an existing one (whose provenance the caller
        has checked with :meth:`check_provenance`) to ``study.n_reps`` replicates."""
        if not self.exists():
            self._create(study)
        elif study.n_reps > self.n_reps:
            self._grow(study)

    def _create(self, study) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = provenance(study)
        ds = empty_dataset(study, study.n_reps, lazy=True, rep_chunk=study.chunk_size)
        ds.attrs.update(provenance=json.dumps(record, sort_keys=True, default=str),
                        provenance_hash=provenance_hash(record), rep_chunk=study.chunk_size)
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.ledger.unlink(missing_ok=True)
        with quiet_consolidated_metadata():
            # Writes the coordinates and the numpy-backed truth and cell_index now; the
            # dask-backed per-replicate variables get only metadata, and data chunk by chunk.
            ds.to_zarr(partial, mode="w", compute=False, consolidated=True)
        partial.rename(self.path)

    def _grow(self, study) -> None:
        """Append replicates n_old..n_new-1 (placeholders until their chunks are done)."""
        stored = xr.open_zarr(self.path)
        rep_chunk = int(stored.attrs["rep_chunk"])
        extra = empty_dataset(study, study.n_reps, lazy=True, rep_chunk=rep_chunk)
        extra = extra.isel(rep=slice(stored.sizes["rep"], None)).drop_vars(["truth", "cell_index", *study.grid])
        # An append rewrites the group's attributes: carry the stored ones over.
        extra.attrs = {**stored.attrs, "n_reps": study.n_reps, "config": study.yaml()}
        with quiet_consolidated_metadata():
            extra.to_zarr(self.path, append_dim="rep", consolidated=True, safe_chunks=False)

    def _set_attrs(self, **attrs) -> None:
        import zarr

        group = zarr.open_group(self.path, mode="r+")
        group.attrs.update(attrs)
        with quiet_consolidated_metadata():
            zarr.consolidate_metadata(self.path)

    def done(self) -> set[tuple[int, int, int]]:
        """(cell, start, stop) of every finished chunk."""
        if not self.ledger.exists():
            return set()
        finished = set()
        for line in self.ledger.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                finished.add(tuple(int(p) for p in parts))
        return finished

    def write_chunk(self, study, chunk) -> None:
        """Write one chunk's replicates into their region, then record the chunk as done."""
        region = chunk_region(study, chunk)
        with quiet_consolidated_metadata():
            chunk_dataset(study, chunk).to_zarr(self.path, region=region, consolidated=True)
        line = f"{chunk.cell} {chunk.reps.start} {chunk.reps.stop}\n".encode()
        descriptor = os.open(self.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def record(self, **attrs) -> None:
        """Store run-level facts (e.g. why an auto-sized study stopped) as attributes."""
        self._set_attrs(**attrs)
