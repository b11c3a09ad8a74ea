"""kill -9 at random moments, over and over, then a dataset equal to an uninterrupted run's.

The kills land in every phase of a run: start-up and store creation, chunks, the growth of
``n_reps`` (each round asks for more replicates than the last), the summary and the report.
Slow (2 to 5 minutes): ``python3 -m pytest -m slow tests/sims/run/test_kill_soak.py``.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
import xarray as xr

from analysis.integrity import verify_run
from helpers.cli import ALLOW_HELPERS, clustersim_command, env_with_helpers

KILLS = 24
STUDY = ("estimators={ols: ols, slow: {_target_: helpers.misbehaving.SlowOLS, pause: 0.01}}",
         "runner.chunk_size=5", "runner.n_jobs=2", "print_table=false", ALLOW_HELPERS)


def start(run_dir, n_reps: int) -> subprocess.Popen:
    return subprocess.Popen([*clustersim_command(), f"hydra.run.dir={run_dir}", f"n_reps={n_reps}", *STUDY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env_with_helpers(), start_new_session=True)


def numbers(run_dir) -> xr.Dataset:
    return xr.open_zarr(run_dir / "results.zarr").load().drop_vars("elapsed_s").drop_attrs()


@pytest.mark.slow
def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path):
    rng = random.Random(20210415)
    n_reps = [10 + 5 * (k // 3) for k in range(KILLS)]  # grows every third round
    for k, reps in enumerate(n_reps):
        process = start(tmp_path / "soak", reps)
        time.sleep(rng.uniform(0.0, 6.0))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stderr = process.stderr.read()
        assert "Traceback" not in stderr, f"round {k}: {stderr}"
    final = start(tmp_path / "soak", n_reps[-1])
    assert final.wait(timeout=600) == 0, final.stderr.read()
    verify_run(tmp_path / "soak")
    reference = start(tmp_path / "reference", n_reps[-1])
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    xr.testing.assert_identical(numbers(tmp_path / "soak"), numbers(tmp_path / "reference"))
