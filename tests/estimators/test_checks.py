"""The conformance suite (estimators/checks.py) catches what it claims to: each broken
estimator below fails the check named for its defect and passes the others it should; a check
that does not apply is skipped with its reason, never counted as a pass."""
from __future__ import annotations

import unittest

import numpy as np
import pandas as pd
import pytest

import sims
from estimators.checks import (
    CHECKS,
    ChecksFailed,
    EstimatorCase,
    check_cluster_relabelling_invariance,
    check_consistency_on_large_draw,
    check_estimator,
    check_fit_batch_matches_fit,
    check_declared_deterministic,
    check_fit_idempotent,
    check_fit_leaves_params_and_data_alone,
    check_global_random_state_untouched,
    check_missing_column,
    check_missing_values,
    check_params_round_trip,
    check_result_schema,
    check_row_order_invariance,
    check_single_cluster,
    run_checks,
)
from estimators.ols import OLS
from estimators.result import FitResult

DGP = sims.build("clustered", n_subjects=8, n_trials=4)
DATA = DGP.generate(np.random.default_rng(1))


def case(estimator, **fields) -> EstimatorCase:
    return EstimatorCase(estimator, DATA, **fields)


class RenamedParameter(OLS):
    """Stores its parameter under another name: get_params cannot read it back."""

    def __init__(self, formula: str = "y ~ X", level: float = 0.05):
        super().__init__(formula=formula, alpha=level)


class MutatesData(OLS):
    def fit(self, data, rng=None):
        data["y"] = data["y"] + 0.0 * data["X"] - 1.0
        return super().fit(data, rng)


class GlobalRandom(OLS):
    def fit(self, data, rng=None):
        np.random.standard_normal()
        return super().fit(data, rng)


class Noisy(OLS):
    """Adds noise drawn from a fresh, unseeded generator: not reproducible."""

    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        return FitResult(result.terms, result.estimate + np.random.default_rng().normal(size=2) * 1e-3,
                         result.std_error, result.df, result.ci_lower, result.ci_upper, result.p_value)


class FirstRowsOnly(OLS):
    """Fits only the first 40 rows: depends on the row order."""

    def fit(self, data, rng=None):
        return super().fit(data.iloc[:40], rng)


class LabelWeighted(OLS):
    """Weights clusters by their label: depends on the labels, not just the partition."""

    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        return FitResult(result.terms, result.estimate + 1e-3 * data["subject"].min(), result.std_error,
                         result.df, result.ci_lower, result.ci_upper, result.p_value)


class KeyErrorOnMissing(OLS):
    def fit(self, data, rng=None):
        data["subject"]  # noqa: B018 - a plain KeyError instead of an InputError
        return super().fit(data, rng)


class NaNTolerant(OLS):
    def fit(self, data, rng=None):
        return super().fit(data.dropna(), rng)


class SilentSingleCluster(OLS):
    """Returns a failure instead of raising InputError when there is one cluster."""

    def fit(self, data, rng=None):
        if data[self.cluster].nunique() < 2:
            return FitResult.failure(("Intercept", "X"), "one cluster")
        return super().fit(data, rng)


class BatchOffByOne(OLS):
    def fit_batch(self, frames, rngs=None):
        return [self.fit(frame) for frame in frames[1:] + frames[:1]]


class Biased(OLS):
    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        return FitResult(result.terms, result.estimate + 10.0, result.std_error, result.df,
                         result.ci_lower + 10.0, result.ci_upper + 10.0, result.p_value)


class WrongShapes(OLS):
    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        return FitResult(result.terms, result.estimate, result.std_error[:1], result.df,
                         result.ci_lower, result.ci_upper, result.p_value)


def replicates():
    return tuple(DGP.generate(np.random.default_rng(seed)) for seed in (2, 3))


class DrawsThoughDeclaredNot(OLS):
    """Says it draws nothing, but shifts its estimates by a draw from the rng it is given."""

    def fit(self, data, rng=None):
        result = super().fit(data, rng)
        shift = 0.0 if rng is None else rng.normal()
        return FitResult(result.terms, result.estimate + shift, result.std_error, result.df,
                         result.ci_lower + shift, result.ci_upper + shift, result.p_value)


BROKEN = [
    (RenamedParameter(), check_params_round_trip, {}),
    (MutatesData(), check_fit_leaves_params_and_data_alone, {}),
    (GlobalRandom(), check_global_random_state_untouched, {}),
    (DrawsThoughDeclaredNot(), check_declared_deterministic, {}),
    (Noisy(), check_fit_idempotent, {}),
    (FirstRowsOnly(), check_row_order_invariance, {}),
    (LabelWeighted(vcov="CR1", cluster="subject"), check_cluster_relabelling_invariance, {}),
    (KeyErrorOnMissing(), check_missing_column, {}),
    (NaNTolerant(), check_missing_values, {}),
    (SilentSingleCluster(vcov="CR1", cluster="subject"), check_single_cluster, {}),
    (BatchOffByOne(), check_fit_batch_matches_fit, {"replicates": None}),
    (Biased(), check_consistency_on_large_draw, {"large_data": None}),
    (WrongShapes(), check_result_schema, {}),
]


