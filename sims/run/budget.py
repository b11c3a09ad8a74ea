"""What a study will take, checked before anything of that size is allocated: hard bounds on
the counts a config sets, then the memory and disk the counts imply.

The results store holds, per grid cell, estimator and replicate, ``len(PER_TERM)`` float64s per
term plus a status byte, a time and a message; :func:`store_bytes` is that product, before
compression (estimates compress little). A run holds in memory the store's status array and
replicate coordinate, the list of chunks, and per worker a process and one chunk of data and
results; the Python API's :func:`sims.api.run_study` holds the whole dataset.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from analysis.schema import PER_TERM
from estimators.presets import ConfigError

MAX_REPS = 10**9  # replicates per cell (n_reps, precision.*): a bound on counts, not on resources
MAX_CELLS = 100_000  # grid cells: each is built and test-fitted before the study starts
WORKER_BYTES = 200 * 2**20  # one worker process with numpy, pandas, statsmodels imported
TASK_BYTES = 300  # one (cell, range) entry of the chunk plan, with the ledger's tuple for it
MESSAGE_BYTES = 16  # a stored status message (mostly empty)


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def check_count(key: str, value: int, limit: int) -> None:
    if value > limit:
        raise ConfigError(key, f"must be <= {limit}, got {value}")


def check_cells(sizes: dict[str, int]) -> None:
    """Refuse a grid with more than :data:`MAX_CELLS` cells before any cell is built."""
    cells = math.prod(sizes.values())
    if cells > MAX_CELLS:
        shape = " x ".join(f"{n} {dim}" for dim, n in sizes.items())
        raise ConfigError("grid", f"has {cells} cells ({shape}), more than {MAX_CELLS}")


def reps_key(study) -> tuple[str, int]:
    """The key that sets how many replicates a study can reach, and that number."""
    if study.precision is not None:
        return "precision.max_reps", max(int(study.precision.max_reps), study.n_reps)
    return "n_reps", study.n_reps


def replicate_bytes(study) -> int:
    """Bytes one replicate of one cell takes in the store, over all estimators."""
    per_estimator = len(study.terms) * len(PER_TERM) * 8 + 1 + 8 + MESSAGE_BYTES * (1 + len(study.extras))
    return len(study.estimator_names) * per_estimator


def store_bytes(study, n_reps: int) -> int:
    return len(study.cells) * n_reps * replicate_bytes(study)


def local_workers(study) -> int:
    if study.config.runner.backend == "dask" and study.config.runner.address:
        return 0  # the workers run elsewhere
    cores = os.cpu_count() or 1
    return cores if study.n_jobs < 0 else study.n_jobs


def memory_needs(study, in_memory: bool = False) -> dict[str, int]:
    """Bytes of memory a run needs, by the key that drives them."""
    key, n_reps = reps_key(study)
    cells, estimators = len(study.cells), len(study.estimator_names)
    tasks = cells * -(-n_reps // study.chunk_size)
    by_reps = cells * estimators * n_reps + 8 * n_reps + TASK_BYTES * tasks
    if in_memory:
        by_reps += store_bytes(study, n_reps)
    workers = local_workers(study)
    # Each worker holds a chunk's data and results; the writer holds a chunk's store region.
    chunk = study.chunk_size * (study.data_bytes + replicate_bytes(study))
    return {key: by_reps, "runner.chunk_size": chunk * (workers + 2), "runner.n_jobs": WORKER_BYTES * workers}


def _kib_field(path: str, name: str) -> int | None:
    """A ``Name:  123 kB`` line of a /proc file, in bytes."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves this process."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    used = _kib_field("/proc/self/status", "VmSize")
    return soft - used if used is not None else soft


def available_memory() -> int | None:
    """Bytes of memory this process can still take: the least of MemAvailable, what a cgroup
    limit leaves and what ``ulimit -v`` leaves; None where none of them can be read."""
    limits = [_kib_field("/proc/meminfo", "MemAvailable"), _cgroup_left(), _address_space_left()]
    known = [limit for limit in limits if limit is not None]
    return max(min(known), 0) if known else None


def check_memory(study, in_memory: bool = False) -> None:
    """Refuse a study whose run would need more memory than is available, naming the key that
    drives most of it."""
    available = available_memory()
    if available is None:
        return
    needs = memory_needs(study, in_memory)
    total = sum(needs.values())
    if total > available:
        key = max(needs, key=needs.get)
        raise ConfigError(key, f"the study would need about {_gb(total)} of memory "
                          f"({_describe(study)}), but {_gb(available)} are available")


def _describe(study) -> str:
    key, n_reps = reps_key(study)
    return (f"{len(study.cells)} cell(s) x {n_reps} replicates x {len(study.estimator_names)} estimator(s) "
            f"x {len(study.terms)} term(s), chunks of {study.chunk_size}, {local_workers(study)} local worker(s)")


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(study, run_dir: Path, held_reps: int = 0) -> None:
    """Refuse a study whose results would not fit on the run directory's disk (``held_reps``
    replicates are in its store already)."""
    key, n_reps = reps_key(study)
    need = store_bytes(study, max(n_reps - held_reps, 0))
    try:
        free = shutil.disk_usage(_existing(run_dir)).free
    except OSError:
        return
    if need > free:
        raise ConfigError(key, f"the results would take about {_gb(need)} ({_describe(study)}), "
                          f"but {_gb(free)} are free in {run_dir}")
