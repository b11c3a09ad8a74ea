"""The dask backend gives the local runner's bits; a hanging fit times out alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from estimators.result import Status
from sims.api import run_study
from sims.run.seeding import data_rng
from sims.api import compose
from sims.run.rundir import run_in_directory
from sims.run.runner import release_workers
from sims.run.study import validate
from helpers.cli import ALLOW_HELPERS

STUDY = ("n_reps=24", "runner.chunk_size=5", "grid.dgp.n_subjects=[6,12]",
         "estimators={ols: ols, cr2: ols_cr2, ri: mixedlm_ri}")


def test_dask_local_cluster_equals_loky_bit_for_bit():
    loky = run_study([*STUDY, "runner.backend=loky", "runner.n_jobs=2"])
    dask = run_study([*STUDY, "runner.backend=dask", "runner.n_jobs=2"])
    xr.testing.assert_identical(loky.drop_vars("elapsed_s").drop_attrs(), dask.drop_vars("elapsed_s").drop_attrs())


def test_a_hanging_fit_times_out_and_leaves_the_others_intact():
    overrides = ["n_reps=12", "runner.chunk_size=4", "runner.n_jobs=2"]
    study = validate(compose(overrides))
    y0 = np.array([study.cells[0].dgp.generate(data_rng(study.seed, 0, r))["y"].iloc[0] - 800 for r in range(12)])
    threshold = float(np.sort(y0)[-3])  # the two largest first outcomes hang
    slow = f"{{_target_: helpers.misbehaving.SlowOLS, hang: 30, threshold: {threshold!r}, timeout_s: 0.5}}"
    ds = run_study([*overrides, f"estimators={{ols: ols, slow: {slow}}}", ALLOW_HELPERS])
    hung = y0 > threshold
    status = ds["status"].sel(estimator="slow").values
    np.testing.assert_array_equal(status == Status.timeout, hung)
    assert (status[~hung] == Status.ok).all()
    assert all("time-out" in m for m in ds["message"].sel(estimator="slow").values[hung])
    np.testing.assert_array_equal(ds["estimate"].sel(estimator="slow").values[~hung],
                                  ds["estimate"].sel(estimator="ols").values[~hung])
    assert np.isnan(ds["estimate"].sel(estimator="slow").values[hung]).all()
    assert (ds["elapsed_s"].sel(estimator="slow").values < 5).all()


def loky_worker_pids() -> list[int]:
    """This process's children that are loky worker processes (Linux /proc)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline")
            if cmdline.exists() and b"popen_loky" in cmdline.read_bytes():
                pids.append(int(child))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_workers_are_released_after_the_chunks(tmp_path):
    """The command line stops the loky workers before summarising, so they do not idle with
    their memory through the summary and the report."""
    study = validate(compose(["n_reps=8", "runner.chunk_size=2", "runner.n_jobs=2", "estimators={ols: ols}"]))
    run_in_directory(study, tmp_path)
    assert loky_worker_pids()
    release_workers(study)
    assert not loky_worker_pids()
