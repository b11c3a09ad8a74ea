"""Failures are data: a raising fit becomes a ``failed`` status and the study finishes."""
from __future__ import annotations

import numpy as np

from analysis.measures import summarise
from sims.run.dataset import build_dataset
from estimators.result import Status
from sims.run import runner
from sims.run.seeding import data_rng
from helpers.cli import ALLOW_HELPERS


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
