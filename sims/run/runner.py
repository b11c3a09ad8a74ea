"""The Monte Carlo loop: replicates in chunks, chunks on workers, failures as data.

A chunk is a run of replicates of one grid cell. Its data are drawn from each replicate's own
seed stream (:mod:`sims.run.seeding`), so the numbers do not depend on ``n_jobs``, the chunk size
or the backend. When the DGP declares a fixed design, each estimator receives the whole chunk
through ``fit_batch``; should that raise, the chunk is refitted replicate by replicate so that
one bad replicate cannot spoil its neighbours. An exception in a fit becomes a ``failed``
status with its message; a fit that outlives its estimator's ``timeout_s`` becomes
``timeout``; the study goes on and the data are never redrawn.

Chunks run on joblib's loky processes (``runner.backend=loky``) or on a dask.distributed
cluster (``runner.backend=dask``); both call the same :func:`run_chunk`, so they give the
same bits.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from estimators.result import NUMERIC_COLUMNS, FitResult, Status
from sims.run.seeding import data_rng, estimator_rng
from sims.run.study import Cell, Study


@dataclass
class EstimatorChunk:
    """One estimator's results on a chunk: arrays over (rep, term) and (rep,)."""

    terms: tuple[str, ...]
    values: dict[str, np.ndarray]  # NUMERIC_COLUMNS -> (R, n_terms)
    status: np.ndarray  # (R,) int8
    message: list[str]
    elapsed_s: np.ndarray  # (R,)
    extras: dict[str, list]  # name -> per-replicate values


@dataclass
class ChunkResult:
    cell: int
    reps: range
    estimators: dict[str, EstimatorChunk]


class FitTimeout(Exception):
    """Raised inside a fit that outlived its time-out."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`FitTimeout` in the block after ``seconds`` (SIGALRM; main thread only,
    where the loky and local runners fit; elsewhere, e.g. on threaded dask workers, the
    limit cannot be enforced and the block runs unlimited)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise FitTimeout(f"fit exceeded its time-out of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fit_one(estimator, frame, rng, timeout: float | None) -> tuple[FitResult, float]:
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            result = estimator.fit(frame, rng)
    except FitTimeout as error:
        result = FitResult.failure((), str(error), Status.timeout)
    except Exception as error:  # a failing fit is a result; the message says why
        result = FitResult.failure((), f"{type(error).__name__}: {error}".splitlines()[0])
    return result, time.perf_counter() - start


def _fit_chunk(estimator, frames: list, rngs: list, fixed_design: bool,
               timeout: float | None) -> tuple[list[FitResult], np.ndarray]:
    if fixed_design and len(frames) > 1:
        start = time.perf_counter()
        try:
            with time_limit(None if timeout is None else timeout * len(frames)):
                results = estimator.fit_batch(frames, rngs)
        except Exception:
            results = None  # fall back below, so the failure is pinned to its replicate
        else:
            return results, np.full(len(frames), (time.perf_counter() - start) / len(frames))
    fitted = [fit_one(estimator, frame, rng, timeout) for frame, rng in zip(frames, rngs)]
    return [r for r, _ in fitted], np.array([t for _, t in fitted])


def _collect(results: Sequence[FitResult], elapsed: np.ndarray) -> EstimatorChunk:
    terms: list[str] = []
    for result in results:
        terms.extend(t for t in result.terms if t not in terms)
    position = {term: j for j, term in enumerate(terms)}
    values = {column: np.full((len(results), len(terms)), np.nan) for column in NUMERIC_COLUMNS}
    extras: dict[str, list] = {}
    for r, result in enumerate(results):
        columns = [position[t] for t in result.terms]
        for column in NUMERIC_COLUMNS:
            values[column][r, columns] = getattr(result, column)
        for key, value in result.extras.items():
            extras.setdefault(key, [None] * len(results))[r] = value
    status = np.array([int(r.status) for r in results], dtype=np.int8)
    return EstimatorChunk(tuple(terms), values, status, [r.message for r in results], elapsed, extras)


def draw_chunk(dgp, rngs: list) -> Sequence:
    """The chunk's replicates, one per generator: ``dgp.generate_chunk`` (one design frame and
    an outcome matrix for a fixed design, :class:`sims.dgp.base.DGP`), or one ``generate`` each for
    a DGP that does not derive from the base class."""
    if hasattr(dgp, "generate_chunk"):
        return dgp.generate_chunk(rngs)
    return [dgp.generate(rng) for rng in rngs]


def run_chunk(cell: Cell, seed: int, reps: range, timeouts: dict[str, float] | None = None) -> ChunkResult:
    """Draw and fit replicates ``reps`` of ``cell``, single-threaded BLAS (reproducible sums)."""
    timeouts = timeouts or {}
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = draw_chunk(cell.dgp, [data_rng(seed, cell.index, rep) for rep in reps])
        fixed = bool(getattr(cell.dgp, "fixed_design", False))
        out = {}
        for name, estimator in cell.estimators.items():
            rngs = [estimator_rng(seed, cell.index, rep, name) for rep in reps]
            results, elapsed = _fit_chunk(estimator, frames, rngs, fixed, timeouts.get(name))
            out[name] = _collect(results, elapsed)
    return ChunkResult(cell.index, reps, out)


def chunk_plan(study: Study, rep_chunk: int | None = None) -> list[tuple[int, range]]:
    """Every (cell index, replicate range) task: replicates cut at multiples of ``rep_chunk``
    (the store's chunking; ``runner.chunk_size`` by default)."""
    size = rep_chunk or study.chunk_size
    return [
        (cell.index, range(start, min(start + size, study.n_reps)))
        for cell in study.cells
        for start in range(0, study.n_reps, size)
    ]


def execute(study: Study, tasks: Sequence[tuple[int, range]]) -> Iterator[ChunkResult]:
    """Run the tasks on the configured backend; chunks arrive as they finish (any order)."""
    if not tasks:
        return iter(())
    backend = study.config.runner.backend
    if backend == "dask":
        return _execute_dask(study, tasks)
    parallel = Parallel(n_jobs=study.n_jobs, backend="loky", return_as="generator_unordered")
    return parallel(
        delayed(run_chunk)(study.cells[cell], study.seed, reps, study.timeouts) for cell, reps in tasks
    )


def release_workers(study: Study) -> None:
    """Stop joblib's reusable loky worker processes once a study's chunks are done (they would
    otherwise idle, holding their memory, for loky's five-minute time-out while the summary and
    report are computed). The dask backend's LocalCluster is closed by :func:`execute` itself."""
    if study.config.runner.backend == "loky" and study.n_jobs != 1:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def _execute_dask(study: Study, tasks) -> Iterator[ChunkResult]:
    """Chunks as dask.distributed futures, on the cluster at ``runner.address`` or on a
    LocalCluster of ``n_jobs`` single-threaded worker processes."""
    from dask.distributed import Client, LocalCluster, as_completed

    address = study.config.runner.address
    if address:
        client, cluster = Client(address), None
    else:
        workers = study.n_jobs if study.n_jobs > 0 else None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(run_chunk, study.cells[cell], study.seed, reps, study.timeouts, pure=False)
                   for cell, reps in tasks]
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run(study: Study, progress=None) -> list[ChunkResult]:
    """All chunks of a study in memory (the Python API's path)."""
    results = []
    for chunk in execute(study, chunk_plan(study)):
        results.append(chunk)
        if progress is not None:
            progress(chunk)
    return results