def _fields(extra: dict) -> dict:
    fields = dict(extra)
    if "replicates" in fields:
        fields["replicates"] = replicates()
    if "large_data" in fields:
        large = sims.build("clustered", n_subjects=100)
        fields.update(large_data=large.generate(np.random.default_rng(4)), truth=large.truth())
    return fields


@pytest.mark.parametrize(("estimator", "check", "extra"), BROKEN, ids=[c.__name__ for _, c, _ in BROKEN])
def test_each_check_catches_its_defect(estimator, check, extra):
    subject = case(estimator, **_fields(extra))
    escaped = KeyError if isinstance(estimator, KeyErrorOnMissing) else AssertionError
    with pytest.raises(escaped):
        check(subject)
    for other in (check_fit_idempotent, check_result_schema):  # the defect is not everywhere
        if other is not check and not isinstance(estimator, (Noisy, WrongShapes, MutatesData)):
            other(subject)


def test_a_column_the_estimator_does_not_group_by_passes_the_single_cluster_check():
    check_single_cluster(case(OLS(vcov="iid"), groups=("subject",)))


def test_a_sound_estimator_passes_every_check():
    large = sims.build("clustered", n_subjects=100)
    report = check_estimator(OLS(vcov="CR2", cluster="subject"), DATA, replicates=replicates(),
                             large_data=large.generate(np.random.default_rng(4)), truth=large.truth())
    assert len(CHECKS) == 13
    assert report.passed == tuple(check.__name__ for check in CHECKS) and not report.skipped and not report.failed


def test_check_estimator_lists_every_failure():
    with pytest.raises(AssertionError) as failure:
        check_estimator(MutatesData(), DATA)
    assert "check_fit_leaves_params_and_data_alone" in str(failure.value)
    report = failure.value.report
    assert "check_fit_leaves_params_and_data_alone" in report.failed
    assert set(report.skipped) == {"check_fit_batch_matches_fit", "check_consistency_on_large_draw",
                                   "check_cluster_relabelling_invariance", "check_single_cluster"}  # OLS iid groups by nothing
    assert "(skipped check_fit_batch_matches_fit: no replicates" in str(failure.value)


SKIPPED = [
    (check_fit_batch_matches_fit, {}, "no replicates"),
    (check_consistency_on_large_draw, {}, "no large draw"),
    (check_cluster_relabelling_invariance, {"groups": ()}, "no grouping column"),
    (check_single_cluster, {"groups": ()}, "no grouping column"),
]


@pytest.mark.parametrize(("check", "fields", "reason"), SKIPPED, ids=[c.__name__ for c, _, _ in SKIPPED])
def test_a_check_that_does_not_apply_is_skipped_with_its_reason(check, fields, reason):
    with pytest.raises(unittest.SkipTest, match=reason):
        check(case(OLS(vcov="CR1", cluster="subject"), **fields))


def test_an_estimator_that_reads_no_column_skips_the_missing_value_check():
    class Constant(OLS):
        def fit(self, data, rng=None):
            return FitResult(("Intercept",), np.zeros(1), np.ones(1), np.full(1, np.inf), -np.ones(1), np.ones(1), np.ones(1))

    with pytest.raises(unittest.SkipTest, match="reads none"):
        check_missing_values(case(Constant()))


def test_check_estimator_reports_skipped_checks_apart():
    report = check_estimator(OLS(vcov="CR1", cluster="subject"), DATA)
    assert set(report.skipped) == {"check_fit_batch_matches_fit", "check_consistency_on_large_draw"}
    assert len(report.passed) == len(CHECKS) - 2 and not report.failed
    assert "2 skipped" in str(report) and "skipped check_consistency_on_large_draw: no large draw" in str(report)


def test_run_checks_counts_a_skip_neither_as_a_pass_nor_as_a_failure():
    def passes(subject):
        pass

    def does_not_apply(subject):
        raise unittest.SkipTest("not for this subject")

    def fails(subject):
        raise AssertionError("wrong")

    report = run_checks([passes, does_not_apply], "subject", "label")
    assert report.passed == ("passes",) and report.skipped == {"does_not_apply": "not for this subject"}
    with pytest.raises(ChecksFailed, match="label fails 1 check") as failure:
        run_checks([passes, does_not_apply, fails], "subject", "label")
    assert failure.value.report.failed == {"fails": "AssertionError: wrong"}
    assert failure.value.report.skipped == {"does_not_apply": "not for this subject"}


def test_groups_are_the_columns_grouping_parameters_name():
    assert case(OLS(vcov="CR1", cluster="subject")).grouping_columns() == ("subject",)
    assert case(OLS()).grouping_columns() == ()
    frame = pd.DataFrame({"y": [1.0], "g": ["a"]})
    assert EstimatorCase(OLS(vcov="CR1", cluster="g"), frame).grouping_columns() == ("g",)
    assert EstimatorCase(OLS(vcov="CR1", cluster="g"), frame, groups=()).grouping_columns() == ()
