"""The Monte Carlo loop: replicates in chunks, chunks on joblib workers, failures as data.

A chunk is a run of replicates of one grid cell. Its data are drawn from each replicate's own
seed stream (:mod:`sims.seeding`), so the numbers do not depend on ``n_jobs``, the chunk size
or the backend. When the DGP declares a fixed design, each estimator receives the whole chunk
through ``fit_batch``; should that raise, the chunk is refitted replicate by replicate so that
one bad replicate cannot spoil its neighbours. An exception in a fit becomes a ``failed``
status with its message; the study goes on and the data are never redrawn.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from estimators.result import NUMERIC_COLUMNS, FitResult, Status
from sims.seeding import data_rng, estimator_rng
from sims.study import Cell, Study


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


def _fit_one(estimator, frame, rng) -> tuple[FitResult, float]:
    start = time.perf_counter()
    try:
        result = estimator.fit(frame, rng)
    except Exception as error:  # a failing fit is a result; the message says why
        result = FitResult.failure((), f"{type(error).__name__}: {error}".splitlines()[0])
    return result, time.perf_counter() - start


def _fit_chunk(estimator, frames: list, rngs: list, fixed_design: bool) -> tuple[list[FitResult], np.ndarray]:
    if fixed_design and len(frames) > 1:
        start = time.perf_counter()
        try:
            results = estimator.fit_batch(frames, rngs)
        except Exception:
            results = None  # fall back below, so the failure is pinned to its replicate
        else:
            return results, np.full(len(frames), (time.perf_counter() - start) / len(frames))
    fitted = [_fit_one(estimator, frame, rng) for frame, rng in zip(frames, rngs)]
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


def run_chunk(cell: Cell, seed: int, reps: range) -> ChunkResult:
    """Draw and fit replicates ``reps`` of ``cell``, single-threaded BLAS (reproducible sums)."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = [cell.dgp.generate(data_rng(seed, cell.index, rep)) for rep in reps]
        fixed = bool(getattr(cell.dgp, "fixed_design", False))
        out = {}
        for name, estimator in cell.estimators.items():
            rngs = [estimator_rng(seed, cell.index, rep, name) for rep in reps]
            results, elapsed = _fit_chunk(estimator, frames, rngs, fixed)
            out[name] = _collect(results, elapsed)
    return ChunkResult(cell.index, reps, out)


def chunk_plan(study: Study) -> list[tuple[Cell, range]]:
    """Every (cell, replicate range) task, cell by cell."""
    return [
        (cell, range(start, min(start + study.chunk_size, study.n_reps)))
        for cell in study.cells
        for start in range(0, study.n_reps, study.chunk_size)
    ]


def run(study: Study, progress=None) -> list[ChunkResult]:
    """All chunks of a study, in plan order, on ``study.n_jobs`` loky workers."""
    plan = chunk_plan(study)
    parallel = Parallel(n_jobs=study.n_jobs, backend="loky", return_as="generator")
    results = []
    for chunk in parallel(delayed(run_chunk)(cell, study.seed, reps) for cell, reps in plan):
        results.append(chunk)
        if progress is not None:
            progress(chunk)
    return results
