"""Random-effects model selection estimators (Matuschek et al. 2017; Bates et al. 2015)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators.lmm.selection import LMMParsimonious, LMMSelectAIC, LMMSelectLRT, candidates
from estimators.lmm.structures import factors_with_slopes

NAMES = {"max", "zcp", "zcp_no_subject_slope", "zcp_no_item_slope", "intercepts"}


def test_candidates():
    pool = candidates("y", "condition", ["subject", "item"])
    assert [c.name for c in pool] == ["max", "zcp", "zcp_no_subject_slope", "zcp_no_item_slope", "intercepts"]
    assert pool[0].formula == "y ~ condition + (1 + condition | subject) + (1 + condition | item)"
    assert pool[2].formula == "y ~ condition + (1 | subject) + (1 + condition || item)"
    assert [c.name for c in candidates("y", "x", ["g"])] == ["max", "zcp", "intercepts"]


def test_factors_with_slopes_agree_with_pandas_nunique():
    """A factor gets a slope when the predictor takes two or more values (missing ones not
    counted) within one of its levels: numeric, string and missing codes, against groupby."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = 12
        data = pd.DataFrame({
            "x": rng.choice([0.0, 1.0, np.nan], size=n, p=[0.45, 0.45, 0.1]),
            "s": rng.choice(["a", "b", "c", "d"], size=n),
            "g": rng.integers(0, 6, size=n),
            "w": np.repeat([0.5, -0.5], n // 2),
            "h": np.repeat(np.arange(4), 3),
        })
        for predictor in ("x", "s", "w"):
            expected = tuple(f for f in ("g", "h", "s") if f != predictor
                             and (data.groupby(f, sort=False)[predictor].nunique() > 1).any())
            assert factors_with_slopes(data, predictor, [f for f in ("g", "h", "s") if f != predictor]) == expected


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
