"""Failures are data: a raising fit becomes a ``failed`` status and the study finishes."""
from __future__ import annotations

import numpy as np

from analysis.measures import summarise
from sims.run.dataset import build_dataset
from estimators.result import Status
from sims.run import runner
from sims.run.seeding import data_rng
from helpers.cli import ALLOW_HELPERS
from helpers.misbehaving import first_outcomes


def test_raising_estimator_leaves_failed_statuses_and_a_finished_study(small_study):
    study = small_study(
        "n_reps=40", "runner.n_jobs=2", "runner.chunk_size=8",
        "estimators={ols: ols, flaky: {_target_: helpers.misbehaving.FlakyOLS, threshold: 20.0}}", ALLOW_HELPERS,
    )
    ds = build_dataset(study, runner.run(study))
    first_y = np.array([
        study.cells[0].dgp.generate(data_rng(study.seed, 0, rep))["y"].iloc[0] - 800.0
        for rep in range(study.n_reps)
    ])
    raised, gave_up = first_y > 20.0, first_y < -20.0
    assert raised.any() and gave_up.any() and (~raised & ~gave_up).any()

    status = ds["status"].sel(estimator="flaky").values
    np.testing.assert_array_equal(status == Status.failed, raised)
    np.testing.assert_array_equal(status == Status.not_converged, gave_up)
    assert (ds["status"].sel(estimator="ols").values == Status.ok).all()
    messages = ds["message"].sel(estimator="flaky").values
    assert all(m.startswith("RuntimeError: boom") for m in messages[raised])

    flaky = ds["estimate"].sel(estimator="flaky")
    ols = ds["estimate"].sel(estimator="ols")
    fine = ~raised & ~gave_up
    assert np.isnan(flaky.values[raised]).all()
    np.testing.assert_array_equal(flaky.values[fine], ols.values[fine])

    summary = summarise(ds)
    rate = summary["value"].sel(estimator="flaky", term="X", measure="failure_rate").item()
    assert rate == (raised | gave_up).mean()
    assert summary["n"].sel(estimator="flaky", term="X", measure="bias").item() == fine.sum()


BAD_RESULTS = {
    "none": "the estimator returned NoneType, not a FitResult",
    "dict": "the estimator returned dict, not a FitResult",
    "short": "malformed FitResult: std_error has shape (1,) for 2 term(s)",
    "all_nan": "no finite estimate with status ok",
    "infinite": "infinite estimate of Intercept with status ok",
    "system_exit": "SystemExit: 4",
    "keyboard_interrupt": "KeyboardInterrupt",
}


def test_malformed_results_and_exits_in_a_fit_become_failed(small_study):
    """None, a dict, a short array, estimates that are all NaN or infinite under status ok, and
    SystemExit or KeyboardInterrupt raised in a fit: each is its replicate's ``failed`` status
    with the reason; the study finishes and every other replicate keeps its numbers."""
    bad = first_outcomes([2, 9])
    estimators = ", ".join(f"{b}: {{_target_: helpers.misbehaving.BadResultOLS, behaviour: {b}, first_outcomes: {bad}}}"
                           for b in BAD_RESULTS)
    study = small_study("n_reps=12", "runner.n_jobs=1", "runner.chunk_size=4", f"estimators={{ols: ols, {estimators}}}",
                        ALLOW_HELPERS)
    ds = build_dataset(study, runner.run(study))
    hit = np.isin(np.arange(12), [2, 9])
    ols = ds["estimate"].sel(estimator="ols").values
    for behaviour, reason in BAD_RESULTS.items():
        status = ds["status"].sel(estimator=behaviour).values
        np.testing.assert_array_equal(status == Status.failed, hit, err_msg=behaviour)
        assert (status[~hit] == Status.ok).all(), behaviour
        assert list(ds["message"].sel(estimator=behaviour).values[hit]) == [reason] * 2
        np.testing.assert_array_equal(ds["estimate"].sel(estimator=behaviour).values[~hit], ols[~hit])


def test_a_nan_beside_finite_estimates_keeps_its_status():
    """min F' reports no intercept (NaN) beside a finite condition effect: not a failure."""
    fit = runner.checked(runner.FitResult.failure(("Intercept", "X"), ""))
    assert fit.status == Status.failed  # all NaN, status failed already: unchanged
    ok = runner.FitResult(("Intercept", "X"), *(np.array([np.nan, 1.0]) for _ in range(6)))
    assert runner.checked(ok) is ok


def _assert_same_chunk(got, expected):
    assert got.terms == expected.terms
    assert got.values.keys() == expected.values.keys()
    for column, values in expected.values.items():
        np.testing.assert_array_equal(got.values[column], values, err_msg=column)
    np.testing.assert_array_equal(got.status, expected.status)
    assert got.message == expected.message and got.extras == expected.extras


def test_a_batch_is_collected_as_one_result_at_a_time_would_be():
    """A batched fit's results are stacked column by column (runner._stacked); the chunk is
    the one that checking and placing them one by one gives, also when one of them is
    infinite, has extras, lacks a term or is not a FitResult (then it is done one by one)."""
    rng = np.random.default_rng(7)
    terms = ("Intercept", "X")
    statuses = [Status.ok, Status.singular, Status.not_converged, Status.ok, Status.ok, Status.ok]
    batch = [runner.FitResult.of_batch(terms, *rng.normal(size=(6, 2)), status, f"m{r}")
             for r, status in enumerate(statuses)]
    elapsed = np.full(len(batch), 1e-4)

    def one_by_one(results):
        return runner._collect_one_by_one([runner.checked(r) for r in results], elapsed)

    assert runner._stacked(batch) is not None
    _assert_same_chunk(runner._collect(batch, elapsed), one_by_one(batch))
    infinite = runner.FitResult.of_batch(terms, np.array([np.inf, 1.0]), *rng.normal(size=(5, 2)), Status.ok, "")
    with_extras = runner.FitResult(terms, *rng.normal(size=(6, 2)), extras={"n_iter": 3})
    one_term = runner.FitResult(terms[1:], *rng.normal(size=(6, 1)))
    for odd in [infinite, with_extras, one_term, None]:
        results = batch[:3] + [odd] + batch[3:]
        assert runner._stacked(results) is None
        chunk = runner._collect(results, np.full(len(results), 1e-4))
        _assert_same_chunk(chunk, one_by_one(results))
        if odd is infinite:
            assert chunk.status[3] == Status.failed and chunk.message[3].startswith("infinite estimate of Intercept")
    assert chunk.status[3] == Status.failed and chunk.message[3].startswith("the estimator returned NoneType")
