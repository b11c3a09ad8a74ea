"""How a run that stops says why: one line on stderr (``clustersim: error: ...``) and an exit
code, whatever stopped it; the traceback goes to the run's log file (``clustersim.log``), and
to stderr as well with ``--debug`` or ``CLUSTERSIM_DEBUG=1``.

Exit codes: 2 for input the user can correct (a config, an override, a run directory that
cannot be one, a damaged store), 1 for a run that broke off (too many dead workers, a full
disk, no memory, a bug), 128 + the signal's number for a run stopped by a signal (130 for
Ctrl-C, 143 for SIGTERM). After a run broke off, the advice names the run directory to
resume in, also when Hydra chose it (``outputs/<date>/<time>``).
"""
from __future__ import annotations

import _thread
import contextlib
import errno
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from analysis.integrity import DamagedStore
from analysis.schema import RESULTS
from estimators.bounded_yaml import YAMLLimitError
from estimators.presets import ConfigError
from sims.run.rundir import RunBrokeOff, RunInterrupted
from sims.run.sandbox import INTERRUPT_THREAD

DEBUG_ENV = "CLUSTERSIM_DEBUG"
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
# Errors of the disk (rather than of a path): the run can resume once they are mended.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# Errors of a path the user chose (the run directory or a file in it).
BAD_PATH = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT}


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        pass
    return shlex.quote(str(path))


def run_dir_given(args: list[str] | None = None) -> bool:
    """Whether the command line (``sys.argv`` by default) names the run directory."""
    args = sys.argv[1:] if args is None else args
    return any(a.lstrip("+").startswith("hydra.run.dir=") for a in args)


def resume_advice(run_dir: Path | None) -> str:
    """How to go on where the run stopped, when it stored anything: the same command resumes
    only when it names the run directory (otherwise Hydra makes a new one)."""
    if run_dir is None or not (Path(run_dir) / RESULTS).is_dir():
        return ""
    saved = f"; finished chunks are saved in {shown(Path(run_dir) / RESULTS)}"
    if run_dir_given():
        return f"{saved}: rerun the same command to resume, with hydra.run.dir={shown(run_dir)}"
    return f"{saved}: to resume, rerun the command with hydra.run.dir={shown(run_dir)} added"


def _chain(error: BaseException):
    """The error and its causes (``raise ... from cause``), outermost first; not the errors it
    was raised while handling, which may be unrelated."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__


def _first(error: BaseException, kind):
    return next((e for e in _chain(error) if isinstance(e, kind)), None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or _first_line(error)
    if mark is None:
        return f"YAML error: {problem}"
    context = getattr(error, "context", None)
    return f"{mark.name}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {problem}" + (f" ({context})" if context else "")


def _inside(path, directory) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(directory).resolve())
    except (OSError, ValueError):
        return False


def _os_problem(error: OSError, run_dir: Path | None) -> tuple[str, int] | None:
    """A file-system error as one line with advice, or None for an OSError of another kind (a
    connection refused, which the runner reports as such)."""
    if error.errno not in NO_SPACE | BAD_PATH:
        return None
    where = error.filename or run_dir
    text = f"{shown(where)}: {error.strerror}" if where else error.strerror or _first_line(error)
    if error.errno in NO_SPACE:
        again = resume_advice(run_dir) or (f"; rerun the same command with hydra.run.dir={shown(run_dir)}" if run_dir else "")
        return f"cannot write {text}; free some space (or raise the file-size limit){again}", 1
    if where and run_dir and (_inside(where, run_dir) or _inside(run_dir, where)):
        return f"hydra.run.dir: cannot use {text}; choose another hydra.run.dir or move the file out of the way", 2
    return text, 2


def describe(error: BaseException, run_dir: Path | None = None) -> tuple[str, int]:
    """(one-line message, exit code) for an error that stopped a run in ``run_dir``."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by SIGINT" + resume_advice(run_dir), INTERRUPTED
    if isinstance(error, RunInterrupted):
        return f"interrupted by {error.signame}" + resume_advice(run_dir), 128 + error.signum
    if isinstance(error, (ConfigError, YAMLLimitError, DamagedStore)):
        return str(error), 2
    os_error = _first(error, OSError)
    if os_error is not None and (problem := _os_problem(os_error, run_dir)) is not None:
        return problem
    if isinstance(error, RunBrokeOff):
        return f"runner: the run broke off ({error})" + resume_advice(run_dir), 1
    yaml_error = _first(error, yaml.YAMLError)
    if yaml_error is not None:
        return _yaml_problem(yaml_error), 2
    omegaconf_error = _first(error, OmegaConfBaseException)
    if omegaconf_error is not None:
        key = getattr(omegaconf_error, "full_key", "") or ""
        return (f"{key}: " if key else "") + _first_line(omegaconf_error), 2
    if isinstance(error, HydraException):
        return _first_line(error), 2
    if _first(error, MemoryError) is not None:
        return ("out of memory: lower n_reps, runner.chunk_size or runner.n_jobs" + resume_advice(run_dir)), 1
    where = f"the traceback is in {shown(Path(run_dir) / 'clustersim.log')}" if run_dir else "--debug shows the traceback"
    return f"{type(error).__name__}: {_first_line(error)} ({where})" + resume_advice(run_dir), 1


def log_traceback(error: BaseException, message: str) -> None:
    """Append the message and the traceback (none for bad input) to the run's log file(s), and to
    nothing else (the console handlers, or Python's last-resort handler on stderr, would print it)."""
    exc_info = None if isinstance(error, ConfigError) else (type(error), error, error.__traceback__)
    record = logging.LogRecord("clustersim", logging.ERROR, __file__, 0, "stopped: %s", (message,), exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                handler.handle(record)
            except Exception:  # the log is on the full disk too: the line on stderr still goes out
                pass


def stop(error: BaseException, run_dir: Path | None) -> None:
    """Report ``error`` in one line on stderr and exit."""
    if isinstance(error, KeyboardInterrupt):
        # A second Ctrl-C while shutting down kills the process quietly, without a traceback.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    message, code = describe(error, run_dir)
    log_traceback(error, message)
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    print(f"clustersim: error: {message}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(code)


@contextlib.contextmanager
def interrupts_in_main_only():
    """Ctrl-C stops the main process only. A terminal sends SIGINT to every process of the
    job, and a worker process caught between two chunks prints a traceback of its own; with
    SIGINT blocked here, the workers started in the block inherit the mask and never see it,
    a thread of this process waits for it and interrupts the main thread, which then stops
    the workers as it unwinds. A second Ctrl-C exits at once."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "sigtimedwait"):
        yield
        return
    # Python's multiprocessing resource tracker (which loky and dask use) unblocks SIGINT in the
    # thread that starts it (Python <= 3.12), so it is started before the mask is set.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    stop_waiting = threading.Event()

    def forward() -> None:
        interrupted = False
        while not stop_waiting.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.1) is None:
                continue
            if interrupted:
                os._exit(INTERRUPTED)
            interrupted = True
            _thread.interrupt_main()

    waiter = threading.Thread(target=forward, name=INTERRUPT_THREAD, daemon=True)
    waiter.start()
    try:
        yield
    finally:
        stop_waiting.set()
        waiter.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class DropTracebacks(logging.Filter):
    """For the console handler: a record carrying a traceback is for the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info


class RunLogFile(logging.FileHandler):
    """The run's log file. A write that fails (a full disk) raises in the main thread, so the
    run stops with one line about it, instead of logging's traceback on stderr per message;
    in other threads (a library's) the message is dropped."""

    def handleError(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is threading.main_thread() and sys.exc_info()[0] is not None:
            raise
