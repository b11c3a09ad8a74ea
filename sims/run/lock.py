"""One writer per run directory: an OS file lock (``flock``) on ``results.lock``, held for the
whole run. The kernel releases it when the process ends, however it ends, so a crash never
leaves a stale lock; the lock file names the process that holds it."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from pathlib import Path
from typing import Iterator

from estimators.presets import ConfigError

LOCK = "results.lock"


@contextlib.contextmanager
def run_directory_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock in the block; a second run is refused at once with a
    :class:`ConfigError` naming the process that holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by worker processes
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError("hydra.run.dir", f"{run_dir} is in use by another clustersim run ({holder}); wait for "
                                               f"it to finish or choose another hydra.run.dir") from None
        os.ftruncate(descriptor, 0)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.pwrite(descriptor, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock
