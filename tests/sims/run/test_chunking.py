"""runner.chunk_size=auto: the size follows the measured cost of a replicate, within bounds, and
a store keeps the size it was created with."""
from __future__ import annotations

import pytest

from sims.run import chunking, runner
from sims.run.rundir import open_store

OLS = "estimators={ols: ols}"


@pytest.mark.parametrize("size, expected", [(0, 25), (30, 25), (60, 50), (240, 200), (260, 250),
                                            (999, 500), (4_000, 2_500), (10**9, chunking.MAX_AUTO)])
def test_sizes_are_rounded_down_to_the_series(size, expected):
    assert chunking.rounded_down(size) == expected


def pilot_costs(monkeypatch, seconds: float) -> None:
    monkeypatch.setattr(chunking, "seconds_per_replicate", lambda study: seconds)


def test_the_size_aims_at_chunk_seconds(monkeypatch, small_study):
    pilot_costs(monkeypatch, 0.004)  # 2 s per task / 4 ms = 500 replicates
    study = small_study("n_reps=100000", OLS, "runner.n_jobs=2")
    assert chunking.auto_chunk_size(study) == 500
    study = small_study("n_reps=100000", OLS, "runner.n_jobs=2", "runner.chunk_seconds=0.5")
    assert chunking.auto_chunk_size(study) == 100


def test_slow_replicates_get_the_smallest_size(monkeypatch, small_study):
    pilot_costs(monkeypatch, 1.0)
    assert chunking.auto_chunk_size(small_study("n_reps=1000", OLS, "runner.n_jobs=2")) == chunking.MIN_AUTO


def test_every_worker_gets_several_tasks(monkeypatch, small_study):
    pilot_costs(monkeypatch, 1e-6)  # cheap replicates: the number of tasks bounds the size
    study = small_study("n_reps=20000", OLS, "runner.n_jobs=2")
    size = chunking.auto_chunk_size(study)
    assert len(runner.chunk_plan(study, size)) >= chunking.TASKS_PER_WORKER * 2
    assert size == 2_500


def test_an_auto_sized_study_gets_a_divisor_of_its_step(monkeypatch, small_study):
    pilot_costs(monkeypatch, 1e-6)
    study = small_study("n_reps=auto", OLS, "runner.n_jobs=2", "+precision={step: 150, min_reps: 3000}")
    size = chunking.auto_chunk_size(study)
    assert 150 % size == 0 and size == 150


def test_a_small_study_is_one_chunk_without_a_pilot(monkeypatch, small_study):
    monkeypatch.setattr(chunking, "seconds_per_replicate", lambda study: pytest.fail("no pilot expected"))
    assert chunking.auto_chunk_size(small_study("n_reps=20", OLS)) == 20


def test_the_pilot_times_every_cell(small_study):
    study = small_study("n_reps=100", OLS, "grid.dgp.n_subjects=[6,12]")
    assert chunking.seconds_per_replicate(study) > 0


def test_a_resumed_store_keeps_its_chunk_size(small_study, tmp_path):
    first = small_study("n_reps=40", OLS, "runner.chunk_size=10", "runner.n_jobs=1")
    open_store(first, tmp_path)  # creates the store
    runner.release_workers(first)
    study = small_study("n_reps=60", OLS, "runner.n_jobs=1")  # auto
    store = open_store(study, tmp_path)
    assert study.chunk_size == 10 == store.rep_chunk
    assert runner.chunk_plan(study, store.rep_chunk)[-1] == (0, range(50, 60))


@pytest.mark.parametrize("value", ["big", 0, 2.5])
def test_a_bad_chunk_size_is_refused(small_study, value):
    with pytest.raises(Exception, match="runner.chunk_size"):
        small_study(f"runner.chunk_size={value}")


def test_chunk_seconds_must_be_positive(small_study):
    with pytest.raises(Exception, match="runner.chunk_seconds"):
        small_study("runner.chunk_seconds=0")
