"""LMM as a clustersim estimator: configs, parameters, statuses, intervals, statsmodels parity."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import estimators
import sims
from estimators.lmm import LMM
from estimators.result import Status
from estimators.presets import ConfigError
from helpers import REFERENCE

DATA = REFERENCE / "data"
PRESETS = {
    "lmm": "y ~ X + (1 | subject)",
    "lmm_ri": "y ~ X + (1 | subject)",
    "lmm_rs": "y ~ X + (1 + X | subject)",
    "lmm_max": "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
    "lmm_zcp": "y ~ condition + (1 + condition || subject) + (1 + condition || item)",
    "lmm_ri_crossed": "y ~ condition + (1 | subject) + (1 | item)",
    "lmm_subjects_only": "y ~ condition + (1 + condition | subject)",
}


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_on_this_engine(name):
    estimator = estimators.build(name)
    assert isinstance(estimator, LMM) and estimator.formula == PRESETS[name] and estimator.reml
    assert estimator == estimator.clone()


def test_presets_fit_their_data():
    crossed = pd.read_csv(DATA / "crossed_within.csv")
    for name in ("lmm_max", "lmm_zcp", "lmm_ri_crossed", "lmm_subjects_only"):
        result = estimators.build(name).fit(crossed)
        assert result.terms == ("Intercept", "condition") and np.isfinite(result.df).all()


@pytest.mark.parametrize("params, key", [
    ({"inference": "kenward"}, "inference"),
    ({"formula": "y ~ X + (1 | subject"}, "formula"),
    ({"formula": "y ~ X"}, "formula"),
    ({"reml": "yes"}, "reml"),
    ({"alpha": 1.5}, "alpha"),
])
def test_invalid_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=rf"^estimator\.lmm\.{key}: "):
        estimators.build("lmm", **params)


def test_missing_grouping_column_fails_before_a_study():
    frame = sims.build("clustered").generate(np.random.default_rng(0))
    with pytest.raises(ValueError, match="grouping column 'item'"):
        estimators.build("lmm", formula="y ~ X + (1 | item)").fit(frame)


def test_singular_fit_is_a_valid_singular_status():
    result = LMM("y ~ x + (1 + x | cluster)", inference="satterthwaite").fit(pd.read_csv(DATA / "singular.csv"))
    assert result.status == Status.singular and "singular" in result.message
    assert np.isfinite(result.estimate).all() and np.isfinite(result.df).all()


def test_non_convergence_is_reported(monkeypatch):
    import estimators.lmm.fit as fit_module

    monkeypatch.setattr(fit_module, "minimize_batch", partial(fit_module.minimize_batch, max_iter=1))
    result = LMM("y ~ condition + (1 + condition | subject) + (1 | item)").fit(pd.read_csv(DATA / "crossed_between.csv"))
    assert result.status == Status.not_converged and np.isfinite(result.estimate).all()


@pytest.mark.parametrize("inference", ["wald_z", "satterthwaite", "lrt"])
def test_intervals_agree_with_the_test(inference):
    """The interval excludes 0 exactly when p < alpha (for the LRT: nearly always, as the Wald
    and LR tests are asymptotically equivalent); the reference law is t(df) or N(0, 1)."""
    dgp = sims.build("clustered", slope=0.5)
    frames = [dgp.generate(np.random.default_rng(seed)) for seed in range(30)]
    results = LMM("y ~ X + (1 + X | subject)", inference=inference, alpha=0.1).fit_batch(frames)
    excludes = np.array([r.ci_lower[1] > 0 or r.ci_upper[1] < 0 for r in results])
    rejects = np.array([r.p_value[1] < 0.1 for r in results])
    if inference == "lrt":
        assert np.mean(excludes == rejects) >= 0.9
        assert all(np.isinf(r.df).all() for r in results)
        return
    np.testing.assert_array_equal(excludes, rejects)
    r = results[0]
    t = r.estimate / r.std_error
    np.testing.assert_allclose(r.p_value, 2 * stats.t.sf(np.abs(t), r.df), rtol=1e-12)
    if inference == "wald_z":
        assert np.isinf(r.df).all()
    else:
        assert np.all((r.df > 15) & (r.df < 30))  # about 23 = subjects - 1 for the slope


def test_same_numbers_as_statsmodels_mixedlm():
    """lmm_ri / lmm_rs fit the models of mixedlm_ri / mixedlm_rs: same REML estimates and Wald z
    inference, up to statsmodels' optimiser tolerance."""
    frames = [sims.build("clustered").generate(np.random.default_rng(seed)) for seed in range(3)]
    for ours, theirs in (("lmm_ri", "mixedlm_ri"), ("lmm_rs", "mixedlm_rs")):
        for frame in frames:
            a, b = estimators.build(ours).fit(frame), estimators.build(theirs).fit(frame)
            assert a.terms == b.terms
            np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-5)
            np.testing.assert_allclose(a.std_error, b.std_error, rtol=2e-3)
            np.testing.assert_array_equal(a.df, b.df)


@pytest.mark.slow
def test_seed_experiment_conclusions_match_statsmodels(small_study):
    """The default study on this engine and on statsmodels: every measure of lmm_ri / lmm_rs
    within 2 Monte Carlo SEs of mixedlm_ri / mixedlm_rs (they fit the same models)."""
    from analysis import summarise
    from sims.run.dataset import build_dataset
    from sims.run import runner

    study = small_study("n_reps=200", "runner.n_jobs=1",
                        "estimators={lmm_ri: lmm_ri, lmm_rs: lmm_rs, mixedlm_ri: mixedlm_ri, mixedlm_rs: mixedlm_rs}")
    summary = summarise(build_dataset(study, runner.run(study)))
    table = summary.to_dataframe().reset_index() if hasattr(summary, "to_dataframe") else summary
    for ours, theirs in (("lmm_ri", "mixedlm_ri"), ("lmm_rs", "mixedlm_rs")):
        a = table[(table.estimator == ours) & (table.term == "X")].set_index("measure")
        b = table[(table.estimator == theirs) & (table.term == "X")].set_index("measure")
        # relprec is relative to the first estimator (lmm_ri): not a like-for-like comparison.
        common = [m for m in a.index.intersection(b.index) if m != "relprec"]
        assert {"bias", "empse", "modelse", "coverage"} <= set(common)
        for measure in common:
            tolerance = 2 * np.hypot(a.mcse[measure], b.mcse[measure]) + 1e-9
            assert abs(a.value[measure] - b.value[measure]) <= tolerance, measure
