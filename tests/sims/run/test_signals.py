"""Ctrl-C and SIGTERM stop a run in one line and keep its finished chunks; no worker process
outlives the main process, however it ends."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import xarray as xr

from estimators.result import Status
from helpers.cli import ALLOW_HELPERS, clustersim_command, env_with_helpers, read_ledger

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")

SLOW = ("n_reps=400", "runner.chunk_size=5", "runner.n_jobs=2", "print_table=false", "report=false",
        "estimators={slow: {_target_: helpers.misbehaving.SlowOLS, pause: 0.1}}", ALLOW_HELPERS)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    found, pending = set(), [pid]
    while pending:
        current = pending.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    for child in map(int, children.read().split()):
                        if child not in found:
                            found.add(child)
                            pending.append(child)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except (FileNotFoundError, ProcessLookupError):
        return False


def survivors(pids: set[int], within: float) -> set[int]:
    deadline = time.time() + within
    while time.time() < deadline:
        left = {pid for pid in pids if alive(pid)}
        if not left:
            return left
        time.sleep(0.2)
    return {pid for pid in pids if alive(pid)}


def start(run_dir, *overrides, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([*clustersim_command(), f"hydra.run.dir={run_dir}", *SLOW, *overrides],
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=env_with_helpers(),
                            start_new_session=True)


def wait_for_chunks(process, run_dir, n: int) -> None:
    deadline = time.time() + 120
    while len(read_ledger(run_dir)) < n and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert len(read_ledger(run_dir)) >= n, "the run should be under way"


def stop_group(process) -> None:
    """Clean up whatever the test left running."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_signal_stops_the_run_in_one_line_and_keeps_finished_chunks(tmp_path, signum):
    process = start(tmp_path, stderr=subprocess.PIPE)
    try:
        wait_for_chunks(process, tmp_path, 2)
        workers = descendants(process.pid)
        assert workers
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # what a terminal's Ctrl-C does: the whole group
        else:
            os.kill(process.pid, signum)  # what a batch system does: the main process
        _, stderr = process.communicate(timeout=60)
    finally:
        stop_group(process)
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr, stderr
    name = signal.Signals(signum).name
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"clustersim: error: interrupted by {name}; finished chunks are saved in "), line
    assert line.endswith(f": rerun the same command to resume, with hydra.run.dir={tmp_path}"), line
    finished = read_ledger(tmp_path)
    assert 2 <= len(finished) < 80
    ds = xr.open_zarr(tmp_path / "results.zarr")
    for _, begin, end in finished:
        assert (ds["status"].isel(rep=slice(begin, end)) == Status.ok).all()
    assert not survivors(workers, within=10)


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_no_worker_outlives_a_main_process_killed_with_sigkill(tmp_path, backend):
    process = start(tmp_path, f"runner.backend={backend}")
    try:
        wait_for_chunks(process, tmp_path, 2)
        workers = descendants(process.pid)
        assert len(workers) >= 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        left = survivors(workers, within=15)
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in left]
    finally:
        stop_group(process)
