"""LMM's ``test`` option: F tests reported as result rows ``F:<name>``, and whole-term
likelihood-ratio tests against lme4 (tests/reference_lmm/kr_lrt.csv)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import estimators
from estimators.design import InputError
from estimators.lmm import LMM
from estimators.presets import ConfigError
from helpers import TESTS
from sims.api import run_study

DATA = TESTS / "reference_lmm" / "data"
CAKE = "angle ~ recipe * temp + (1 | recipe:replicate)"
TESTS_OF_CAKE = {"recipe": "recipe", "temp": "temp", "slopes": ["recipe[T.B]:temp", "recipe[T.C]:temp"],
                 "b_vs_c": [[0, 1, -1, 0, 0, 0]]}


@pytest.fixture(scope="module")
def cake() -> pd.DataFrame:
    return pd.read_csv(DATA / "cake.csv")


@pytest.mark.parametrize("inference", ["satterthwaite", "kenward_roger"])
def test_rows_are_the_anova_and_contrast_tests(cake, inference):
    result = LMM(CAKE, inference=inference, test=TESTS_OF_CAKE).fit(cake)
    fit = LMM(CAKE).fit_model(cake)
    assert result.terms == fit.fixed_names + ("F:recipe", "F:temp", "F:slopes", "F:b_vs_c")
    rows = result.to_frame().set_index("term")
    table = fit.anova(inference).set_index("term")
    for name in ("recipe", "temp"):
        assert rows.loc[f"F:{name}", "estimate"] == pytest.approx(table.loc[name, "F"], rel=1e-12)
        assert rows.loc[f"F:{name}", "df"] == pytest.approx(table.loc[name, "den_df"], rel=1e-6)
        assert rows.loc[f"F:{name}", "p_value"] == pytest.approx(table.loc[name, "p_value"], rel=1e-5)
    slopes = fit.contrast(np.eye(6)[4:], inference).iloc[0]
    assert rows.loc["F:slopes", "estimate"] == pytest.approx(slopes.F, rel=1e-12)
    assert rows.loc["F:slopes", "df"] == pytest.approx(slopes.den_df, rel=1e-6)
    one = fit.contrast([[0, 1, -1, 0, 0, 0]], inference).iloc[0]
    if inference == "satterthwaite":  # one row: F = t^2 with the t test's df
        assert rows.loc["F:b_vs_c", "estimate"] == pytest.approx(one.t**2, rel=1e-12)
        assert rows.loc["F:b_vs_c", "df"] == pytest.approx(one.df, rel=1e-6)
    assert np.isnan(rows.loc[[t for t in rows.index if t.startswith("F:")], ["std_error", "ci_lower", "ci_upper"]]).all().all()


def test_wald_rows_are_chi_square_over_q(cake):
    result = LMM(CAKE, inference="wald_z", test={"slopes": ["recipe[T.B]:temp", "recipe[T.C]:temp"]}).fit(cake)
    fit = LMM(CAKE).fit_model(cake)
    b, C = fit.beta[4:], fit.vcov[4:, 4:]
    W = b @ np.linalg.solve(C, b)
    assert result.estimate[-1] == pytest.approx(W / 2, rel=1e-10)
    assert np.isinf(result.df[-1])
    assert result.p_value[-1] == pytest.approx(stats.chi2.sf(W, 2), rel=1e-10)


LRT = pd.read_csv(TESTS / "reference_lmm" / "kr_lrt.csv")
LRT_MODELS = list(LRT[["dataset", "formula"]].drop_duplicates().itertuples(index=False, name=None))


@pytest.mark.parametrize("model", LRT_MODELS, ids=[f"{d}-{f.split('~')[1].strip()}" for d, f in LRT_MODELS])
def test_whole_term_likelihood_ratio_tests_match_lme4(model):
    """ML fits with and without all columns of a term, as anova(m0, m1) in R: chi-square with
    q df (1e-4 relative, as the one-column tests of test_vs_lme4.py)."""
    dataset, formula = model
    ref = LRT[(LRT.dataset == dataset) & (LRT.formula == formula)]
    folder = DATA if (DATA / f"{dataset}.csv").is_file() else TESTS / "reference" / "data"
    tests = {term: term for term in ref.term}
    result = LMM(formula, inference="lrt", test=tests).fit(pd.read_csv(folder / f"{dataset}.csv"))
    rows = result.to_frame().set_index("term")
    for expected in ref.itertuples():
        row = rows.loc[f"F:{expected.term}"]
        assert row.estimate * expected.df == pytest.approx(expected.chisq, rel=1e-4, abs=1e-6)
        assert row.p_value == pytest.approx(expected.p_value, rel=1e-4, abs=1e-10)


@pytest.mark.parametrize("test", [
    "condition", {}, {"": "condition"}, {"a": 3}, {"a": [[0, 1], [1]]}, {"a": [[True, False]]}, {"a": []},
])
def test_malformed_tests_name_the_key(test):
    with pytest.raises(ConfigError, match=r"^estimator\.lmm\.test: "):
        estimators.build("lmm", test=test)


@pytest.mark.parametrize("test, message", [
    ({"a": "nothing"}, "'nothing' is neither a term nor a coefficient"),
    ({"a": ["recipe[T.Z]"]}, "coefficient 'recipe\\[T.Z\\]' is not a fixed effect"),
    ({"a": [[1, 0]]}, "the contrast matrix has 2 columns; the fixed effects are 6"),
])
def test_tests_the_design_lacks_are_input_errors(cake, test, message):
    with pytest.raises(InputError, match=message):
        LMM(CAKE, test=test).fit(cake)


def test_a_row_name_that_is_a_coefficient_is_refused():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"F": rng.normal(size=80), "x": rng.normal(size=80), "g": np.repeat(np.arange(8), 10)})
    frame["y"] = rng.normal(size=80)
    with pytest.raises(InputError, match="its row 'F:x' has the name of a fixed effect"):
        LMM("y ~ F * x + (1 | g)", test={"x": "x"}).fit(frame)


def test_a_study_measures_the_rejection_rate_of_an_f_test():
    """The F row is a term of the study (fixed by the dry run) with its own rejection rate."""
    ds = run_study(["dgp=crossed", "dgp.n_subjects=8", "dgp.n_items=8", "dgp.effect=0.0", "n_reps=6",
                    "runner.n_jobs=1", "estimators={kr: {preset: lmm_ri_crossed, inference: kenward_roger, "
                    "test: {cond: condition}}}"])
    assert "F:cond" in ds.term.values
    row = ds.sel(term="F:cond", estimator="kr")
    t = ds.sel(term="condition", estimator="kr")
    assert np.isfinite(row.p_value).all() and np.isnan(row.std_error).all()
    # a one-df KR F is the square of the KR t statistic, scaled by lambda (1 here: balanced)
    np.testing.assert_allclose(row.estimate, (t.estimate / t.std_error) ** 2, rtol=1e-6)


def test_anova_refuses_kenward_roger_for_ml_fits_and_unknown_methods(cake):
    ml = LMM(CAKE, reml=False).fit_model(cake)
    with pytest.raises(ValueError, match=r"^ddf: kenward_roger needs a REML fit"):
        ml.anova("kenward_roger")
    with pytest.raises(ValueError, match=r"^ddf: must be one of satterthwaite, kenward_roger"):
        ml.contrast([[0, 1, 0, 0, 0, 0]], ddf="kr")
    assert list(ml.anova().term) == ["recipe", "temp", "recipe:temp"]  # Satterthwaite on ML fits, as lmerTest
    intercept_only = LMM("angle ~ 1 + (1 | recipe:replicate)").fit_model(cake)
    assert intercept_only.anova().empty
