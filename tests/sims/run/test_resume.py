"""Studies that survive: kill -9 and resume, provenance guard, growing n_reps."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import xarray as xr

from helpers.cli import ALLOW_HELPERS, clustersim_command, env_with_helpers, read_ledger

SLOW = "estimators={ols: ols, slow: {_target_: helpers.misbehaving.SlowOLS, pause: 0.05}}"
COMMON = ("n_reps=40", "runner.chunk_size=5", "runner.n_jobs=1", "print_table=false", "report=false", ALLOW_HELPERS)


def run(run_dir, *overrides, check=True):
    done = subprocess.run([*clustersim_command(), f"hydra.run.dir={run_dir}", *overrides],
                          capture_output=True, text=True, timeout=600, env=env_with_helpers())
    if check:
        assert done.returncode == 0, done.stderr
    return done


def numbers(run_dir) -> xr.Dataset:
    ds = xr.open_zarr(Path(run_dir) / "results.zarr").load()
    return ds.drop_vars("elapsed_s").drop_attrs()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    run(run_dir, SLOW, *COMMON)
    return run_dir


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    process = subprocess.Popen([*clustersim_command(), f"hydra.run.dir={tmp_path}", SLOW, *COMMON],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env_with_helpers(), start_new_session=True)
    deadline = time.time() + 120
    while len(read_ledger(tmp_path)) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = read_ledger(tmp_path)
    assert 3 <= len(finished) < 8, "the kill should land mid-study"
    run(tmp_path, SLOW, *COMMON)
    after = read_ledger(tmp_path)
    assert len(after) == 8 and set(finished) <= set(after)  # nothing redone that was done
    xr.testing.assert_identical(numbers(tmp_path), numbers(uninterrupted))


def test_rerunning_a_finished_study_does_no_work(tmp_path):
    run(tmp_path, "n_reps=10", "estimators={ols: ols}", "print_table=false", "report=false")
    ledger = (tmp_path / "results.progress").read_text()
    stamp = (tmp_path / "results.zarr" / "estimate" / "zarr.json").stat().st_mtime_ns
    run(tmp_path, "n_reps=10", "estimators={ols: ols}", "print_table=false", "report=false")
    assert (tmp_path / "results.progress").read_text() == ledger
    assert (tmp_path / "results.zarr" / "estimate" / "zarr.json").stat().st_mtime_ns == stamp


def test_raising_n_reps_runs_only_the_new_replicates(tmp_path, uninterrupted):
    base = ("runner.chunk_size=5", "runner.n_jobs=1", "print_table=false", "report=false", SLOW, ALLOW_HELPERS)
    run(tmp_path, "n_reps=17", *base)
    first = read_ledger(tmp_path)
    run(tmp_path, "n_reps=40", *base)
    new = read_ledger(tmp_path)[len(first):]
    # the old partial chunk 15-17 is redone as 15-20; everything before 15 is kept
    assert min(start for _, start, _ in new) == 15
    xr.testing.assert_identical(numbers(tmp_path), numbers(uninterrupted))


def test_changed_config_refuses_to_resume_and_names_the_keys(tmp_path):
    run(tmp_path, "n_reps=5", "estimators={ols: ols}", "print_table=false", "report=false")
    done = run(tmp_path, "n_reps=5", "estimators={ols: ols}", "dgp.slope=0", "alpha=0.1", check=False)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("clustersim: error: alpha") and "alpha, dgp.slope" in line


def test_fewer_reps_than_stored_is_refused(tmp_path):
    run(tmp_path, "n_reps=5", "estimators={ols: ols}", "print_table=false", "report=false")
    done = run(tmp_path, "n_reps=3", "estimators={ols: ols}", check=False)
    assert done.returncode == 2 and done.stderr.startswith("clustersim: error: n_reps")


def test_two_runs_started_at_once_leave_one_writer_and_a_store_that_resumes(tmp_path, uninterrupted):
    command = [*clustersim_command(), f"hydra.run.dir={tmp_path}", SLOW, *COMMON]
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env=env_with_helpers()) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=600), p.stderr.read()) for p in processes)
    (ok, _), (refused, message) = outcomes
    assert ok == 0 and refused != 0
    assert "Traceback" not in message and re.search(r"in use by another clustersim run \(pid \d+", message)
    assert len(message.strip().splitlines()) == 1, message
    assert sorted(read_ledger(tmp_path)) == sorted(set(read_ledger(tmp_path)))  # no chunk run twice
    xr.testing.assert_identical(numbers(tmp_path), numbers(uninterrupted))
    run(tmp_path, SLOW, *COMMON)  # and it resumes
