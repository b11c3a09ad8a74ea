"""Running a study into a run directory: create or resume its store, run the chunks it lacks
(round after round for ``n_reps: auto``), and hand back the stored results.

This is the command line's path (``clustersim``); ``sims.api.run_study`` is the in-memory
alternative for small studies.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path

import xarray as xr

from analysis.measures import summarise
from sims.run import budget, chunking, runner
from sims.run.precision import next_n_reps
from estimators.presets import ConfigError
from sims.run.progress import Progress
from sims.run.store import RunStore
from sims.run.study import Study

log = logging.getLogger("clustersim")


class RunBrokeOff(RuntimeError):
    """The runner stopped (too many fatal fits, a lost scheduler); finished chunks are stored."""


class RunInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM stopped the run; finished chunks are stored, the workers are stopped."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)


def check_run_dir(store: RunStore) -> None:
    """Refuse a run directory whose store or ledger is something else (a file where the store
    should be, a directory for the ledger), before anything is written into it."""
    problem = None
    if store.path.exists() and not store.path.is_dir():
        problem = f"{store.path} is a file, not a results store"
    elif store.path.is_dir() and not (store.path / "zarr.json").is_file():
        problem = f"{store.path} is a directory but not a zarr store"
    elif store.ledger.exists() and not store.ledger.is_file():
        problem = f"{store.ledger} is not a file (it is the ledger of finished chunks)"
    if problem:
        raise ConfigError("hydra.run.dir", f"{problem}; move it out of the way or choose another hydra.run.dir")


def open_store(study: Study, run_dir: Path) -> RunStore:
    """The run directory's store, created for ``study`` or, after completing what a killed run
    left half done, checked against it (checksums, provenance, coordinates, replicate count)
    and grown to ``study.n_reps``, once memory and disk have room for the run. Raises
    :class:`ConfigError` or :class:`~analysis.integrity.DamagedStore`."""
    store = RunStore(run_dir)
    check_run_dir(store)
    store.recover()
    held = 0
    if store.exists():
        store.check_provenance(study)
        store.discard_if_unverifiable()
    if store.exists():
        store.check_integrity()
        store.align(study)
        held = store.n_reps
        if study.auto_reps:
            study.n_reps = max(study.n_reps, held)
        elif study.n_reps < held:
            raise ConfigError("n_reps", f"is {study.n_reps} but {store.path} already holds {held} replicates")
    if not store.exists():
        runner.start_workers(study)  # a new study: its workers start while its store is made
    chunking.resolve(study, store.rep_chunk if store.exists() else None)
    budget.check_memory(study)
    budget.check_disk(study, run_dir, held)
    store.prepare(study)
    return store


def run_missing(study: Study, store: RunStore) -> None:
    """Run every chunk of ``study`` the store does not hold yet, writing each as it finishes."""
    done = store.done()
    plan = runner.chunk_plan(study, store.rep_chunk)
    todo = [(cell, reps) for cell, reps in plan if (cell, reps.start, reps.stop) not in done]
    total = len(study.cells) * study.n_reps
    remaining = sum(len(reps) for _, reps in todo)
    log.info("%d cell(s) x %d replicates x %d estimator(s): %d of %d chunks to run, backend=%s, n_jobs=%d",
             len(study.cells), study.n_reps, len(study.estimator_names), len(todo), len(plan),
             study.config.runner.backend, study.n_jobs)
    progress = Progress(total, total - remaining, enabled=study.config.runner.progress)
    try:
        with runner.sigterm_as_interrupt(), contextlib.closing(runner.execute(study, todo)) as chunks:
            for chunk in chunks:
                store.write_chunk(study, chunk)
                progress.update(chunk)
    except KeyboardInterrupt as stop:  # a chunk cut short is not in the ledger, so it is redone
        raise RunInterrupted(getattr(stop, "signum", signal.SIGINT)) from None
    except ConfigError:  # a setting the runner found wrong (a scheduler it cannot reach)
        raise
    except Exception as error:  # a dead worker or scheduler: what is stored stays stored
        log.exception("the run broke off")
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise RunBrokeOff(f"{type(error).__name__}: {first_line}") from error
    finally:
        progress.close()


def run_until_precise(study: Study, store: RunStore) -> str:
    """``n_reps: auto``: grow the study round by round until the precision target is met;
    returns why it stopped."""
    while True:
        store.prepare(study)
        run_missing(study, store)
        n_reps, reason = next_n_reps(summarise(store.open()), study.precision, study.n_reps)
        if reason is not None:
            return reason
        log.info("precision not reached at %d replicates; growing to %d", study.n_reps, n_reps)
        study.n_reps = n_reps


def run_in_directory(study: Study, run_dir: Path) -> xr.Dataset:
    """Run (or resume) ``study`` in ``run_dir``; returns the stored results, lazily. The caller
    holds the run directory's lock (:func:`sims.run.lock.run_directory_lock`)."""
    store = open_store(study, run_dir)
    if study.auto_reps:
        reason = run_until_precise(study, store)
        store.record(stop_reason=reason)
        log.info("stopped: %s", reason)
    else:
        run_missing(study, store)
    return store.open()
