"""The Monte Carlo loop: replicates in chunks, chunks on workers, failures as data.

A chunk is a run of replicates of one grid cell. Its data are drawn from each replicate's own
seed stream (:mod:`sims.run.seeding`), so the numbers do not depend on ``n_jobs``, the chunk size
or the backend. When the DGP declares a fixed design, each estimator receives the whole chunk
through ``fit_batch``; should that raise, the chunk is refitted replicate by replicate so that
one bad replicate cannot spoil its neighbours. An exception in a fit (``SystemExit`` and
``KeyboardInterrupt`` included), or a result that is not a well-formed :class:`FitResult`,
becomes a ``failed`` status with its message; a fit that outlives its estimator's
``timeout_s`` becomes ``timeout``; the study goes on and the data are never redrawn.

A fit that kills its process (``os.abort()``, a segfault in compiled code, the OOM killer)
costs only its own replicate: every chunk that was running when a worker died is run again
replicate by replicate and estimator by estimator in a :class:`~sims.run.sandbox.Sandbox`
(:func:`isolate_chunk`), the fit that kills the sandbox is stored as ``failed`` with "worker
died (signal N, ...)" and the others give the bits of an undisturbed run. More than
``runner.max_worker_deaths`` such fits end the run (:class:`TooManyWorkerDeaths`).

Chunks run on joblib's loky processes (``runner.backend=loky``; a study of a single chunk on
one worker forked from the main process instead, :func:`start_workers`) or on a dask.distributed
cluster (``runner.backend=dask``, where each worker runs its chunks in its own sandbox, in a
main thread, so that time-outs hold there too); both call the same :func:`run_chunk`, so they
give the same bits. At most a few chunks per worker are in flight at a time, so the main
process holds neither the whole task list nor its results.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import signal
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import cloudpickle
import numpy as np
from threadpoolctl import threadpool_limits

from estimators.presets import ConfigError
from estimators.result import NUMERIC_COLUMNS, FitResult, Status
from sims.run.sandbox import Sandbox, WorkerDied, prepare_worker, worker_sandbox
from sims.run.seeding import data_rng, estimator_rng

if TYPE_CHECKING:
    from sims.run.cell import Cell
    from sims.run.study import Study

# Chunks in flight per worker: enough to keep the workers busy, few enough that the main
# process holds only a handful of tasks and results at a time.
IN_FLIGHT_PER_WORKER = 2
# A chunk whose isolated run (replicate by replicate, in a sandbox) loses the worker that drives
# it this many times stops the run: something outside the fits keeps killing workers.
MAX_ISOLATION_LOSSES = 3


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
    deaths: list[str] = field(default_factory=list)  # fits that killed their process, described


class FitTimeout(Exception):
    """Raised inside a fit that outlived its time-out."""


class TooManyWorkerDeaths(RuntimeError):
    """More fits killed their process than ``runner.max_worker_deaths`` allows."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`FitTimeout` in the block after ``seconds`` (SIGALRM; main thread only,
    which is where every worker and sandbox fits; elsewhere the block runs unlimited)."""
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


def call_with_time_limit(function: Callable, seconds: float | None):
    """``function()``, or :class:`FitTimeout` after ``seconds``: by SIGALRM in the main thread;
    in another thread by waiting for a helper thread, which is left behind if it hangs."""
    if seconds is None or threading.current_thread() is threading.main_thread():
        with time_limit(seconds):
            return function()
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    helper = threading.Thread(target=target, name="clustersim-timed-fit", daemon=True)
    helper.start()
    helper.join(seconds)
    if helper.is_alive():
        raise FitTimeout(f"fit exceeded its time-out of {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _user_can_interrupt() -> bool:
    """Whether a KeyboardInterrupt here may be the user's Ctrl-C (the main thread of a process
    with Python's SIGINT handler); workers ignore SIGINT, so there it came from the fit."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


def result_problem(result) -> str | None:
    """Why ``result`` cannot be stored as a fit's result, or None when it can: it must be a
    :class:`FitResult` with one value per term in every column and a known status."""
    if not isinstance(result, FitResult):
        return f"the estimator returned {type(result).__name__}, not a FitResult"
    try:
        terms = tuple(result.terms)
        Status(result.status)
    except (TypeError, ValueError) as error:
        return f"malformed FitResult ({type(error).__name__}: {error})"
    if not all(isinstance(term, str) for term in terms):
        return "malformed FitResult: its terms are not all strings"
    for column in NUMERIC_COLUMNS:
        shape = np.shape(getattr(result, column))
        if shape != (len(terms),):
            return f"malformed FitResult: {column} has shape {shape} for {len(terms)} term(s)"
    if not isinstance(result.extras, dict):
        return f"malformed FitResult: extras is a {type(result.extras).__name__}, not a dict"
    return None


VALID_FIT = (Status.ok, Status.singular)


def checked(result) -> FitResult:
    """``result`` as the runner stores it: a malformed result becomes ``failed`` with the
    reason; so does a valid-status (ok or singular) fit with an infinite estimate or with no
    finite estimate at all. A NaN beside finite estimates stays: it is how an estimator leaves
    out a term it does not estimate (min F' has no intercept), and the measures skip it."""
    problem = result_problem(result)
    if problem is not None:
        return FitResult.failure((), problem)
    if result.status in VALID_FIT:
        estimate = np.asarray(result.estimate, dtype=float)
        infinite = [t for t, value in zip(result.terms, estimate) if np.isinf(value)]
        if infinite or not np.isfinite(estimate).any():
            what = f"infinite estimate of {', '.join(infinite)}" if infinite else "no finite estimate"
            message = f"{what} with status {Status(result.status).name}"
            return dataclasses.replace(result, status=Status.failed,
                                       message=f"{message}: {result.message}" if result.message else message)
    return result


def fit_one(estimator, frame, rng, timeout: float | None) -> tuple[FitResult, float]:
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            result = checked(estimator.fit(frame, rng))
    except FitTimeout as error:
        result = FitResult.failure((), str(error), Status.timeout)
    except Exception as error:  # a failing fit is a result; the message says why
        result = FitResult.failure((), _first_line(error))
    except (SystemExit, KeyboardInterrupt) as error:
        if isinstance(error, KeyboardInterrupt) and _user_can_interrupt():
            raise
        result = FitResult.failure((), _first_line(error))
    return result, time.perf_counter() - start


def _first_line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}".splitlines()[0] if text else type(error).__name__


def _fit_chunk(estimator, frames: list, rngs: list, fixed_design: bool,
               timeout: float | None) -> tuple[list[FitResult], np.ndarray]:
    if fixed_design and len(frames) > 1:
        start = time.perf_counter()
        try:
            with time_limit(None if timeout is None else timeout * len(frames)):
                results = estimator.fit_batch(frames, rngs)
            if not isinstance(results, (list, tuple)) or len(results) != len(frames):
                raise TypeError("fit_batch did not return one result per replicate")
        except (Exception, SystemExit, KeyboardInterrupt) as error:
            if isinstance(error, KeyboardInterrupt) and _user_can_interrupt():
                raise
            results = None  # fall back below, so the failure is pinned to its replicate
        else:
            elapsed = np.full(len(frames), (time.perf_counter() - start) / len(frames))
            return list(results), elapsed  # checked by _collect
    fitted = [fit_one(estimator, frame, rng, timeout) for frame, rng in zip(frames, rngs)]
    return [r for r, _ in fitted], np.array([t for _, t in fitted])


def _collect(results: Sequence, elapsed: np.ndarray) -> EstimatorChunk:
    """One estimator's results of a chunk as arrays, every result as :func:`checked` leaves it.
    Results that share one tuple of terms and carry no extras, as a batched fit's do, are
    stacked column by column (:func:`_stacked`: the same values, at a few per cent of the
    cost of checking and placing them one by one, which was most of a quick fit's share)."""
    stacked = _stacked(results)
    if stacked is not None:
        terms, values, status = stacked
        return EstimatorChunk(terms, values, status, [r.message for r in results], elapsed, {})
    return _collect_one_by_one([checked(result) for result in results], elapsed)


_STATUSES = frozenset(Status)


