"""F1, F2, F1xF2 and min F' (estimators/clark.py) beyond the afex fixture: the t-tests they
reduce to with two conditions, designs read off the data, and their refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import estimators
import sims
from estimators.clark import ClarkTest, min_f_prime
from estimators.design import InputError
from helpers import REFERENCE, TESTS

WITHIN = pd.read_csv(REFERENCE / "data" / "crossed_within.csv")


def test_f1_is_the_paired_t_test_on_subject_means():
    means = WITHIN.groupby(["subject", "condition"])["y"].mean().unstack()
    expected = stats.ttest_rel(means[0.5], means[-0.5])
    result = ClarkTest("F1").fit(WITHIN)
    np.testing.assert_allclose(result.estimate / result.std_error, [expected.statistic], rtol=1e-12)
    np.testing.assert_allclose(result.p_value, [expected.pvalue], rtol=1e-10)
    low, high = stats.ttest_rel(means[0.5], means[-0.5]).confidence_interval(0.95)
    np.testing.assert_allclose([result.ci_lower[0], result.ci_upper[0]], [low, high], rtol=1e-10)


def test_between_subject_condition_is_a_two_sample_test():
    data = WITHIN.assign(condition=np.where(WITHIN["subject"] % 3 == 0, 0.5, -0.5))
    means = data.groupby("subject").agg(y=("y", "mean"), condition=("condition", "first"))
    expected = stats.ttest_ind(means.y[means.condition == 0.5], means.y[means.condition == -0.5])
    result = ClarkTest("F1").fit(data)
    np.testing.assert_allclose(result.estimate / result.std_error, [expected.statistic], rtol=1e-12)
    assert result.df[0] == len(means) - 2


def test_decision_rules_report_no_standard_error_but_count_as_ok():
    f1, f2 = ClarkTest("F1").fit(WITHIN), ClarkTest("F2").fit(WITHIN)
    both = ClarkTest("F1xF2").fit(WITHIN)
    assert both.status == estimators.Status.ok and both.p_value[0] == max(f1.p_value[0], f2.p_value[0])
    assert np.isnan([both.std_error[0], both.ci_lower[0], both.ci_upper[0], both.df[0]]).all()
    assert "no standard error" in both.message
    minf = ClarkTest("minF").fit(WITHIN)
    F, df = min_f_prime(*(((r.estimate / r.std_error) ** 2)[0] for r in (f1, f2)), f1.df[0], f2.df[0])
    assert minf.status == estimators.Status.ok and minf.df[0] == df
    np.testing.assert_allclose(minf.p_value, [stats.f.sf(F, 1, df)], rtol=1e-12)
    assert minf.p_value[0] >= max(f1.p_value[0], f2.p_value[0])  # min F' is the conservative bound


def test_min_f_prime_formula():
    F, df = min_f_prime(8.0, 4.0, 23.0, 11.0)
    assert F == pytest.approx(8 * 4 / 12) and df == pytest.approx(144 / (64 / 11 + 16 / 23))


@pytest.mark.parametrize("layout", ["counterbalanced", "between_items", "full"])
def test_every_crossed_layout_fits(layout):
    data = sims.build("crossed", layout=layout).generate(np.random.default_rng(1))
    for test in ("F1", "F2", "F1xF2", "minF"):
        result = ClarkTest(test).fit(data)
        assert result.terms == ("condition",) and np.isfinite(result.p_value).all()


def test_refusals_name_the_column():
    with pytest.raises(InputError, match="'condition'.*3 level"):
        ClarkTest("F1").fit(WITHIN.assign(condition=WITHIN["item"] % 3))
    mixed = WITHIN[~((WITHIN["item"] == 1) & (WITHIN["condition"] == 0.5))]
    with pytest.raises(InputError, match="'item'.*neither within"):
        ClarkTest("F2").fit(mixed)
    with pytest.raises(InputError, match="'item'"):
        ClarkTest("F1").fit(WITHIN.drop(columns="item"))
    with pytest.raises(ValueError, match="^test:"):
        ClarkTest("F3")


# --- proportions and empirical logits of a 0/1 outcome --------------------------------------

ACCURACY = pd.read_csv(TESTS / "reference_glm" / "data" / "crossed_accuracy.csv")
ANOVA_PROPORTIONS = pd.read_csv(TESTS / "reference_glm" / "anova_proportions.csv", keep_default_na=False)


@pytest.mark.parametrize("transform", ["none", "elogit"])
@pytest.mark.parametrize("test", ["F1", "F2"])
def test_proportions_and_empirical_logits_match_r_aov(test, transform):
    """R's aov(dv ~ condition + Error(unit/condition)) on the by-unit proportions or empirical
    logits (tests/reference_glm/make_references.R)."""
    expected = ANOVA_PROPORTIONS[(ANOVA_PROPORTIONS["test"] == test) & (ANOVA_PROPORTIONS["transform"] == transform)].iloc[0]
    result = ClarkTest(test, transform=transform).fit(ACCURACY)
    np.testing.assert_allclose(result.estimate[0], expected.estimate, rtol=1e-10)
    np.testing.assert_allclose((result.estimate[0] / result.std_error[0]) ** 2, expected.F, rtol=1e-10)
    np.testing.assert_allclose(result.p_value[0], expected.p_value, rtol=1e-8)
    assert result.df[0] == expected.df


def test_empirical_logit_needs_a_binary_outcome():
    data = ACCURACY.assign(y=ACCURACY.y * 0.5)
    with pytest.raises(InputError, match="^dv column 'y' has values other than 0 and 1"):
        ClarkTest("F1", transform="elogit").fit(data)
    with pytest.raises(ValueError, match="^transform:"):
        ClarkTest("F1", transform="logit")
