"""A fit that kills its process (os.abort, a segfault, the OOM killer) costs only its replicate."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import xarray as xr

from estimators.result import Status
from helpers.cli import clustersim_command, env_with_helpers, read_ledger
from helpers.cli import ALLOW_HELPERS
from helpers.misbehaving import first_outcomes
from sims.api import compose
from sims.run import runner
from sims.run.dataset import build_dataset
from sims.run.study import validate

BASE = ("n_reps=20", "runner.chunk_size=5", "runner.n_jobs=2", ALLOW_HELPERS)
ABORTING = "{{_target_: helpers.misbehaving.DyingOLS, first_outcomes: {}}}"


def numbers(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars("elapsed_s").drop_attrs()


def run(*overrides) -> xr.Dataset:
    study = validate(compose([*BASE, *overrides]))
    return build_dataset(study, runner.run(study))


@pytest.fixture(scope="module")
def undisturbed():
    # The same estimators, none of which aborts; cr2 is batched (fit_batch over the chunk).
    return run(f"estimators={{ols: ols, cr2: ols_cr2, ab: {ABORTING.format([])}}}")


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_an_aborting_fit_costs_only_its_replicate(undisturbed, backend):
    ds = run(f"runner.backend={backend}",
             f"estimators={{ols: ols, cr2: ols_cr2, ab: {ABORTING.format(first_outcomes([7]))}}}")
    status = ds["status"].sel(estimator="ab").values
    assert status[7] == Status.failed
    message = str(ds["message"].sel(estimator="ab", rep=7).values)
    assert message == "worker died (signal 6, SIGABRT) at replicate 7"
    assert np.isnan(ds["estimate"].sel(estimator="ab", rep=7).values).all()
    others = numbers(ds).drop_sel(rep=7)
    xr.testing.assert_identical(others, numbers(undisturbed).drop_sel(rep=7))
    xr.testing.assert_identical(numbers(ds).sel(estimator=["ols", "cr2"]),
                                numbers(undisturbed).sel(estimator=["ols", "cr2"]))


def clustersim(run_dir, *overrides):
    return subprocess.run([*clustersim_command(), f"hydra.run.dir={run_dir}", "print_table=false", "report=false",
                           "runner.progress=false", ALLOW_HELPERS, *overrides],
                          capture_output=True, text=True, timeout=300, env=env_with_helpers())


# SIGABRT by default (what a segfault looks like); a plain exit(3) with -m slow.
@pytest.mark.parametrize("death, cause", [("abort", "signal 6, SIGABRT"),
                                          pytest.param("exit", "exit code 3", marks=pytest.mark.slow)])
def test_a_study_where_rare_replicates_kill_their_worker_finishes(tmp_path, death, cause):
    fatal = [3, 16, 38]
    dying = f"{{_target_: helpers.misbehaving.DyingOLS, death: {death}, first_outcomes: {first_outcomes(fatal)}}}"
    done = clustersim(tmp_path, "n_reps=40", "runner.chunk_size=4", "runner.n_jobs=2",
                      f"estimators={{ols: ols, dies: {dying}}}")
    assert done.returncode == 0, done.stderr
    assert len(read_ledger(tmp_path)) == 10  # every chunk finished, none lost
    ds = xr.open_zarr(tmp_path / "results.zarr").load()
    status = ds["status"].sel(estimator="dies").values
    np.testing.assert_array_equal(np.flatnonzero(status != Status.ok), fatal)
    assert [str(m) for m in ds["message"].sel(estimator="dies").values[fatal]] == [
        f"worker died ({cause}) at replicate {rep}" for rep in fatal]
    assert (ds["status"].sel(estimator="ols") == Status.ok).all()
    assert np.isfinite(ds["estimate"].sel(estimator="ols")).all()


def test_a_one_chunk_study_on_its_forked_worker_loses_only_the_fatal_replicate(tmp_path, undisturbed):
    """20 replicates are one chunk (chunk_size auto), which the command line runs on a worker
    forked from itself rather than on loky's: a fit that kills it costs only its replicate, and
    every other number is that of the API's run in chunks of 5 on loky."""
    done = clustersim(tmp_path, "n_reps=20", "runner.n_jobs=2",
                      f"estimators={{ols: ols, cr2: ols_cr2, ab: {ABORTING.format(first_outcomes([7]))}}}")
    assert done.returncode == 0, done.stderr
    assert read_ledger(tmp_path) == [(0, 0, 20)]
    ds = xr.open_zarr(tmp_path / "results.zarr").load()
    assert str(ds["message"].sel(estimator="ab", rep=7).values) == "worker died (signal 6, SIGABRT) at replicate 7"
    for name in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value", "status"):
        stored, expected = ds[name].drop_sel(rep=7), undisturbed[name].drop_sel(rep=7)
        if "term" in stored.dims:
            expected = expected.sel(term=stored["term"].values)
        np.testing.assert_array_equal(stored.values, expected.values, err_msg=name)


def test_more_fatal_fits_than_the_limit_end_the_run_in_one_line(tmp_path):
    done = clustersim(tmp_path, "n_reps=12", "runner.chunk_size=6", "runner.n_jobs=1", "runner.max_worker_deaths=1",
                      f"estimators={{ab: {ABORTING.format(first_outcomes([1, 2, 3]))}}}")
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("clustersim: error: runner: the run broke off (TooManyWorkerDeaths: 2 fits killed "
                           "their worker process, more than runner.max_worker_deaths=1"), line
    assert "replicate 2: signal 6, SIGABRT" in line


def test_a_pilot_fit_that_kills_its_worker_costs_only_the_pilot(tmp_path):
    """``runner.chunk_size: auto`` times its pilot on a worker: a fit that kills that process
    leaves the main process running, the smallest chunk size, and a study without a failure
    (the pilot's draws are no replicate's)."""
    from sims.api import compose
    from sims.run.chunking import MIN_AUTO, PILOT_CELL
    from sims.run.seeding import data_rng
    from sims.run.study import validate

    cell = validate(compose(["estimators={ols: ols}"])).cells[0]
    pilot_first = float(cell.dgp.generate(data_rng(2024, PILOT_CELL, 0))["y"].iloc[0])
    dying = f"{{_target_: helpers.misbehaving.DyingOLS, first_outcomes: [{pilot_first!r}]}}"
    done = clustersim(tmp_path, "n_reps=60", "seed=2024", "runner.chunk_size=auto", "runner.n_jobs=1",
                      f"estimators={{dies: {dying}}}")
    assert done.returncode == 0, done.stderr
    ds = xr.open_zarr(tmp_path / "results.zarr")
    assert int(ds.attrs["rep_chunk"]) == MIN_AUTO
    assert (ds["status"].values == Status.ok).all()
