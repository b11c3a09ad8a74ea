"""Whatever a user can cause ends in one line on stderr (``clustersim: error: ...``) and a
non-zero exit, never a traceback: an interrupt, a full disk, a run directory that cannot be one,
a dangling interpolation, a YAML syntax error, a launcher or a scheduler that is not there.
Advice after a failure names the run directory to resume in, also when Hydra chose it."""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import ALLOW_HELPERS, clustersim_command, env_with_helpers, main_in_process, read_ledger
from sims.run.errors import DEBUG_ENV

QUICK = ("n_reps=4", "estimators={ols: ols}", "runner.n_jobs=1", "print_table=false", "report=false")
SLOW = "estimators={ols: ols, slow: {_target_: helpers.misbehaving.SlowOLS, pause: 0.05}}"


def assert_one_line(stderr: str, stdout: str = "") -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("clustersim: error: "), lines[0]
    assert "Traceback" not in stderr + stdout
    return lines[0]


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """The command in-process; (exit code, its one line on stderr)."""
    code, err, out = main_in_process(monkeypatch, capsys, *args)
    return code, assert_one_line("\n".join(err), out)


def command(*args, cwd=None, preexec_fn=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*clustersim_command(), *args], capture_output=True, text=True, cwd=cwd,
                          preexec_fn=preexec_fn, env=env or env_with_helpers(), timeout=timeout)


def test_ctrl_c_names_the_run_directory_hydra_chose(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, once chunks are in."""
    process = subprocess.Popen([*clustersim_command(), SLOW, ALLOW_HELPERS, "n_reps=400", "runner.chunk_size=5",
                                "runner.n_jobs=2", "print_table=false", "report=false"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env_with_helpers(), start_new_session=True)
    deadline = time.time() + 120
    ledgers = []
    while not any(read_ledger(p.parent) for p in ledgers) and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
        ledgers = list(tmp_path.glob("outputs/*/*/results.progress"))
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    line = assert_one_line(stderr, stdout)
    run_dir = ledgers[0].parent.relative_to(tmp_path)
    assert line.startswith("clustersim: error: interrupted")
    # the same command would make a new directory: the advice adds the one with the results
    assert line.endswith(f": to resume, rerun the command with hydra.run.dir={run_dir} added"), line


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_stops_in_one_line_and_says_how_to_resume(tmp_path):
    """A file-size limit below one store chunk (4 estimators x 1000 replicates x 2 terms of
    float64 is 64 kB) makes the first chunk's write fail, as a full disk would."""
    done = command(f"hydra.run.dir={tmp_path}", "n_reps=2000", "runner.chunk_size=1000", "runner.n_jobs=1",
                   "print_table=false", "report=false", preexec_fn=_file_size_limit(40_000))
    assert done.returncode == 1
    line = assert_one_line(done.stderr, done.stdout)
    assert "File too large" in line and "free some space" in line
    assert f"hydra.run.dir={tmp_path}" in line and "rerun the same command to resume" in line
    assert "Traceback" in (tmp_path / "clustersim.log").read_text()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_log_on_a_full_disk_stops_in_one_line(tmp_path, monkeypatch, capsys):
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path}", *QUICK,
                          "hydra.job_logging.handlers.file.filename=/dev/full")
    assert code == 1 and "No space left on device" in line and f"hydra.run.dir={tmp_path}" in line


def _file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way\n")


UNUSABLE_RUN_DIRS = {
    "run dir is a file": (lambda d: _file(d), "", "File exists"),
    "parent is a file": (lambda d: _file(d), "sub", "Not a directory"),
    "results.zarr is a file": (lambda d: _file(d / "results.zarr"), "", "results.zarr is a file"),
    "results.progress is a directory": (lambda d: (d / "results.progress").mkdir(parents=True), "", "results.progress is not a file"),
    "the log is a directory": (lambda d: (d / "clustersim.log").mkdir(parents=True), "", "clustersim.log: Is a directory"),
}


@pytest.mark.parametrize("make, below, problem", UNUSABLE_RUN_DIRS.values(), ids=UNUSABLE_RUN_DIRS)
def test_an_unusable_run_directory_is_named_in_one_line(tmp_path, monkeypatch, capsys, make, below, problem):
    run_dir = tmp_path / "run"
    make(run_dir)
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={run_dir / below if below else run_dir}", *QUICK)
    assert code == 2
    assert line.startswith("clustersim: error: hydra.run.dir: ") and problem in line, line


@pytest.mark.parametrize("override, key", [
    ("dgp.slope=${nosuch}", "dgp.slope"),
    ("seed=${nosuch}", "seed"),
    ("hydra.run.dir=${nosuch}/run", "hydra.run.dir"),
])
def test_a_dangling_interpolation_is_named_in_one_line(tmp_path, monkeypatch, capsys, override, key):
    monkeypatch.chdir(tmp_path)
    args = [override, *QUICK] if override.startswith("hydra.") else [f"hydra.run.dir={tmp_path}", override, *QUICK]
    code, line = run_main(monkeypatch, capsys, *args)
    assert code == 2 and line.startswith(f"clustersim: error: {key}: ") and "nosuch" in line, line


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "broken.yaml").write_text("# @package _global_\nn_reps: [7\nseed: 3\n")
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                          "experiment=broken", *QUICK)
    assert code == 2 and "broken.yaml:3:5: YAML syntax error" in line, line


def test_a_missing_srun_stops_a_slurm_sweep_in_one_line(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    empty = tmp_path / "bin"  # a PATH without srun, whatever this machine has installed
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "sims.run.cli", "-m", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}",
                           "dgp.n_subjects=6,12", *QUICK], capture_output=True, text=True, timeout=300,
                          env={**env_with_helpers(), "PATH": str(empty)})
    assert done.returncode != 0
    assert "srun" in assert_one_line(done.stderr, done.stdout)


def test_an_unreachable_scheduler_stops_in_one_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**env_with_helpers(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    done = command(f"hydra.run.dir={tmp_path}", "runner=dask", f"runner.address=tcp://127.0.0.1:{port}", *QUICK[:2],
                   "print_table=false", "report=false", env=env)
    assert done.returncode == 2  # a setting to correct: no chunk ran
    line = assert_one_line(done.stderr, done.stdout)
    assert line == (f"clustersim: error: runner.address: cannot reach a dask scheduler at tcp://127.0.0.1:{port} "
                    f"(Timed out trying to connect to tcp://127.0.0.1:{port} after 2 s); start one, or fix runner.address")


def test_debug_shows_the_traceback_before_the_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DEBUG_ENV, "0")  # restored after the test; --debug sets it to 1
    code, err, _ = main_in_process(monkeypatch, capsys, "--debug", f"hydra.run.dir={tmp_path}", "dgp.slope=${nosuch}", *QUICK)
    assert code == 2 and "Traceback (most recent call last):" in err
    assert err[-1].startswith("clustersim: error: dgp.slope: ")
