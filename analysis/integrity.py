"""The results store's checksums: what the run recorded about its store, and the check that the
store still holds exactly that, so that damage or tampering is found before anything is read.

A run directory's ledger (``results.progress``, appended and fsync'd by the run) holds one line
per record, the last line of a kind winning:

- ``<cell> <start> <stop> <sha256>``: the chunk of replicates ``start..stop-1`` of grid cell
  ``cell`` is done, and its files hashed to ``sha256`` (:meth:`ChunkFiles.digest`);
- ``meta <sha256>``: the store's attributes, coordinates, ``truth``, ``cell_index`` and the
  dims and dtypes of every variable hashed to ``sha256`` (:func:`metadata_digest`), written each
  time the run changes them;
- ``all <sha256>``: every file of a store written in one go (``clustersim-collect``) hashed to
  ``sha256`` (:func:`files_digest`).

A line that does not parse (torn by a power loss, or not UTF-8) is ignored, so its chunk is
simply redone. A chunk's digest covers each of its zarr chunk files by name and content, a
missing file (zarr does not store a chunk that is all fill value) by a marker: a deleted,
truncated or edited chunk file changes it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import xarray as xr

from analysis.schema import RESULTS

LEDGER = "results.progress"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DamagedStore(ValueError):
    """The store differs from what its run recorded; ``str(error)`` is one line."""


@dataclass
class Ledger:
    """The records of one ledger file."""

    chunks: dict[tuple[int, int, int], str] = field(default_factory=dict)  # (cell, start, stop) -> digest
    meta: str | None = None
    whole: str | None = None  # the ``all`` record

    @classmethod
    def read(cls, path: Path) -> "Ledger":
        ledger = cls()
        if not Path(path).is_file():
            return ledger
        for line in Path(path).read_bytes().decode("utf-8", errors="replace").splitlines():
            parts = line.split()
            if not parts or not _SHA256.fullmatch(parts[-1]):
                continue
            if len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
                ledger.chunks[(int(parts[0]), int(parts[1]), int(parts[2]))] = parts[3]
            elif len(parts) == 2 and parts[0] == "meta":
                ledger.meta = parts[1]
            elif len(parts) == 2 and parts[0] == "all":
                ledger.whole = parts[1]
        return ledger


def chunk_line(cell: int, start: int, stop: int, digest: str) -> str:
    return f"{cell} {start} {stop} {digest}\n"


def grid_position(grid_shape: tuple[int, ...], cell: int) -> tuple[int, ...]:
    """The position of grid cell ``cell`` (C order over the grid factors, as the study numbers
    its cells) along each grid dimension."""
    return tuple(int(i) for i in np.unravel_index(cell, grid_shape)) if grid_shape else ()


def chunk_region(grid_dims: list[str], grid_shape: tuple[int, ...], cell: int, reps: range) -> dict[str, slice]:
    """Where replicates ``reps`` of grid cell ``cell`` sit in the results dataset."""
    region = {dim: slice(i, i + 1) for dim, i in zip(grid_dims, grid_position(grid_shape, cell))}
    region["rep"] = slice(reps.start, reps.stop)
    return region


def _hash_files(digest, root: Path, paths: Iterable[Path]) -> None:
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            digest.update(b"absent\0")
        else:
            digest.update(len(content).to_bytes(8, "little") + content)


class ChunkFiles:
    """The zarr chunk files of a store's per-replicate variables, to hash chunk by chunk (the
    arrays' metadata read once)."""

    def __init__(self, store: Path):
        import zarr

        self.store = Path(store)
        group = zarr.open_group(self.store, mode="r", use_consolidated=False)
        self.arrays = [(name, array, tuple(array.metadata.dimension_names or ()))
                       for name, array in sorted(group.arrays())
                       if "rep" in (array.metadata.dimension_names or ())]

    def digest(self, region: dict[str, slice]) -> str:
        """SHA-256 of the files that hold ``region`` (grid dims of size 1, ``rep`` a run of whole
        store chunks; the other dims are one chunk each) of every per-replicate variable."""
        digest = hashlib.sha256()
        for name, array, dims in self.arrays:
            ranges = []
            for dim, size, chunk in zip(dims, array.shape, array.chunks):
                if dim in region:
                    ranges.append(range(region[dim].start // chunk, -(-region[dim].stop // chunk)))
                else:
                    ranges.append(range(-(-size // chunk)))
            files = [self.store / name / array.metadata.encode_chunk_key(c) for c in itertools.product(*ranges)]
            _hash_files(digest, self.store, files)
        return digest.hexdigest()


def metadata_digest(store: Path) -> str:
    """SHA-256 of what a reader sees besides the per-replicate values: the attributes, every
    coordinate, ``truth`` and ``cell_index``, and each variable's dims and dtype (read without
    dask: the same values, and no scheduler to start for a few small arrays)."""
    ds = xr.open_zarr(store, chunks=None)
    record = {
        "attrs": ds.attrs,
        "variables": {name: [list(ds[name].dims), str(ds[name].dtype)] for name in ds.variables},
        "sizes": dict(ds.sizes),
        "values": {name: np.asarray(ds[name].values).tolist()
                   for name in [*ds.coords, "truth", "cell_index"] if name in ds.variables},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def files_digest(store: Path) -> str:
    """SHA-256 of every file of the store, by relative path and content."""
    store = Path(store)
    digest = hashlib.sha256()
    _hash_files(digest, store, sorted(p for p in store.rglob("*") if p.is_file()))
    return digest.hexdigest()


def describe_chunks(chunks: Iterable[tuple[int, int, int]]) -> str:
    return ", ".join(f"cell {cell} replicates {start}-{stop - 1}" for cell, start, stop in sorted(chunks))


def damaged_chunks(run_dir: Path, ledger: Ledger) -> list[tuple[int, int, int]]:
    """The chunks the ledger records whose files no longer hash to the recorded digest."""
    store = Path(run_dir) / RESULTS
    ds = xr.open_zarr(store, chunks=None)
    grid_dims = [d for d in ds["truth"].dims if d != "term"]
    grid_shape = tuple(ds.sizes[d] for d in grid_dims)
    files = ChunkFiles(store)
    return [
        (cell, start, stop) for (cell, start, stop), recorded in sorted(ledger.chunks.items())
        if files.digest(chunk_region(grid_dims, grid_shape, cell, range(start, stop))) != recorded
    ]


def verify_run(run_dir: Path) -> None:
    """Raise :class:`DamagedStore` (one line) unless the run directory's store holds exactly
    what its ledger records: the metadata and every finished chunk (or, for a store written in
    one go, every file)."""
    run_dir = Path(run_dir)
    store = run_dir / RESULTS
    ledger = Ledger.read(run_dir / LEDGER)
    if ledger.whole is not None:
        if files_digest(store) != ledger.whole:
            raise DamagedStore(f"{store}: its files differ from the checksum recorded when it was written")
        return
    if ledger.meta is None:
        raise DamagedStore(f"{store}: {LEDGER} records no checksum of the store: it was not written by this "
                           f"version of clustersim, or its ledger was lost; rerun the study in a new hydra.run.dir")
    if metadata_digest(store) != ledger.meta:
        raise DamagedStore(f"{store}: its attributes, coordinates or truth differ from what the run wrote; "
                           f"rerun the study in a new hydra.run.dir")
    damaged = damaged_chunks(run_dir, ledger)
    if damaged:
        raise DamagedStore(f"{store}: {len(damaged)} damaged chunk(s) ({describe_chunks(damaged)}): their files differ "
                           f"from the checksums in {LEDGER}; rerun the study's command with hydra.run.dir={run_dir} "
                           f"to recompute them")