def _stacked(results: Sequence) -> tuple[tuple[str, ...], dict[str, np.ndarray], np.ndarray] | None:
    """(terms, values, status) of ``results`` when every one is a :class:`FitResult` that
    :func:`checked` would leave as it is, with the same tuple of terms and no extras; None
    otherwise (they are then checked and placed one by one)."""
    if not results or any(type(result) is not FitResult for result in results):
        return None
    terms = results[0].terms
    if (type(terms) is not tuple or not all(type(term) is str for term in terms)
            or any(result.terms != terms or result.extras != {} for result in results)):
        return None
    statuses = [result.status for result in results]
    if not set(statuses) <= _STATUSES:
        return None
    values = {}
    try:
        for column in NUMERIC_COLUMNS:
            values[column] = np.array([getattr(result, column) for result in results], dtype=float)
    except (TypeError, ValueError):  # ragged or non-numeric: one by one says which
        return None
    if any(array.shape != (len(results), len(terms)) for array in values.values()):
        return None
    status = np.array(statuses, dtype=np.int8)
    estimate = values["estimate"]
    valid = np.isin(status, [int(s) for s in VALID_FIT])
    if (valid & (np.isinf(estimate).any(axis=1) | ~np.isfinite(estimate).any(axis=1))).any():
        return None  # checked() turns these into failures, with their message
    return terms, values, status


def _collect_one_by_one(results: Sequence[FitResult], elapsed: np.ndarray) -> EstimatorChunk:
    """:func:`_collect` of checked results whose terms or extras differ: the chunk's terms in
    order of first appearance, NaN where a result has no value."""
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


def draws_from_rng(estimator) -> bool:
    """Whether the estimator draws random numbers: its ``draws_from_rng``, True when it does not
    say. Only then is its generator built (a seed sequence and a generator per replicate cost
    about 20 us, a tenth of a mixed model's batched fit); the conformance suite checks that one
    declaring False gives the same bits with ``rng=None``."""
    return bool(getattr(estimator, "draws_from_rng", True))


def draw_chunk(dgp, rngs: list) -> Sequence:
    """The chunk's replicates, one per generator: ``dgp.generate_chunk`` (one design frame and
    an outcome matrix for a fixed design, :class:`sims.dgp.base.DGP`), or one ``generate`` each for
    a DGP that does not derive from the base class."""
    if hasattr(dgp, "generate_chunk"):
        return dgp.generate_chunk(rngs)
    return [dgp.generate(rng) for rng in rngs]


@contextlib.contextmanager
def _reproducible_fits():
    """Single-threaded BLAS (reproducible sums) and no warnings from the fits."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- cells kept in the worker ---------------------------------------------------------------

_resident: dict[bytes, Cell] = {}  # digest of a pickled cell -> the cell, unpickled once
MAX_RESIDENT_CELLS = 64


def cell_blob(cell: Cell) -> bytes:
    """A cell as tasks carry it: pickled once in the main process, unpickled once per worker
    (:func:`resident_cell`), so that what its estimators cache (designs, factorisations) serves
    every chunk the worker runs; a cell unpickled afresh for each chunk made a 25-replicate
    OLS-family chunk four times slower."""
    return cloudpickle.dumps(cell)


def resident_cell(cell: Cell | bytes) -> Cell:
    """The cell itself, or the worker's copy of a pickled one."""
    if not isinstance(cell, bytes):
        return cell
    key = hashlib.sha1(cell).digest()
    found = _resident.get(key)
    if found is None:
        if len(_resident) >= MAX_RESIDENT_CELLS:
            _resident.pop(next(iter(_resident)))
        found = _resident[key] = cloudpickle.loads(cell)
    return found


def run_chunk(cell: Cell | bytes, seed: int, reps: range, timeouts: dict[str, float] | None = None) -> ChunkResult:
    """Draw and fit replicates ``reps`` of ``cell``, single-threaded BLAS (reproducible sums)."""
    cell = resident_cell(cell)
    timeouts = timeouts or {}
    with _reproducible_fits():
        frames = draw_chunk(cell.dgp, [data_rng(seed, cell.index, rep) for rep in reps])
        fixed = bool(getattr(cell.dgp, "fixed_design", False))
        out = {}
        for name, estimator in cell.estimators.items():
            rngs = ([estimator_rng(seed, cell.index, rep, name) for rep in reps] if draws_from_rng(estimator)
                    else [None] * len(reps))
            results, elapsed = _fit_chunk(estimator, frames, rngs, fixed, timeouts.get(name))
            out[name] = _collect(results, elapsed)
    return ChunkResult(cell.index, reps, out)


