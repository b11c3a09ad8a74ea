"""Kenward-Roger, F tests, contrasts and whole-term LRTs against pbkrtest / lmerTest.

Fixtures: tests/reference_lmm/kr_*.csv, written by tests/reference_lmm/make_kr_references.R
(versions in kr_r_versions.txt) on the committed data sets (lme4's sleepstudy, Penicillin and
cake, nlme's Machines, and the simulated sets of tests/reference*/data). Every fit reaches
lme4's REML criterion to 1e-13 relative; what is asked, and what is reached:

| quantity | asked (relative) | reached |
|---|---|---|
| KR-adjusted SEs, the whole adjusted covariance, KR df per coefficient | 1e-5 | 1.2e-6 |
| KR t-test p-values | 1e-4 | 6e-6 |
| anova and contrast F statistics (both methods) | 1e-5 | 5e-7 |
| KR denominator df | 1e-5 | 1e-6 |
| Satterthwaite denominator df, one row | 2e-4 | 1.5e-4 |
| Satterthwaite denominator df, several rows | 2e-3 | 1.3e-3 |
| type III hypothesis matrices | 1e-6 absolute | 3e-8 (lmerTest rounds them to 7 digits) |

The Satterthwaite df are limited by lmerTest's numerical Hessian: on the crossed 30 x 20
maximal model ours are stable to 1e-7 over steps 1e-3..1e-5 and give the same value at lme4's
own optimum, 1.5e-4 (one row) and 1.3e-3 (2E/(E - q) amplifies it) from lmerTest's.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from estimators.lmm import LMM, MixedModel
from estimators.lmm.design import build_mixed_design
from estimators.lmm.hypotheses import type3_hypotheses
from estimators.lmm.kenward_roger import kenward_roger
from helpers import TESTS

FIXTURES = TESTS / "reference_lmm"
DATA = [FIXTURES / "data", TESTS / "reference" / "data"]


def read_dataset(name: str) -> pd.DataFrame:
    for folder in DATA:
        if (folder / f"{name}.csv").is_file():
            return pd.read_csv(folder / f"{name}.csv")
    raise FileNotFoundError(name)


def fixture(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / f"kr_{name}.csv")


def matrix(text: str) -> np.ndarray:
    return np.array([[float(v) for v in row.split(",")] for row in text.split(";")])


COEFFICIENTS = fixture("coefficients")
MODELS = list(COEFFICIENTS[["dataset", "formula"]].drop_duplicates().itertuples(index=False, name=None))
IDS = [f"{d}-{f.split('~')[1].strip()}" for d, f in MODELS]


@lru_cache(maxsize=None)
def fitted(dataset: str, formula: str):
    design, y = build_mixed_design(formula, read_dataset(dataset))
    model = MixedModel.from_design(design, True)
    fit = model.fit(model.outcomes(y[:, None]))[0]
    kr = kenward_roger(model, fit.theta[None], np.array([fit.sigma]))[0]
    return fit, kr


def r_order(dataset: str, formula: str, names) -> list[int]:
    """Positions in ``names`` (ours) of R's coefficients, in R's order."""
    terms = COEFFICIENTS[(COEFFICIENTS.dataset == dataset) & (COEFFICIENTS.formula == formula)].term
    return [list(names).index(t) for t in terms]


def in_our_order(L: np.ndarray, dataset: str, formula: str, names) -> np.ndarray:
    out = np.zeros((L.shape[0], len(names)))
    out[:, r_order(dataset, formula, names)] = L
    return out


def same_term(a: str, b: str) -> bool:
    return set(a.split(":")) == set(b.split(":"))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_kenward_roger_coefficients(model):
    dataset, formula = model
    ref = COEFFICIENTS[(COEFFICIENTS.dataset == dataset) & (COEFFICIENTS.formula == formula)]
    fit, kr = fitted(dataset, formula)
    assert (fit.criterion - ref.criterion.iloc[0]) / abs(ref.criterion.iloc[0]) < 1e-12
    order = r_order(dataset, formula, fit.fixed_names)
    np.testing.assert_allclose(kr.std_errors[order], ref.se_kr, rtol=1e-5)
    np.testing.assert_allclose(kr.coefficient_df()[order], ref.df_kr, rtol=1e-5)
    adjusted = matrix(ref.vcov_adj.iloc[0])
    np.testing.assert_allclose(kr.vcov_adjusted[np.ix_(order, order)], adjusted, rtol=1e-5, atol=1e-5 * np.abs(adjusted).max())
    result = LMM(formula, inference="kenward_roger").fit(read_dataset(dataset))
    np.testing.assert_allclose(result.std_error[order], ref.se_kr, rtol=1e-5)
    np.testing.assert_allclose(result.p_value[order], ref.p_kr, rtol=1e-4)


ANOVA = fixture("anova")
ANOVA_CASES = list(ANOVA[["dataset", "formula", "ddf"]].drop_duplicates().itertuples(index=False, name=None))


@pytest.mark.parametrize("case", ANOVA_CASES, ids=[f"{d}-{f.split('~')[1].strip()}-{m}" for d, f, m in ANOVA_CASES])
def test_anova_table(case):
    dataset, formula, ddf = case
    ref = ANOVA[(ANOVA.dataset == dataset) & (ANOVA.formula == formula) & (ANOVA.ddf == ddf)]
    fit, _ = fitted(dataset, formula)
    table = fit.anova(ddf)
    assert len(table) == len(ref)
    for _, expected in ref.iterrows():
        row = table[[same_term(t, expected.term) for t in table.term]].iloc[0]
        assert row.num_df == expected.num_df
        assert row.F == pytest.approx(expected.F, rel=1e-5)
        assert row.den_df == pytest.approx(expected.den_df, rel=1e-5 if ddf == "kenward_roger" else 2e-4)
        assert row.p_value == pytest.approx(expected.p_value, rel=1e-4 if ddf == "kenward_roger" else 1e-3)


@pytest.mark.parametrize("case", [c for c in ANOVA_CASES if c[2] == "satterthwaite"],
                         ids=[f"{d}-{f.split('~')[1].strip()}" for d, f, m in ANOVA_CASES if m == "satterthwaite"])
def test_type3_hypotheses_are_lmertests(case):
    """The same L, row for row (lmerTest's are rounded to 7 significant digits)."""
    dataset, formula, _ = case
    fit, _ = fitted(dataset, formula)
    design = fit.model.design
    ours = type3_hypotheses(design.fixed_names, design.X.T @ design.X)
    ref = ANOVA[(ANOVA.dataset == dataset) & (ANOVA.formula == formula) & (ANOVA.ddf == "satterthwaite")]
    for _, expected in ref.iterrows():
        [term] = [t for t in ours if same_term(t, expected.term)]
        L = in_our_order(matrix(expected.L), dataset, formula, design.fixed_names)
        np.testing.assert_allclose(ours[term], L, atol=1e-6)


CONTRASTS = fixture("contrasts")


@pytest.mark.parametrize("row", range(len(CONTRASTS)),
                         ids=[f"{r.dataset}-{r.contrast}-{r.ddf}" for r in CONTRASTS.itertuples()])
def test_contrasts(row):
    expected = CONTRASTS.iloc[row]
    fit, _ = fitted(expected.dataset, expected.formula)
    L = in_our_order(matrix(expected.L), expected.dataset, expected.formula, fit.fixed_names)
    result = fit.contrast(L, expected.ddf).iloc[0]
    kr = expected.ddf == "kenward_roger"
    if L.shape[0] == 1:
        assert result.estimate == pytest.approx(expected.estimate, rel=1e-5, abs=1e-5 * expected.std_error)
        assert result.std_error == pytest.approx(expected.std_error, rel=1e-5)
        assert result.t == pytest.approx(expected.t, rel=1e-5)
        assert result.df == pytest.approx(expected.df, rel=1e-5 if kr else 2e-4)
    else:
        assert result.num_df == expected.num_df
        assert result.F == pytest.approx(expected.F, rel=1e-5)
        assert result.den_df == pytest.approx(expected.den_df, rel=1e-5 if kr else 2e-3)
    assert result.p_value == pytest.approx(expected.p_value, rel=1e-4 if kr else 3e-3)


def test_kenward_roger_is_exact_in_balanced_designs():
    """Balanced designs: the KR df are the classical ANOVA df (sleepstudy's Days: 18 subjects - 1;
    factor3's within-subject condition: 240 - 20 - 2), the F test unscaled."""
    fit, kr = fitted("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    assert kr.coefficient_df()[1] == pytest.approx(17.0, rel=1e-12)
    fit, kr = fitted("factor3", "y ~ condition + (1 | subject)")
    F, q, df = kr.f_test(np.eye(3)[1:], fit.beta)
    assert (q, df) == (2, pytest.approx(218.0, rel=1e-12))
    wald = fit.beta[1:] @ np.linalg.solve(fit.vcov[1:, 1:], fit.beta[1:]) / 2
    assert F == pytest.approx(wald, rel=1e-10)
    assert fit.anova("kenward_roger").p_value[0] == pytest.approx(stats.f.sf(F, 2, 218.0), rel=1e-10)
