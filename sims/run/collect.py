"""Merge the run directories of a Hydra multirun sweep into one results dataset.

    clustersim -m dgp.n_subjects=6,12,24 dgp.var_slope=0,15.3 hydra.sweep.dir=sweeps/s1
    clustersim-collect sweeps/s1 --out sweeps/s1/collected

Each argument is a run directory (holding ``results.zarr``) or a sweep directory whose
subdirectories are. The config keys whose values differ between the runs become dimensions
(named after the key's last segment, as grid factors are); everything else must agree. The
merged ``results.zarr`` and ``summary.csv`` go into ``--out``.

Each job of a sweep is its own study with grid cell 0, so jobs share random numbers (common
random numbers across the sweep), unlike the cells of one ``grid`` study, which have streams
of their own.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import xarray as xr

from analysis.measures import summarise, to_tidy
from analysis.integrity import DamagedStore, verify_run
from analysis.schema import RESULTS, find_runs
from sims.run.dataset import write_results
from sims.run.store import flatten_config
from sims.run.study import RESERVED_DIMS


class CollectError(ValueError):
    pass


def run_dirs(paths: list[Path]) -> list[Path]:
    """The run directories named, or the job directories one level below a sweep directory,
    in job order."""
    found = []
    for path in paths:
        runs = find_runs(path)
        if not runs:
            raise CollectError(f"{path}: neither a run directory nor a sweep directory holding {RESULTS}")
        found.extend(runs)
    return found


def swept_keys(configs: list[dict]) -> list[str]:
    """Flattened config keys whose values differ between runs (runner settings ignored)."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]


def collect(paths: list[Path]) -> xr.Dataset:
    """One dataset with a dimension per swept key."""
    directories = run_dirs(paths)
    for directory in directories:
        try:
            verify_run(directory)
        except DamagedStore as error:
            raise CollectError(str(error)) from None
    datasets = [xr.open_zarr(d / RESULTS) for d in directories]
    configs = [flatten_config(json.loads(ds.attrs["provenance"])) for ds in datasets]
    keys = swept_keys(configs)
    if not keys:
        raise CollectError("the runs do not differ in any config key: nothing to merge along")
    sizes = {ds.sizes["rep"] for ds in datasets}
    if len(sizes) > 1:
        raise CollectError(f"the runs have different numbers of replicates: {sorted(sizes)}")
    dims = [k.rsplit(".", 1)[-1] for k in keys]
    clash = [d for d in dims if d in RESERVED_DIMS or d in datasets[0].dims or dims.count(d) > 1]
    if clash:
        raise CollectError(f"swept keys {keys} would give clashing dimension names {clash}")
    values = [[c.get(k) for k in keys] for c in configs]
    levels = [sorted({v[i] for v in values}, key=str) for i in range(len(keys))]
    if len(set(map(tuple, values))) != len(values) or len(values) != len(list(itertools.product(*levels))):
        raise CollectError(f"the runs do not form a full factorial over {', '.join(keys)}")
    expanded = [
        ds.drop_attrs().expand_dims({dim: [value] for dim, value in zip(dims, v)})
        for ds, v in zip(datasets, values)
    ]
    merged = xr.combine_by_coords(expanded, combine_attrs="drop")
    merged = merged.transpose(*dims, ...)
    merged.attrs.update(datasets[0].attrs)
    merged.attrs.update(
        collected_from=" ".join(str(d) for d in directories),
        grid_keys=" ".join(f"{d}={k}" for d, k in zip(dims, keys)) + " " + datasets[0].attrs.get("grid_keys", ""),
    )
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clustersim-collect", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--out", type=Path, required=True, help="directory for the merged results")
    args = parser.parse_args(argv)
    try:
        merged = collect(args.paths)
    except CollectError as error:
        print(f"clustersim-collect: error: {error}", file=sys.stderr)
        return 2
    merged = merged.chunk({"rep": -1}).load()
    write_results(merged, args.out)
    to_tidy(summarise(merged)).to_csv(args.out / "summary.csv", index=False)
    print(f"merged {len(merged.attrs['collected_from'].split())} runs into {args.out / RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
