"""The summary and report of a finished study, kept for a re-run that changes nothing.

Running ``clustersim`` again on a finished study computes no chunk, yet recomputing the summary
and drawing the report cost seconds. They are a function of the store, the config and the code
alone, so after writing them the run records a key of those inputs and the SHA-256 of each
output in ``outputs.json``; a later run whose key is the same and whose outputs are still
there, unmodified, prints the kept table instead of recomputing.

The key hashes the ledger's bytes (every chunk finished, every growth and the checksums of the
store: a recomputed damaged chunk adds a line, so the store cannot change without the key), the
resolved config (``print_table``, ``report`` and the alpha of the summary included), the source of
the ``sims``, ``estimators`` and ``analysis`` packages, and the versions of the libraries the
summary runs on. Anything else refits nothing but recomputes the summary, as before.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from analysis.integrity import LEDGER

KEPT = "outputs.json"
TABLE = "summary.txt"
PACKAGES = ("sims", "estimators", "analysis")
LIBRARIES = ("numpy", "pandas", "xarray", "dask", "zarr", "matplotlib", "scipy")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _code_digest() -> str:
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\x00" + path.read_bytes())
    for library in LIBRARIES:
        digest.update(f"{library}={metadata.version(library)}\x00".encode())
    return digest.hexdigest()


def inputs_key(cfg: DictConfig, run_dir: Path) -> str | None:
    """The key of what the summary and report are computed from (module docstring); None
    without a ledger (nothing then is kept)."""
    ledger = Path(run_dir) / LEDGER
    if not ledger.is_file():
        return None
    digest = hashlib.sha256()
    digest.update(ledger.read_bytes())
    digest.update(OmegaConf.to_yaml(cfg, resolve=True).encode())
    digest.update(_code_digest().encode())
    return digest.hexdigest()


def kept_table(run_dir: Path, key: str | None, outputs: list[str]) -> str | None:
    """The printed table of the run that wrote ``outputs`` (and the table) from inputs with this
    key, when all of them are still there unmodified; else None."""
    run_dir = Path(run_dir)
    if key is None:
        return None
    try:
        record = json.loads((run_dir / KEPT).read_text())
        if record.get("key") != key or sorted(record["outputs"]) != sorted([*outputs, TABLE]):
            return None
        if any(_sha256(run_dir / name) != sha for name, sha in record["outputs"].items()):
            return None
        return (run_dir / TABLE).read_text()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def forget(run_dir: Path) -> None:
    """Drop the record before the outputs are rewritten (a run stopped while writing them then
    leaves no record at all)."""
    (Path(run_dir) / KEPT).unlink(missing_ok=True)


def keep(run_dir: Path, key: str | None, table: str, outputs: list[str]) -> None:
    """Record the outputs just written (and the table) under ``key``, each file replaced
    atomically, the record last; nothing without a key or when an output is missing."""
    run_dir = Path(run_dir)
    if key is None or not all((run_dir / name).is_file() for name in outputs):
        return
    _write_atomic(run_dir / TABLE, table)
    record = {"key": key, "outputs": {name: _sha256(run_dir / name) for name in [*outputs, TABLE]}}
    _write_atomic(run_dir / KEPT, json.dumps(record, indent=1))


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)
