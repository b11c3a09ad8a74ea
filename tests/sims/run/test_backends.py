"""The dask backend gives the local runner's bits; a hanging fit times out alone."""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from estimators.result import Status
from helpers.cli import env_with_helpers
from sims.api import run_study
from sims.run.seeding import data_rng
from sims.api import compose
from sims.run.rundir import run_in_directory
from sims.run.runner import release_workers
from sims.run.study import validate
from helpers.cli import ALLOW_HELPERS
from sims.run.runner import DASK_LOG_LEVELS

STUDY = ("n_reps=24", "runner.chunk_size=5", "grid.dgp.n_subjects=[6,12]",
         "estimators={ols: ols, cr2: ols_cr2, ri: mixedlm_ri}")


def test_dask_local_cluster_equals_loky_bit_for_bit(caplog):
    loky = run_study([*STUDY, "runner.backend=loky", "runner.n_jobs=2"])
    caplog.set_level(logging.DEBUG)
    dask = run_study([*STUDY, "runner.backend=dask", "runner.n_jobs=2"])
    xr.testing.assert_identical(loky.drop_vars("elapsed_s").drop_attrs(), dask.drop_vars("elapsed_s").drop_attrs())
    # and quietly: none of distributed's INFO lines about workers, connections and dashboards
    chatter = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in DASK_LOG_LEVELS
               and r.levelno < DASK_LOG_LEVELS[r.name.split(".")[0]]]
    assert not chatter, chatter[:5]


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


def test_a_slow_fit_times_out_on_dask():
    """dask runs tasks in a worker thread, where SIGALRM cannot reach; the fits run in the
    worker's sandbox process instead, in its main thread."""
    slow = "{_target_: helpers.misbehaving.SlowOLS, pause: 2, timeout_s: 0.5}"
    ds = run_study(["n_reps=4", "runner.chunk_size=2", "runner.backend=dask", "runner.n_jobs=2",
                    f"estimators={{ols: ols, slow: {slow}}}", ALLOW_HELPERS])
    assert (ds["status"].sel(estimator="slow") == Status.timeout).all()
    assert (ds["status"].sel(estimator="ols") == Status.ok).all()
    assert (ds["elapsed_s"].sel(estimator="slow") < 1.5).all()


@pytest.mark.parametrize("in_thread", [False, True], ids=["main_thread", "other_thread"])
def test_a_hanging_estimator_does_not_hang_validation(in_thread):
    """The trial fit before the study keeps the estimator's timeout_s (SIGALRM in the main
    thread; elsewhere a helper thread it stops waiting for)."""
    config = compose(["n_reps=2", "estimators={ols: ols, stuck: {_target_: helpers.misbehaving.SlowOLS, "
                                  "pause: 60, timeout_s: 0.5}}", ALLOW_HELPERS])
    start = time.perf_counter()
    if in_thread:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            study = pool.submit(validate, config).result(timeout=30)
    else:
        study = validate(config)
    assert time.perf_counter() - start < 10
    assert study.timeouts == {"stuck": 0.5} and study.terms == ["Intercept", "X"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_cluster():
    """A real dask scheduler and two ``dask worker --nthreads 1`` processes on loopback:
    yields (address, worker processes)."""
    from dask.distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_with_helpers(), start_new_session=True)
    processes = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  **common)]
    try:
        workers = [subprocess.Popen(["dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                     "--host", "127.0.0.1", "--name", f"w{i}"], **common) for i in range(2)]
        processes += workers
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_real_dask_cluster_that_loses_a_worker_gives_the_local_bits(dask_cluster):
    address, workers = dask_cluster
    study = ["n_reps=40", "runner.chunk_size=4", "grid.dgp.n_subjects=[6,12]",
             "estimators={ols: ols, cr2: ols_cr2, slow: {_target_: helpers.misbehaving.SlowOLS, pause: 0.05}}",
             ALLOW_HELPERS]
    arrived = []

    def kill_a_worker_after_the_first_chunk(chunk):
        arrived.append(chunk)
        if len(arrived) == 1:
            workers[0].kill()

    remote = run_study([*study, "runner.backend=dask", f"runner.address={address}"],
                       progress=kill_a_worker_after_the_first_chunk)
    assert workers[0].wait(timeout=10) == -signal.SIGKILL and len(arrived) == 20
    local = run_study([*study, "runner.backend=loky", "runner.n_jobs=2"])
    xr.testing.assert_identical(remote.drop_vars("elapsed_s").drop_attrs(), local.drop_vars("elapsed_s").drop_attrs())


def loky_worker_pids() -> list[int]:
    """This process's children that are loky worker processes (Linux /proc)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile (loky's, once its workers are gone)
            continue
        for child in children:
            cmdline = Path(f"/proc/{child}/cmdline")
            if cmdline.exists() and b"popen_loky" in cmdline.read_bytes():
                pids.append(int(child))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_workers_are_released_after_the_chunks(tmp_path):
    """The command line stops the loky workers before summarising, so they do not idle with
    their memory through the summary and the report; it does not wait for them to exit, which
    they do within moments."""
    study = validate(compose(["n_reps=8", "runner.chunk_size=2", "runner.n_jobs=2", "estimators={ols: ols}"]))
    run_in_directory(study, tmp_path)
    assert loky_worker_pids()
    release_workers(study)
    deadline = time.monotonic() + 5
    while loky_worker_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not loky_worker_pids()