# --- a chunk whose fits may kill their process ----------------------------------------------

def fits_one_by_one(cell: Cell | bytes, seed: int, reps: range, timeouts: dict[str, float], skip: int
                    ) -> Iterator[tuple[FitResult, float]]:
    """Each (replicate, estimator) fit of a chunk, replicate-major, after the first ``skip``:
    every replicate drawn alone, as a chunk of one (which gives the bits of any other chunking),
    and each result yielded as soon as it is there. Runs in a sandbox."""
    cell = resident_cell(cell)
    names = list(cell.estimators)
    with _reproducible_fits():
        for i, rep in enumerate(reps):
            pending = names[max(0, skip - i * len(names)):]
            if not pending:
                continue
            frame = draw_chunk(cell.dgp, [data_rng(seed, cell.index, rep)])[0]
            for name in pending:
                estimator = cell.estimators[name]
                rng = estimator_rng(seed, cell.index, rep, name) if draws_from_rng(estimator) else None
                yield fit_one(estimator, frame, rng, timeouts.get(name))


def isolate_chunk(cell: Cell | bytes, seed: int, reps: range, timeouts: dict[str, float] | None,
                  deaths_so_far: int, max_deaths: int, sandbox: Sandbox | None = None) -> ChunkResult:
    """Run a chunk fit by fit in a sandbox (this worker's own, by default): a fit that kills the
    sandbox's process is stored as ``failed`` ("worker died (signal 6, SIGABRT) at replicate
    7") and the chunk goes on in a fresh one. Raises :class:`TooManyWorkerDeaths` once the
    study's fatal fits, counting ``deaths_so_far``, exceed ``max_deaths``."""
    timeouts = timeouts or {}
    blob = cell if isinstance(cell, bytes) else cell_blob(cell)  # what the sandbox keeps resident
    cell = resident_cell(cell)
    names = list(cell.estimators)
    total = len(reps) * len(names)
    fitted: list[tuple[FitResult, float]] = []
    deaths: list[str] = []
    sandbox = sandbox or worker_sandbox()
    while len(fitted) < total:
        start = time.perf_counter()
        try:
            for item in sandbox.stream(fits_one_by_one, blob, seed, reps, timeouts, len(fitted)):
                fitted.append(item)
                start = time.perf_counter()
        except WorkerDied as death:
            rep, name = reps[len(fitted) // len(names)], names[len(fitted) % len(names)]
            message = f"worker died ({death.cause}) at replicate {rep}"
            fitted.append((FitResult.failure((), message), time.perf_counter() - start))
            deaths.append(f"estimator {name}, cell {cell.index}, replicate {rep}: {death.cause}")
            if deaths_so_far + len(deaths) > max_deaths:
                raise TooManyWorkerDeaths(too_many_deaths(deaths_so_far + len(deaths), max_deaths, deaths[-1]))
    out = {}
    for j, name in enumerate(names):
        mine = fitted[j::len(names)]
        out[name] = _collect([r for r, _ in mine], np.array([t for _, t in mine]))
    return ChunkResult(cell.index, reps, out, deaths)


def too_many_deaths(count: int, limit: int, last: str) -> str:
    return (f"{count} fits killed their worker process, more than runner.max_worker_deaths={limit} "
            f"(the last: {last})")


def guarded_chunk(cell: Cell | bytes, seed: int, reps: range, timeouts: dict[str, float] | None,
                  deaths_so_far: int, max_deaths: int, sandbox: Sandbox | None = None) -> ChunkResult:
    """:func:`run_chunk` in a sandbox, this worker's by default (a dask task: its fits run in
    the main thread of a process of their own, so time-outs hold and a fatal fit does not take
    the worker down); isolated fit by fit when the sandbox dies."""
    sandbox = sandbox or worker_sandbox()
    try:
        return sandbox.call(run_chunk, cell, seed, reps, timeouts)
    except WorkerDied:
        return isolate_chunk(cell, seed, reps, timeouts, deaths_so_far, max_deaths, sandbox)


# --- backends -------------------------------------------------------------------------------

def chunk_plan(study: Study, rep_chunk: int | None = None) -> list[tuple[int, range]]:
    """Every (cell index, replicate range) task: replicates cut at multiples of ``rep_chunk``
    (the store's chunking; ``runner.chunk_size`` by default, chosen now when it is ``auto``)."""
    if rep_chunk is None:
        from sims.run import chunking  # the main process's business: workers need not import it

        chunking.resolve(study)
    size = rep_chunk or study.chunk_size
    return [
        (cell.index, range(start, min(start + size, study.n_reps)))
        for cell in study.cells
        for start in range(0, study.n_reps, size)
    ]


class _Schedule:
    """The chunks still to run, in order, and what happens when one comes back or loses its
    worker: a lost chunk is run again isolated, first in line, and the fits that killed their
    process count against ``runner.max_worker_deaths``."""

    def __init__(self, study: Study, tasks, first_try: Callable):
        self.study = study
        self.queue = deque((cell, reps, 0) for cell, reps in tasks)  # (cell, reps, runs lost)
        self.first_try = first_try
        self.limit = int(study.config.runner.max_worker_deaths)
        self.deaths = 0
        self.blobs: dict[int, bytes] = {}

    def __bool__(self) -> bool:
        return bool(self.queue)

    def pop(self) -> tuple[tuple, Callable, tuple]:
        """The next task, the function that runs it and its arguments."""
        task = cell, reps, losses = self.queue.popleft()
        if cell not in self.blobs:
            self.blobs[cell] = cell_blob(self.study.cells[cell])
        args = (self.blobs[cell], self.study.seed, reps, self.study.timeouts)
        if losses:
            return task, isolate_chunk, (*args, self.deaths, self.limit)
        if self.first_try is guarded_chunk:
            return task, guarded_chunk, (*args, self.deaths, self.limit)
        return task, self.first_try, args

    def lost(self, task) -> None:
        """The task's worker died while it ran: run it again isolated (every chunk in flight
        is a suspect), unless its isolated runs keep losing their worker too."""
        cell, reps, losses = task
        if losses >= MAX_ISOLATION_LOSSES:
            raise TooManyWorkerDeaths(f"cell {cell}, replicates {reps.start}-{reps.stop - 1}: its isolated run "
                                      f"lost its worker {losses} times")
        self.queue.appendleft((cell, reps, losses + 1))

    def count(self, chunk: ChunkResult) -> None:
        self.deaths += len(chunk.deaths)

    def check(self, chunk: ChunkResult) -> None:
        """After the chunk is stored: stop once too many fits have killed their process."""
        if self.deaths > self.limit:
            raise TooManyWorkerDeaths(too_many_deaths(self.deaths, self.limit, chunk.deaths[-1]))


def execute(study: Study, tasks: Sequence[tuple[int, range]]) -> Iterator[ChunkResult]:
    """Run the tasks on the configured backend; chunks arrive as they finish (any order).
    Close the iterator (``contextlib.closing``) when leaving it early: that stops the workers."""
    if not tasks:
        return _nothing()
    if study.config.runner.backend == "dask":
        return _execute_dask(study, tasks)
    if len(tasks) == 1 and _solo is not None:
        return _execute_solo(study, tasks)
    return _execute_loky(study, tasks)


def _nothing() -> Iterator[ChunkResult]:
    yield from ()


_pool = None  # the loky executor of the last study run here
_solo: Sandbox | None = None  # the forked worker of a one-chunk study (start_workers)


def loky_workers(study: Study, n_tasks: int | None = None) -> int:
    """Worker processes for ``n_tasks`` chunks: ``runner.n_jobs`` (-1: every core), but no more
    than there are chunks, since a worker without one would only take CPU from the others while
    it starts (a one-chunk study runs on one worker); all of them when the count is not known."""
    from joblib import effective_n_jobs

    n_workers = effective_n_jobs(study.n_jobs)
    return n_workers if n_tasks is None else max(1, min(n_workers, n_tasks))


def planned_tasks(study: Study) -> int | None:
    """The number of chunks a new study will run, when known before its store is made: with a
    set chunk size, or with ``auto`` for a study of at most ``chunking.MIN_AUTO`` replicates per
    cell (chosen without a pilot); None while a pilot is still to choose the size."""
    from sims.run import chunking

    size = study.chunk_size
    if size is None and study.n_reps <= chunking.MIN_AUTO:
        size = chunking.auto_chunk_size(study)
    return None if size is None else len(study.cells) * -(-study.n_reps // size)


def _loky_pool(n_workers: int):
    """loky's reusable executor (a fresh one after a break): idle workers stay for loky's usual
    five minutes (joblib's default), for the next round of an n_reps=auto study;
    :func:`release_workers` stops them sooner."""
    from joblib.externals.loky import get_reusable_executor

    global _pool
    _pool = get_reusable_executor(max_workers=n_workers, timeout=300, initializer=prepare_worker)
    return _pool


def _execute_loky(study: Study, tasks) -> Iterator[ChunkResult]:
    """Chunks on loky worker processes. When a worker dies, loky fails every chunk in flight;
    each is run again isolated (:func:`isolate_chunk`, in a worker, so in parallel)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    n_workers = loky_workers(study, len(tasks))
    schedule = _Schedule(study, tasks, run_chunk)
    running: dict = {}
    pool = _loky_pool(n_workers)
    finished = False
    try:
        while schedule or running:
            while schedule and len(running) < IN_FLIGHT_PER_WORKER * n_workers:
                task, function, args = schedule.pop()
                try:
                    future = pool.submit(function, *args)
                except BrokenProcessPool:  # it broke since the last look
                    pool = _loky_pool(n_workers)
                    future = pool.submit(function, *args)
                running[future] = task
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                task = running.pop(future)
                try:
                    chunk = future.result()
                except BrokenProcessPool:  # a worker died while this chunk was in flight
                    schedule.lost(task)
                    broken = True
                    continue
                schedule.count(chunk)
                yield chunk
                schedule.check(chunk)
            if broken:
                pool = _loky_pool(n_workers)  # loky replaces a broken executor
        finished = True
    finally:
        if not finished:  # an error or an interrupt: no worker outlives the run
            pool.shutdown(wait=False, kill_workers=True)


def _execute_solo(study: Study, tasks) -> Iterator[ChunkResult]:
    """A study of one chunk on the worker :func:`start_workers` forked from this process before
    the store was made (:func:`guarded_chunk` in that sandbox: a fit that kills it costs only
    its replicate, the rest of the chunk is isolated fit by fit). A loky worker would start a
    fresh interpreter and import again what this process has imported, which takes longer than
    a small study's chunk, on the critical path."""
    global _solo
    schedule = _Schedule(study, tasks, guarded_chunk)
    finished = False
    try:
        while schedule:
            _, function, args = schedule.pop()
            chunk = function(*args, sandbox=_solo)
            schedule.count(chunk)
            yield chunk
            schedule.check(chunk)
        finished = True
    finally:  # its one chunk done, the worker ends; after an error or an interrupt, at once
        solo, _solo = _solo, None
        solo.close() if finished else solo.close(wait=0)


def _timed_chunk(cell: Cell | bytes, seed: int, reps: range, timeouts: dict[str, float]) -> float:
    """Seconds :func:`run_chunk` takes (its results thrown away): a pilot of chunking's."""
    start = time.perf_counter()
    run_chunk(cell, seed, reps, timeouts)
    return time.perf_counter() - start


def timed_pilot(study: Study, cell: Cell, reps: range) -> float:
    """Seconds a chunk of ``reps`` of ``cell`` takes: on a loky worker (a fit that kills it costs
    only the pilot: infinite seconds then), in this process on the other backends."""
    if study.config.runner.backend != "loky":
        return _timed_chunk(cell, study.seed, reps, study.timeouts)
    from concurrent.futures.process import BrokenProcessPool

    try:
        return _loky_pool(loky_workers(study)).submit(_timed_chunk, cell, study.seed, reps,
                                                                   study.timeouts).result()
    except BrokenProcessPool:
        return float("inf")


def _started() -> None:
    """A worker's first task: it has imported this module, and what the chunks need, when done."""


def start_workers(study: Study) -> None:
    """Start the loky workers now, without waiting for them: their start-up (a process each,
    the imports a chunk needs) overlaps what the main process does before the first chunk
    (creating the store, choosing the chunk size); :func:`execute` then finds them running.
    As many as the chunks need (:func:`loky_workers`, :func:`planned_tasks`)."""
    global _solo
    if study.config.runner.backend != "loky":
        return
    n_tasks = planned_tasks(study)
    if n_tasks == 1:  # forked now, while this process runs no other thread (zarr starts some)
        if _solo is not None:
            _solo.close()
        _solo = Sandbox()
        _solo.start()
        return
    n_workers = loky_workers(study, n_tasks)
    pool = _loky_pool(n_workers)
    for _ in range(n_workers):
        pool.submit(_started)


def release_workers(study: Study) -> None:
    """Stop the loky worker processes once a study's chunks are done (they would otherwise
    idle, holding their memory, for loky's five-minute time-out while the summary and report
    are computed). Without waiting for them: they exit as soon as they read the stop signal,
    while this process goes on with the summary (loky's exit handler joins them at the latest
    when this process ends). The dask backend's LocalCluster is closed by :func:`execute` itself."""
    global _pool, _solo
    if study.config.runner.backend == "loky" and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    if _solo is not None:
        _solo.close()
        _solo = None


# dask.distributed's loggers and the levels below which they stay quiet (its INFO lines tell
# of every worker, connection and dashboard, and drown the run's own).
DASK_LOG_LEVELS = {"distributed": logging.WARNING, "bokeh": logging.ERROR, "tornado": logging.CRITICAL}


def quiet_dask_logs() -> None:
    """Raise dask.distributed's log levels to :data:`DASK_LOG_LEVELS` (its warnings still show)."""
    for name, level in DASK_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    import dask  # distributed sets its loggers' levels from dask's config when first imported

    dask.config.set({f"logging.{name}": logging.getLevelName(level).lower() for name, level in DASK_LOG_LEVELS.items()})


def _execute_dask(study: Study, tasks) -> Iterator[ChunkResult]:
    """Chunks as dask.distributed futures, on the cluster at ``runner.address`` or on a
    LocalCluster of ``n_jobs`` single-threaded worker processes. Each chunk runs in its worker's
    sandbox (:func:`guarded_chunk`); a chunk whose worker was lost more often than the
    scheduler's ``allowed-failures`` (``KilledWorker``) is run again isolated."""
    quiet_dask_logs()
    from dask.distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    address = study.config.runner.address
    if address:
        try:
            client, cluster = Client(address), None
        except OSError as error:  # refused, timed out, no such host
            raise ConfigError("runner.address", f"cannot reach a dask scheduler at {address} "
                              f"({str(error).splitlines()[0]}); start one, or fix runner.address") from None
    else:
        workers = study.n_jobs if study.n_jobs > 0 else None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")  # any free port: 8787 may be taken
        client = Client(cluster)
    schedule = _Schedule(study, tasks, guarded_chunk)
    completed = as_completed()
    in_flight: dict = {}
    threads = (0.0, 0)  # (when asked, worker threads on the cluster)
    try:
        def top_up() -> None:
            nonlocal threads
            if time.monotonic() - threads[0] > 1.0:  # workers come and go; ask now and then
                threads = (time.monotonic(), sum(client.nthreads().values()))
            while schedule and len(in_flight) < IN_FLIGHT_PER_WORKER * max(2, threads[1]):
                task, function, args = schedule.pop()
                future = client.submit(function, *args, pure=False)
                in_flight[future.key] = task
                completed.add(future)

        top_up()
        for future in completed:
            task = in_flight.pop(future.key)
            try:
                chunk = future.result()
            except KilledWorker:
                schedule.lost(task)
            else:
                schedule.count(chunk)
                yield chunk
                schedule.check(chunk)
            finally:
                future.release()
            top_up()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it stops a run the way Ctrl-C does."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def sigterm_as_interrupt():
    """In the main thread, turn the first SIGTERM into :class:`Interrupted` (later ones are
    ignored while the run cleans up)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def stop(signum, frame):
        if not received:
            received.append(signum)
            raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(study: Study, progress=None) -> list[ChunkResult]:
    """All chunks of a study in memory (the Python API's path)."""
    results = []
    with contextlib.closing(execute(study, chunk_plan(study))) as chunks:
        for chunk in chunks:
            results.append(chunk)
            if progress is not None:
                progress(chunk)
    return results
