"""How many replicates a task and a store chunk hold: ``runner.chunk_size``, or for
``runner.chunk_size: auto`` (the default) a size chosen from the measured cost of a replicate.

A replicate's numbers depend only on (seed, cell, rep) (:mod:`sims.run.seeding`), so the size
changes how the work is cut, never the numbers. ``auto`` times one pilot chunk of
``PILOT_REPS`` replicates of each cell in this process (drawn from a stream no replicate uses:
the cell numbered ``PILOT_CELL``; the results are thrown away), a second time, warm, when the
first took less than ``runner.chunk_seconds`` (the first pays for what the estimators build once
per design, which can be most of a pilot of quick fits); the quicker of the two counts. The size is
``runner.chunk_seconds`` over the slowest cell's seconds per replicate, rounded down to a
1-2-2.5-5 series within ``[MIN_AUTO, MAX_AUTO]``, then lowered so that there are at least
``TASKS_PER_WORKER`` tasks per local worker (the workers stay busy to the end) and a chunk's
data and results take at most ``MAX_CHUNK_BYTES``; an ``n_reps: auto`` study uses a divisor of
``precision.step``, so that a round's last chunk is whole and not recomputed in the next. A store
keeps the size it was created with (its ``rep_chunk``), which a resumed run uses.
"""
from __future__ import annotations

import dataclasses
import time

from sims.run import budget

PILOT_REPS = 10
PILOT_CELL = 2**32 - 1  # a cell number no study has: the pilot's draws are no replicate's
MIN_AUTO, MAX_AUTO = 25, 20_000
TASKS_PER_WORKER = 4
MAX_CHUNK_BYTES = 128 * 2**20
SERIES = (1, 2, 2.5, 5)


def rounded_down(size: float) -> int:
    """The largest of 25, 50, 100, 200, 250, 500, 1000, ... at most ``size`` (at least MIN_AUTO)."""
    best, scale = MIN_AUTO, 10
    while scale <= MAX_AUTO:
        for step in SERIES:
            if MIN_AUTO <= step * scale <= min(size, MAX_AUTO):
                best = max(best, int(step * scale))
        scale *= 10
    return best


def seconds_per_replicate(study) -> float:
    """The slowest cell's seconds per replicate, from a pilot chunk (see the module's text)."""
    from sims.run.runner import run_chunk

    slowest = 0.0
    for cell in study.cells:
        pilot = dataclasses.replace(cell, index=PILOT_CELL)
        reps = range(PILOT_REPS)
        start = time.perf_counter()
        run_chunk(pilot, study.seed, reps, study.timeouts)
        elapsed = time.perf_counter() - start
        if elapsed < float(study.config.runner.chunk_seconds):
            start = time.perf_counter()
            run_chunk(pilot, study.seed, reps, study.timeouts)
            elapsed = min(elapsed, time.perf_counter() - start)
        slowest = max(slowest, elapsed / PILOT_REPS)
    return slowest


def auto_chunk_size(study) -> int:
    """The replicates per chunk of ``runner.chunk_size: auto`` (the module's text)."""
    reps = size = study.n_reps
    if reps > MIN_AUTO:
        per_rep = seconds_per_replicate(study)
        size = rounded_down(float(study.config.runner.chunk_seconds) / max(per_rep, 1e-9))
        workers = budget.local_workers(study) or 1
        tasks_per_cell = -(-TASKS_PER_WORKER * workers // len(study.cells))
        size = min(size, max(MIN_AUTO, rounded_down(reps / tasks_per_cell)))
        per_rep_bytes = study.data_bytes + budget.replicate_bytes(study)
        size = min(size, max(MIN_AUTO, rounded_down(MAX_CHUNK_BYTES / max(per_rep_bytes, 1))))
    if study.auto_reps:
        step = int(study.precision.step)
        size = max(d for d in range(1, min(size, step) + 1) if step % d == 0)
    return min(size, reps)


def resolve(study, stored: int | None = None) -> None:
    """Set ``study.chunk_size``: the store's ``stored`` size when resuming, else the configured
    one, else (``auto``) :func:`auto_chunk_size`."""
    if stored is not None:
        study.chunk_size = stored
    elif study.chunk_size is None:
        study.chunk_size = auto_chunk_size(study)
