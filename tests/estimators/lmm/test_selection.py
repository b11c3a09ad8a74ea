"""Random-effects model selection estimators (Matuschek et al. 2017; Bates et al. 2015)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import estimators
import sims
from estimators.lmm.selection import LMMParsimonious, LMMSelectAIC, LMMSelectLRT, candidates

NAMES = {"max", "zcp", "zcp_no_subject_slope", "zcp_no_item_slope", "intercepts"}


def test_candidates():
    pool = candidates("y", "condition", ["subject", "item"])
    assert [c.name for c in pool] == ["max", "zcp", "zcp_no_subject_slope", "zcp_no_item_slope", "intercepts"]
    assert pool[0].formula == "y ~ condition + (1 + condition | subject) + (1 + condition | item)"
    assert pool[2].formula == "y ~ condition + (1 | subject) + (1 + condition || item)"
    assert [c.name for c in candidates("y", "x", ["g"])] == ["max", "zcp", "intercepts"]


def crossed(n_reps: int, seed: int, **params):
    dgp = sims.build("crossed", **params)
    return [dgp.generate(np.random.default_rng([seed, r])) for r in range(n_reps)]


@pytest.mark.parametrize("name", ["lmm_select_lrt", "lmm_select_aic", "lmm_parsimonious"])
def test_chosen_model_is_reported_and_does_not_depend_on_the_chunk(name):
    estimator = estimators.build(name)
    frames = crossed(6, seed=1)
    batch = estimator.fit_batch(frames)
    alone = [estimator.fit(frame) for frame in frames]
    for a, b in zip(batch, alone):
        assert a.extras["model"] in NAMES and a.extras == b.extras
        np.testing.assert_array_equal(a.estimate, b.estimate)
        np.testing.assert_array_equal(a.df, b.df)
        assert a.terms == ("Intercept", "condition")


def test_selection_follows_the_data():
    """No random slopes in the truth: backward LRT selection at alpha 0.05 (three tests) mostly
    ends at intercepts only; large correlated slopes: it keeps the maximal model."""
    flat = crossed(12, seed=2, subject_slope_sd=0.0, item_slope_sd=0.0, subject_correlation=0.0, item_correlation=0.0)
    steep = crossed(6, seed=3, subject_slope_sd=1.0, item_slope_sd=1.0, subject_correlation=0.8, item_correlation=-0.8,
                    n_subjects=30, n_items=20)
    assert Counter(r.extras["model"] for r in LMMSelectLRT(alpha_select=0.05).fit_batch(flat))["intercepts"] >= 8
    select = LMMSelectLRT()
    assert all(r.extras["model"] == "max" for r in select.fit_batch(steep))
    assert all(r.extras["model"] == "max" for r in LMMParsimonious().fit_batch(steep))
    assert Counter(r.extras["model"] for r in LMMSelectAIC().fit_batch(flat))["intercepts"] >= 8


def test_chosen_model_lands_in_the_results(small_study):
    from sims.run.dataset import build_dataset
    from sims.run import runner

    study = small_study("dgp=crossed", "n_reps=4", "runner.n_jobs=1", "estimators={select: lmm_select_aic}")
    ds = build_dataset(study, runner.run(study))
    assert set(np.asarray(ds["model"]).ravel()) <= NAMES
