"""How many replicates a task and a store chunk hold: ``runner.chunk_size``, or for
``runner.chunk_size: auto`` (the default) a size chosen from the measured cost of a replicate.

A replicate's numbers depend only on (seed, cell, rep) (:mod:`sims.run.seeding`), so the size
changes how the work is cut, never the numbers. ``auto`` times one pilot chunk of
``PILOT_REPS`` replicates of the first and the last cell (:func:`pilot_cells`) on a worker
process (:func:`sims.run.runner.timed_pilot`; a pilot whose worker dies gives the smallest
size) (drawn from a stream no replicate uses:
the cell numbered ``PILOT_CELL``; the results are thrown away), a second time, warm, when the
first took less than ``runner.chunk_seconds`` (the first pays for what the estimators build once
per design, which can be most of a pilot of quick fits); the quicker of the two counts. When
that makes ``LARGE_PILOT_REPS`` replicates a quarter of ``runner.chunk_seconds`` or less, a
pilot of that many is timed too and the cost of a replicate is the difference of the two over
the difference of their sizes (a batched estimator's per-chunk cost is not a replicate's). The size is
``runner.chunk_seconds`` over the slowest cell's seconds per replicate, rounded down to a
1-2-2.5-5 series within ``[MIN_AUTO, MAX_AUTO]``, then lowered so that there are at least
``TASKS_PER_WORKER`` tasks per local worker (the workers stay busy to the end) and a chunk's
data and results take at most ``MAX_CHUNK_BYTES``; an ``n_reps: auto`` study uses a divisor of
``precision.step``, so that a round's last chunk is whole and not recomputed in the next. A store
keeps the size it was created with (its ``rep_chunk``), which a resumed run uses.
"""
from __future__ import annotations

import dataclasses

from sims.run import budget

PILOT_REPS = 10
LARGE_PILOT_REPS = 50  # a third pilot for quick replicates, which gives the marginal cost
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


def _timed_pilot(cell, study, n_reps: int) -> float:
    """Seconds of a pilot chunk of ``n_reps`` replicates of ``cell`` (in a worker process, so a
    fit that kills its process costs the pilot, not the run; infinite then)."""
    from sims.run.runner import timed_pilot

    return timed_pilot(study, cell, range(n_reps))


def pilot_cells(study) -> list:
    """The cells a pilot times: the first and the last (a grid's values usually grow along it,
    so these are its smallest and largest designs), not every cell of a large grid."""
    cells = list(study.cells)
    return cells if len(cells) <= 2 else [cells[0], cells[-1]]


def seconds_per_replicate(study) -> float:
    """The slowest cell's seconds per replicate, from pilot chunks (see the module's text)."""
    target = float(study.config.runner.chunk_seconds)
    slowest = 0.0
    for cell in pilot_cells(study):
        pilot = dataclasses.replace(cell, index=PILOT_CELL)
        elapsed = _timed_pilot(pilot, study, PILOT_REPS)
        if elapsed == float("inf"):
            return elapsed
        if elapsed < target:
            elapsed = min(elapsed, _timed_pilot(pilot, study, PILOT_REPS))
        per_rep = elapsed / PILOT_REPS
        if LARGE_PILOT_REPS * per_rep < target / 4:  # quick: the marginal cost, without the per-chunk part
            more = _timed_pilot(pilot, study, LARGE_PILOT_REPS) - elapsed
            per_rep = more / (LARGE_PILOT_REPS - PILOT_REPS) if more > 0 else per_rep
        slowest = max(slowest, per_rep)
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
