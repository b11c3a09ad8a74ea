"""Replay one replicate of a finished (or interrupted) study: regenerate its data exactly and
refit estimators on it, for debugging a failure.

    clustersim-replay DIR --rep 17 [--cell n_subjects=12] [--estimator lmm_rs] [--save-data rep17.csv]

The study is rebuilt from the config stored in ``DIR/results.zarr``; replicate ``rep`` of a
cell is drawn from ``SeedSequence(seed, spawn_key=(cell_index, rep))`` as in the run, so the
refit reproduces the stored numbers bit for bit (the command says whether it does).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from omegaconf import OmegaConf

from analysis.schema import PER_TERM
from estimators import bounded_yaml
from estimators.result import Status
from estimators.presets import ConfigError
from sims.run.runner import fit_one
from sims.run.seeding import data_rng, estimator_rng
from sims.run.store import differing_keys, provenance, provenance_hash
from analysis.schema import RESULTS
from sims.run.study import Study, validate


def _parse_cell(items: list[str], study: Study) -> dict:
    coords = {}
    for item in items:
        dim, equals, text = item.partition("=")
        if not equals or dim not in study.grid:
            raise ConfigError("--cell", f"{item!r} is not <grid factor>=<value> (grid factors: {', '.join(study.grid) or 'none'})")
        matches = [v for v in study.grid[dim] if str(v) == text]
        if not matches:
            raise ConfigError(f"--cell {dim}", f"{text!r} is not one of {study.grid[dim]}")
        coords[dim] = matches[0]
    missing = [d for d in study.grid if d not in coords]
    if missing:
        raise ConfigError("--cell", f"give a value for every grid factor (missing: {', '.join(missing)})")
    return coords


def replay(run_dir: Path, rep: int, cell: list[str] = (), estimators: list[str] = ()) -> tuple[pd.DataFrame, dict]:
    """The replicate's data and, per estimator, (refitted result frame, stored frame, status)."""
    stored = xr.open_zarr(Path(run_dir) / RESULTS)
    # The stored config is YAML text anyone may have handed over with the store.
    bounded_yaml.check_text(stored.attrs["config"], f"{Path(run_dir) / RESULTS} (attribute config)")
    study = validate(OmegaConf.create(stored.attrs["config"]))
    record = provenance(study)
    if stored.attrs.get("provenance_hash") != provenance_hash(record):
        # The config is the stored one, so what differs is an input the DGP reads (a pilot file).
        keys = differing_keys(json.loads(stored.attrs.get("provenance", "{}")), record)
        raise ConfigError(keys[0] if keys else "config",
                          f"differs from what the run used (differing keys: {', '.join(keys) or 'unknown'}): a DGP "
                          "input such as a pilot data file changed since, so the replicate cannot be regenerated")
    if not 0 <= rep < stored.sizes["rep"]:
        raise ConfigError("--rep", f"must be in 0..{stored.sizes['rep'] - 1}, got {rep}")
    coords = _parse_cell(list(cell), study)
    index = next(c.index for c in study.cells if c.coords == coords)
    target = study.cells[index]
    names = list(estimators) or study.estimator_names
    for name in names:
        if name not in target.estimators:
            raise ConfigError("--estimator", f"{name!r} is not in the study (estimators: {', '.join(study.estimator_names)})")
    data = target.dgp.generate(data_rng(study.seed, index, rep))
    here = stored.sel(coords).sel(rep=rep)
    out = {}
    for name in names:
        result, _ = fit_one(target.estimators[name], data, estimator_rng(study.seed, index, rep, name),
                             study.timeouts.get(name))
        saved = here.sel(estimator=name)
        saved_frame = pd.DataFrame({v: saved[v].values for v in PER_TERM}, index=saved["term"].values)
        out[name] = (result, saved_frame.dropna(how="all"), Status(int(saved["status"].values)))
    return data, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clustersim-replay", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rep", type=int, required=True, help="replicate index")
    parser.add_argument("--cell", nargs="*", default=[], metavar="FACTOR=VALUE", help="the grid cell")
    parser.add_argument("--estimator", action="append", default=[], help="estimator(s) to refit (default: all)")
    parser.add_argument("--save-data", type=Path, help="write the replicate's data to this CSV file")
    args = parser.parse_args(argv)
    if not (args.run_dir / RESULTS).is_dir():
        print(f"clustersim-replay: error: run_dir: no {RESULTS} in {args.run_dir}", file=sys.stderr)
        return 2
    try:
        data, fits = replay(args.run_dir, args.rep, args.cell, args.estimator)
    except (ConfigError, bounded_yaml.YAMLLimitError) as error:
        print(f"clustersim-replay: error: {error}", file=sys.stderr)
        return 2
    if args.save_data:
        data.to_csv(args.save_data, index=False)
        print(f"data of replicate {args.rep}: {args.save_data} ({len(data)} rows)")
    for name, (result, saved, status) in fits.items():
        frame = result.to_frame().set_index("term")
        same = frame.shape == saved.shape and np.array_equal(frame.to_numpy(), saved.to_numpy(), equal_nan=True)
        print(f"\n{name}: status {result.status.name} (stored: {status.name}) {result.message}")
        print(frame.to_string())
        print("matches the stored result bit for bit" if same else f"stored result:\n{saved.to_string()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
