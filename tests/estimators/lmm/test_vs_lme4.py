"""The mixed-model engine against lme4 / lmerTest on the committed R fixtures.

tests/reference/lmm.csv (tests/reference/README.md) and tests/reference_lmm/lmm_extra.csv
(tests/reference_lmm/make_lmm_references.R) hold, per dataset, formula and REML/ML, lme4's
estimates, SEs, Satterthwaite df, criterion, sigma, theta, VarCorr and singular verdict (the
extra file also AIC/BIC, likelihood-ratio tests and rePCA). Tolerances:

- criterion at the optimum no worse than lme4's, within 1e-6 relative;
- fixed effects, SEs, theta, variance components within 1e-4 relative (lme4's own optimum is
  determined to about 1e-5; the fixtures' README) where both reach the same optimum;
- Satterthwaite df within 1% of lmerTest (they agree to about 1e-5);
- the same singular verdicts.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators.lmm import LMM, MixedModel
from estimators.lmm.design import build_mixed_design
from estimators.lmm.lrt import likelihood_ratio_tests
from estimators.lmm.satterthwaite import satterthwaite_df
from helpers import TESTS

SOURCES = {
    "lmm": (TESTS / "reference" / "lmm.csv", TESTS / "reference" / "data"),
    "extra": (TESTS / "reference_lmm" / "lmm_extra.csv", TESTS / "reference_lmm" / "data"),
}


def load(source: str) -> pd.DataFrame:
    path, _ = SOURCES[source]
    return pd.read_csv(path)


def read_dataset(name: str) -> pd.DataFrame:
    for _, folder in SOURCES.values():
        path = folder / f"{name}.csv"
        if path.is_file():
            return pd.read_csv(path)
    raise FileNotFoundError(name)


def cases(source: str) -> list[tuple[str, str, str, bool]]:
    keys = load(source)[["dataset", "formula", "reml"]].drop_duplicates()
    return [(source, d, f, bool(r)) for d, f, r in keys.itertuples(index=False)]


ALL_CASES = cases("lmm") + cases("extra")
IDS = [f"{s}-{d}-{re.sub(r'[^A-Za-z0-9|+]+', '', f.split('~')[1])}-{'REML' if r else 'ML'}" for s, d, f, r in ALL_CASES]


@lru_cache(maxsize=None)
def fitted(dataset: str, formula: str, reml: bool):
    design, y = build_mixed_design(formula, read_dataset(dataset))
    model = MixedModel.from_design(design, reml)
    outcomes = model.outcomes(y[:, None])
    fit = model.fit(outcomes)[0]
    df = satterthwaite_df(model, outcomes, fit.theta[None], np.array([fit.sigma]))[0]
    return design, y, fit, df


def reference(source: str, dataset: str, formula: str, reml: bool) -> pd.DataFrame:
    ref = load(source)
    return ref[(ref.dataset == dataset) & (ref.formula == formula) & (ref.reml == reml)].reset_index(drop=True)


def group_key(group: str) -> str:
    """lme4 names the parts of a '||' term subject, subject.1, ... and a nesting b:a; both name
    the same grouping factor as 'subject' and 'a:b' here."""
    group = re.sub(r"\.\d+$", "", group)
    return ":".join(sorted(group.split(":")))


def theta_key(name: str) -> str:
    group, _, rest = name.partition(".")
    return f"{group_key(group)}.{rest}"


@pytest.fixture(params=ALL_CASES, ids=IDS)
def case(request):
    source, dataset, formula, reml = request.param
    design, y, fit, df = fitted(dataset, formula, reml)
    return reference(source, dataset, formula, reml), design, y, fit, df


def test_criterion_no_worse_than_lme4(case):
    ref, _, _, fit, _ = case
    lme4 = ref.criterion[0]
    assert (fit.criterion - lme4) / abs(lme4) <= 1e-6
    assert fit.log_likelihood == pytest.approx(ref.logLik[0], rel=1e-6)
    assert fit.converged


def test_fixed_effects_and_standard_errors(case):
    ref, design, _, fit, _ = case
    assert list(design.fixed_names) == list(ref.term)
    se = ref.std_error.to_numpy()
    # Relative to the SE for estimates near 0, whose relative error means nothing.
    assert np.all(np.abs(fit.beta - ref.estimate) <= 1e-4 * np.maximum(np.abs(ref.estimate), se))
    np.testing.assert_allclose(fit.std_errors, se, rtol=1e-4)


def test_variance_components_and_theta(case):
    ref, _, _, fit, _ = case
    assert fit.sigma == pytest.approx(ref.sigma[0], rel=1e-4)
    lme4_theta = dict(zip(map(theta_key, ref.theta_names[0].split(";")), map(float, ref.theta[0].split(";"))))
    ours = dict(zip(map(theta_key, fit.theta_names), fit.theta))
    assert ours.keys() == lme4_theta.keys()
    for name, value in lme4_theta.items():
        assert ours[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    lme4_vc = {}
    for entry in ref.varcomp[0].split(";"):
        group, name1, name2, value = entry.split(":") if entry.count(":") == 3 else _nested_entry(entry)
        lme4_vc[(group_key(group), name1, name2)] = float(value)
    ours_vc = {(group_key(g), a, b): v for g, a, b, v in fit.varcorr()}
    assert ours_vc.keys() == lme4_vc.keys()
    singular = bool(ref.is_singular[0])
    for key, value in lme4_vc.items():
        if key[2] and singular:
            continue  # a correlation on the boundary is +-1 or undefined: not the same optimum
        assert ours_vc[key] == pytest.approx(value, rel=1e-4, abs=1e-4 if key[2] else 1e-6), key


def _nested_entry(entry: str) -> tuple[str, str, str, str]:
    """'class:school:Intercept::0.4' -> ('class:school', 'Intercept', '', '0.4')."""
    parts = entry.split(":")
    return ":".join(parts[:-3]), parts[-3], parts[-2], parts[-1]


def test_singular_verdicts(case):
    ref, _, _, fit, _ = case
    assert fit.singular == bool(ref.is_singular[0])


# lmerTest's df are in the fixtures for the REML fits only.
WITH_DF = [(c, i) for c, i in zip(ALL_CASES, IDS) if not reference(*c).df_satterthwaite.isna().all()]


@pytest.mark.parametrize("case_key", [c for c, _ in WITH_DF], ids=[i for _, i in WITH_DF])
def test_satterthwaite_df(case_key):
    _, dataset, formula, reml = case_key
    df = fitted(dataset, formula, reml)[3]
    expected = reference(*case_key).df_satterthwaite.to_numpy()
    np.testing.assert_allclose(df, expected, rtol=0.01)
    np.testing.assert_allclose(df, expected, rtol=1e-3)  # what is actually reached


EXTRA = [c for c in ALL_CASES if c[0] == "extra"]


@pytest.mark.parametrize("case_key", EXTRA, ids=[i for i, c in zip(IDS, ALL_CASES) if c[0] == "extra"])
def test_information_criteria_and_pca(case_key):
    source, dataset, formula, reml = case_key
    ref = reference(source, dataset, formula, reml)
    _, _, fit, _ = fitted(dataset, formula, reml)
    assert fit.aic == pytest.approx(ref.aic[0], rel=1e-6)
    assert fit.bic == pytest.approx(ref.bic[0], rel=1e-6)
    lme4_pca = {}
    for entry in ref.pca[0].split(";"):
        group, _, values = entry.rpartition(":")
        lme4_pca[group_key(group)] = np.array([float(v) for v in values.split(",")])
    ours = {group_key(g): v for g, v in fit.pca.items()}
    assert ours.keys() == lme4_pca.keys()
    for group, values in lme4_pca.items():
        np.testing.assert_allclose(np.sort(ours[group])[::-1], np.sort(values)[::-1], atol=1e-4)


@pytest.mark.parametrize("case_key", [c for c in EXTRA if not c[3]], ids=lambda c: f"{c[1]}-{c[2]}")
def test_likelihood_ratio_tests(case_key):
    source, dataset, formula, reml = case_key
    ref = reference(source, dataset, formula, reml)
    design, y, fit, _ = fitted(dataset, formula, reml)
    statistic, p_value, converged = likelihood_ratio_tests(design, y[:, None], np.array([fit.criterion]))
    tested = ~ref.lrt_chisq.isna().to_numpy()
    assert converged.all()
    np.testing.assert_allclose(statistic[0, tested], ref.lrt_chisq[tested], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p_value[0, tested], ref.lrt_p[tested], rtol=1e-3, atol=1e-10)


def test_estimator_reports_lmertest_inference():
    """LMM(inference='satterthwaite') gives lmerTest's t-table: estimate, SE, df and p."""
    ref = reference("lmm", "crossed_within", "y ~ condition + (1 + condition | subject) + (1 + condition | item)", True)
    result = LMM(ref.formula[0], inference="satterthwaite").fit(read_dataset("crossed_within"))
    np.testing.assert_allclose(result.df, ref.df_satterthwaite, rtol=1e-4)
    np.testing.assert_allclose(result.p_value, ref.p_satterthwaite, rtol=1e-4)
