"""The data-generating processes: the conformance suite on every conf/dgp/*.yaml (and on the
non-default modes), parameter validation, and moment tests on large draws.

Moment tests compare an unbiased statistic of one large draw with the parameter it estimates,
allowing K = 4 Monte Carlo standard errors (estimated from the same draw): with fixed seeds the
tests are deterministic, and with any other seed a correct DGP would fail a comparison with
probability 6e-5.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import estimators
import sims
from estimators.batch import SharedDesignFrames
from sims.dgp.base import DGP, InvalidParameter, require_nonnegative
from sims.dgp.checks import CHECKS, check_dgp
from sims.dgp.clustered import lower_cholesky
from sims.dgp.confounder import AUSTIN_MONTHLY_HIGHS_F
from sims.dgp.crossed import BARR_CORRELATION_RANGE, BARR_INTERCEPT_RANGE, BARR_VARIANCE_RANGE
from estimators.presets import ConfigError

K = 4.0
GLMM_DATA = Path(__file__).resolve().parents[2] / "reference_glmm" / "data"

# Non-default modes that must pass the same suite: (preset, overrides).
VARIANTS = {
    "clustered-poisson-t": ("clustered", {"trials_distribution": "poisson", "random_effects": "t"}),
    "clustered-uniform-skewed": ("clustered", {"trials_distribution": "uniform", "random_effects": "skewed"}),
    "heteroskedastic-cluster": ("heteroskedastic", {"depends_on": "cluster"}),
    "heteroskedastic-both": ("heteroskedastic", {"depends_on": "both", "strength": 0.5}),
    "crossed-between": ("crossed", {"layout": "between_items"}),
    "crossed-full-barr": ("crossed", {"layout": "full", "random_parameters": True, "max_missing_share": 0.05}),
    "clustered_binary-probit-binomial": ("clustered_binary", {"link": "probit", "binomial_size": 5}),
    "clustered_counts-overdispersed": ("clustered_counts", {"var_observation": 0.3}),
    "crossed_binary-between": ("crossed_binary", {"layout": "between_items"}),
    "fitted-binomial": ("fitted", {"data": "builtin:verbagg", "family": "binomial", "extend": {"id": 30},
                                   "formula": "y ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"}),
    "fitted-poisson": ("fitted", {"data": str(GLMM_DATA / "grouseticks.csv"), "family": "poisson",
                                  "formula": "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)"}),
    **{name: (name, {}) for name in sims.available("dgp")},
}


def assert_within(estimate: float, se: float, expected: float, what: str) -> None:
    assert abs(estimate - expected) <= K * se, \
        f"{what}: {estimate:.6g}, expected {expected:.6g} (Monte Carlo SE {se:.3g}, {K:g} SE allowed)"


def mean_and_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([20210415, *key])


# --- conformance ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant, check", [(v, c) for v in VARIANTS for c in CHECKS],
                         ids=[f"{v}-{c.__name__}" for v in VARIANTS for c in CHECKS])
def test_conformance(variant, check):
    preset, overrides = VARIANTS[variant]
    check(sims.build(preset, **overrides))


@pytest.mark.parametrize("variant", VARIANTS)
def test_params_round_trip_through_sims_build(variant):
    preset, overrides = VARIANTS[variant]
    dgp = sims.build(preset, **overrides)
    assert sims.build(preset, **dgp.params()) == dgp


def test_every_dgp_module_has_a_preset():
    targets = {type(sims.build(name)).__module__ for name in sims.available("dgp")}
    assert targets == {"sims.dgp.clustered", "sims.dgp.heteroskedastic", "sims.dgp.simpson", "sims.dgp.confounder", "sims.dgp.crossed",
                       "sims.dgp.fitted", "sims.dgp.crossed_factor", "sims.dgp.clustered_binary",
                       "sims.dgp.clustered_counts", "sims.dgp.crossed_binary"}


# --- the suite catches what it should -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GoodDGP(DGP):
    """A minimal DGP that passes every check; the broken ones below each break one."""

    n_rows: int = 20
    sd: float = 1.0

    fixed_design: ClassVar[bool] = True
    columns: ClassVar[dict[str, str]] = {"y": "f", "x": "i"}

    def __post_init__(self):
        if not isinstance(self.n_rows, int) or self.n_rows < 1:
            raise InvalidParameter("n_rows", "must be a positive integer")
        require_nonnegative(self.sd, "sd")

    def generate(self, rng):
        x = np.arange(self.n_rows)
        return pd.DataFrame({"y": x + rng.normal(0.0, self.sd, self.n_rows), "x": x})

    def truth(self):
        return {"Intercept": 0.0, "x": 1.0}


class GlobalStateDGP(GoodDGP):
    def generate(self, rng):
        frame = super().generate(rng)
        frame["y"] += np.random.normal(size=len(frame))
        return frame


class WrongDtypeDGP(GoodDGP):
    def generate(self, rng):
        return super().generate(rng).astype({"x": float})


class RandomDesignDGP(GoodDGP):
    def generate(self, rng):
        frame = super().generate(rng)
        frame["x"] = rng.integers(0, 5, len(frame))
        return frame


class UnknownTermDGP(GoodDGP):
    def truth(self):
        return {"Intercept": 0.0, "z": 1.0}


@dataclasses.dataclass(frozen=True)
class UncheckedDGP(GoodDGP):
    var_noise: float = 1.0  # never validated


class OutcomeMatrixDGP(GoodDGP):
    """GoodDGP drawing its chunks as one design and an outcome matrix."""

    outcome: ClassVar[str] = "y"

    def design_columns(self):
        return {"x": np.arange(self.n_rows)}

    def draw_outcome(self, rng):
        return np.arange(self.n_rows) + rng.normal(0.0, self.sd, self.n_rows)


class MismatchedChunkDGP(OutcomeMatrixDGP):
    def draw_outcome(self, rng):
        return np.arange(self.n_rows) + rng.normal(0.0, 2 * self.sd, self.n_rows)


def test_outcome_matrix_dgp_draws_chunks_as_one_design():
    chunk = OutcomeMatrixDGP().generate_chunk([rng(1), rng(2)])
    assert isinstance(chunk, SharedDesignFrames) and chunk.outcomes.shape == (20, 2)
    check_dgp(OutcomeMatrixDGP())


@pytest.mark.parametrize("broken, failing", [
    (MismatchedChunkDGP, "check_chunk_equals_replicates"),
    (GlobalStateDGP, "check_global_random_state_untouched"),
    (WrongDtypeDGP, "check_generate_declared_columns"),
    (RandomDesignDGP, "check_fixed_design_is_fixed"),
    (UnknownTermDGP, "check_truth_terms"),
    (UncheckedDGP, "check_invalid_parameters_rejected"),
])
def test_check_dgp_names_the_failing_check(broken, failing):
    check_dgp(GoodDGP())
    with pytest.raises(AssertionError, match=failing):
        check_dgp(broken())


# --- invalid parameters ---------------------------------------------------------------------

@pytest.mark.parametrize("preset, name, value", [
    ("clustered", "n_subjects", 0),
    ("clustered", "n_conditions", 1),
    ("clustered", "var_slope", -1.0),
    ("clustered", "correlation_intercept_slope", -1.01),
    ("clustered", "trials_distribution", "geometric"),
    ("clustered", "random_effects_df", 2.0),
    ("clustered", "random_effects_skewness", 0.0),
    ("heteroskedastic", "cluster_size", 0),
    ("heteroskedastic", "var_cluster", -0.1),
    ("heteroskedastic", "x_icc", 1.5),
    ("heteroskedastic", "depends_on", "time"),
    ("simpson", "n_tests", 1),
    ("simpson", "finishtime_within_sd", 0.0),
    ("simpson", "ability_sd", -1.0),
    ("omitted_confounder", "salespeople_per_month", 0),
    ("omitted_confounder", "sd_price", 0.0),
    ("omitted_confounder", "sd_sales", -1.0),
    ("crossed", "n_subjects", 0),
    ("crossed", "n_items", 0),
    ("crossed", "n_items", 7),  # counterbalanced lists need an even number of items
    ("crossed", "subject_correlation", 1.5),
    ("crossed", "item_correlation", -1.2),
    ("crossed", "residual_sd", -1.0),
    ("crossed", "max_missing_share", 1.0),
    ("crossed", "layout", "latin_square"),
    ("crossed_factor", "n_levels", 1),
    ("crossed_factor", "n_subjects", 10),  # not a multiple of n_levels = 3
    ("crossed_factor", "n_items", 4),
    ("crossed_factor", "effect", float("nan")),
    ("crossed_factor", "subject_condition_sd", -0.1),
])
def test_invalid_parameter_names_itself(preset, name, value):
    with pytest.raises(InvalidParameter) as raised:
        sims.build(preset).__class__(**{**sims.build(preset).params(), name: value})
    assert raised.value.parameter == name and str(raised.value).startswith(f"{name}:")
    with pytest.raises(ConfigError, match=rf"^dgp\.{preset}\.{name}: "):
        sims.build(preset, **{name: value})


def test_full_layout_takes_an_odd_number_of_items():
    assert len(sims.build("crossed", layout="full", n_items=7).generate(rng(0))) == 24 * 7 * 2


# --- clustered ------------------------------------------------------------------------------

def test_clustered_recovers_variance_components():
    dgp = sims.build("clustered", n_subjects=4000)
    frame = dgp.generate(rng(1))
    n = dgp.n_trials
    cells = frame.groupby(["subject", "X"])["y"]
    means, variances = cells.mean().unstack(), cells.var().unstack()
    y0, d = means[0] - dgp.intercept, means[1] - means[0] - dgp.slope
    # Per subject, unbiased: E[y0^2 - s0^2/n] = var_intercept, E[d^2 - (s0^2 + s1^2)/n] = var_slope,
    # E[y0 d + s0^2/n] = the covariance -3.2, E[s^2] = var_residual.
    checks = {
        "var_intercept": (y0**2 - variances[0] / n, dgp.var_intercept),
        "var_slope": (d**2 - (variances[0] + variances[1]) / n, dgp.var_slope),
        "covariance": (y0 * d + variances[0] / n, -3.2),
        "var_residual": (variances.stack(), dgp.var_residual),
    }
    for name, (values, expected) in checks.items():
        assert_within(*mean_and_se(values), expected, name)


@pytest.mark.parametrize("law", ["normal", "t", "skewed"])
def test_random_effects_laws_keep_the_stated_covariance(law):
    dgp = sims.build("clustered", n_subjects=200_000, random_effects=law, random_effects_df=10.0,
                     var_intercept=4.0, var_slope=1.0, correlation_intercept_slope=-0.6)
    u = dgp.draw_random_effects(rng(2))
    for (a, b), expected in np.ndenumerate(dgp.random_effects_covariance):
        assert_within(*mean_and_se(u[:, a] * u[:, b]), expected, f"{law} covariance[{a}, {b}]")
    for column in range(2):
        assert_within(*mean_and_se(u[:, column]), 0.0, f"{law} mean[{column}]")


def test_t_random_effects_have_t_tails():
    dgp = sims.build("clustered", n_subjects=200_000, random_effects="t", random_effects_df=5.0)
    u0 = dgp.draw_random_effects(rng(3))[:, 0] / np.sqrt(dgp.var_intercept)
    df = dgp.random_effects_df
    for cutoff in (2.0, 3.0):
        share = np.mean(np.abs(u0) > cutoff)
        expected = 2 * stats.t.sf(cutoff * np.sqrt(df / (df - 2)), df)  # u0 = T sqrt((df-2)/df)
        assert_within(share, np.sqrt(expected * (1 - expected) / len(u0)), expected, f"P(|u0| > {cutoff} SD)")
        assert expected > 2 * stats.norm.sf(cutoff)  # heavier than the normal's, as intended


def test_skewed_random_effects_have_the_stated_skewness():
    dgp = sims.build("clustered", n_subjects=200_000, random_effects="skewed", random_effects_skewness=1.5,
                     var_intercept=4.0, var_slope=1.0, correlation_intercept_slope=-0.6)
    u = dgp.draw_random_effects(rng(4))
    L = lower_cholesky(dgp.random_effects_covariance)
    gamma = dgp.random_effects_skewness
    # Third moments of L z with independent standardised z of skewness gamma; L[0, 0]^3 is
    # var_intercept^1.5, so u0's skewness is gamma itself.
    expected = {0: gamma * L[0, 0] ** 3, 1: gamma * (L[1, 0] ** 3 + L[1, 1] ** 3)}
    for column, third_moment in expected.items():
        assert_within(*mean_and_se(u[:, column] ** 3), third_moment, f"third moment of u{column}")


@pytest.mark.parametrize("distribution, variance", [("poisson", lambda n: n - 1), ("uniform", lambda n: n * (n - 1) / 3)])
def test_unbalanced_trials_follow_their_distribution(distribution, variance):
    dgp = sims.build("clustered", n_subjects=20_000, trials_distribution=distribution)
    counts = dgp.generate(rng(5)).groupby(["subject", "X"]).size()
    assert len(counts) == dgp.n_subjects * dgp.n_conditions and counts.min() >= 1
    assert_within(*mean_and_se(counts), dgp.n_trials, f"{distribution} mean trials")
    assert_within(*mean_and_se((counts - dgp.n_trials) ** 2), variance(dgp.n_trials), f"{distribution} variance")
    assert not dgp.fixed_design and sims.build("clustered").fixed_design


# --- heteroskedastic ------------------------------------------------------------------------

@pytest.mark.parametrize("depends_on, x_weight", [("predictor", 1.0), ("cluster", 0.0), ("both", np.sqrt(0.5))])
def test_heteroskedastic_residual_variance(depends_on, x_weight):
    dgp = sims.build("heteroskedastic", n_clusters=2000, cluster_size=100, var_cluster=0.0,
                     var_residual=2.0, strength=0.8, depends_on=depends_on)
    frame = dgp.generate(rng(6))
    e = frame["y"] - dgp.intercept - dgp.slope * frame["x"]
    s, v = dgp.strength, dgp.var_residual
    # z is standard normal: E[e^2] = v, and E[e^2 x] = v s w with w the weight of x in z.
    assert_within(*mean_and_se(e**2), v, "average residual variance")
    assert_within(*mean_and_se(e**2 * frame["x"]), v * s * x_weight, "E[e^2 x]")
    # Between clusters: with m_i the mean of e^2 in cluster i, E[m_i^2] = E[v_i^2] (1 + 2/m) when
    # v_i is constant in the cluster (cluster); for the others, a check of the pooled variance.
    if depends_on == "cluster":
        m = (e**2).groupby(frame["cluster"]).mean()
        expected = v**2 * np.exp(s**2) * (1 + 2 / dgp.cluster_size)
        assert_within(*mean_and_se(m**2), expected, "spread of the cluster variances")


def test_heteroskedastic_predictor_and_cluster_effects():
    dgp = sims.build("heteroskedastic", n_clusters=5000, cluster_size=10, strength=0.0, x_icc=0.3)
    frame = dgp.generate(rng(7))
    m = dgp.cluster_size
    x = frame["x"].to_numpy().reshape(-1, m)
    y = frame["y"].to_numpy().reshape(-1, m)
    assert_within(*mean_and_se((x**2).mean(axis=1)), 1.0, "var(x)")
    pairs = (x.sum(axis=1) ** 2 - (x**2).sum(axis=1)) / (m * (m - 1))
    assert_within(*mean_and_se(pairs), dgp.x_icc, "intraclass correlation of x")
    residual_mean = (y - dgp.intercept - dgp.slope * x).mean(axis=1)
    assert_within(*mean_and_se(residual_mean**2 - dgp.var_residual / m), dgp.var_cluster, "var_cluster")


# --- simpson --------------------------------------------------------------------------------

def test_simpson_recovers_within_between_and_marginal_slopes():
    dgp = sims.build("simpson", n_students=4000, n_tests=10, residual_sd=0.5)
    frame = dgp.generate(rng(8))
    n = dgp.n_tests
    x = frame["finishtime"].to_numpy().reshape(-1, n)
    y = frame["score"].to_numpy().reshape(-1, n)
    # Within: slope of the student-demeaned score on the demeaned finishing time.
    xw, yw = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    within = (xw * yw).sum() / (xw**2).sum()
    residual_var = ((yw - within * xw) ** 2).sum() / (xw.size - x.shape[0] - 1)
    assert_within(within, np.sqrt(residual_var / (xw**2).sum()), dgp.within_slope, "within-student slope")
    assert_within(residual_var, residual_var * np.sqrt(2 / (xw.size - x.shape[0] - 1)), dgp.residual_sd**2, "residual variance")
    # Between: OLS of the students' mean score on their mean time.
    means = pd.DataFrame({"score": y.mean(axis=1), "finishtime": x.mean(axis=1)})
    between = estimators.build("ols", formula="score ~ finishtime").fit(means).to_frame().set_index("term")
    assert_within(between.loc["finishtime", "estimate"], between.loc["finishtime", "std_error"], dgp.between_slope, "between-student slope")
    predicted = dgp.intercept + dgp.within_slope * means["finishtime"] + (dgp.between_slope - dgp.within_slope) * (means["finishtime"] - dgp.finishtime_mean)
    assert_within(*mean_and_se((means["score"] - predicted) ** 2 - dgp.residual_sd**2 / n), dgp.ability_sd**2, "ability variance")
    # Marginal: OLS over all tests, with students as clusters for its SE.
    marginal = estimators.build("ols_cr1", formula="score ~ finishtime", cluster="student").fit(frame).to_frame().set_index("term")
    for term in ("Intercept", "finishtime"):
        assert_within(marginal.loc[term, "estimate"], marginal.loc[term, "std_error"], dgp.truth()[f"{term}_marginal"], f"marginal {term}")


def test_simpson_design_moments_are_exact():
    dgp = sims.build("simpson")
    frame = dgp.design()
    x = frame["finishtime"].to_numpy().reshape(dgp.n_students, dgp.n_tests)
    typical = x.mean(axis=1)
    assert np.isclose(typical.mean(), dgp.finishtime_mean)
    assert np.isclose(typical.std(), dgp.finishtime_between_sd)
    assert np.allclose((x - typical[:, None]).std(axis=1), dgp.finishtime_within_sd)
    assert np.argmin(typical) == 0  # student 1 is the fastest


# --- omitted confounder ---------------------------------------------------------------------

def test_confounder_recovers_price_temperature_correlation_and_variances():
    dgp = sims.build("omitted_confounder", salespeople_per_month=200)
    frame = dgp.generate(rng(9))
    temps = np.asarray(AUSTIN_MONTHLY_HIGHS_F)
    rho = temps.std() / np.sqrt(temps.var() + dgp.sd_price**2)
    r = np.corrcoef(frame["price"], frame["temp"])[0, 1]
    assert_within(r, (1 - rho**2) / np.sqrt(len(frame)), rho, "correlation of price and temperature")
    slope = estimators.build("ols", formula="price ~ temp").fit(frame).to_frame().set_index("term").loc["temp"]
    assert_within(slope["estimate"], slope["std_error"], 1.0, "slope of price on temperature")
    assert np.allclose(frame.groupby("month")["temp"].first(), temps)
    # Residuals given the true coefficients: within salespeople they estimate sd_sales^2, their
    # salesperson means sd_salesperson^2 + sd_sales^2 / n.
    r = frame["sales"] - dgp.intercept - dgp.temp_effect * frame["temp_scaled"] - dgp.price_effect * frame["price_scaled"]
    groups = r.groupby(frame["salesperson"])
    n = dgp.sales_per_salesperson
    assert_within(*mean_and_se(groups.var()), dgp.sd_sales**2, "residual variance")
    assert_within(*mean_and_se(groups.mean() ** 2 - dgp.sd_sales**2 / n), dgp.sd_salesperson**2, "salesperson variance")
    for column in ("price_scaled", "temp_scaled"):
        assert np.isclose(frame[column].mean(), 0.0) and np.isclose(frame[column].std(ddof=0), 1.0)


def test_confounder_design():
    frame = sims.build("omitted_confounder").generate(rng(10))
    assert len(frame) == 36 * 30
    per_salesperson = frame.groupby("salesperson").agg(months=("month", "nunique"), rows=("month", "size"))
    assert (per_salesperson["months"] == 1).all() and (per_salesperson["rows"] == 30).all()
    assert (frame.groupby("month")["salesperson"].nunique() == 3).all()


# --- crossed --------------------------------------------------------------------------------

def two_way_components(table: np.ndarray, other: np.ndarray | None = None) -> dict[str, float]:
    """ANOVA (co)variance components of a subjects x items table with one value per cell:
    rows (subjects), columns (items) and residual, as cross-products of ``table`` and ``other``."""
    other = table if other is None else other
    S, I = table.shape

    def parts(t):
        grand = t.mean()
        return t.mean(axis=1) - grand, t.mean(axis=0) - grand, t - t.mean(axis=1, keepdims=True) - t.mean(axis=0) + grand

    (ra, ca, ea), (rb, cb, eb) = parts(table), parts(other)
    residual = (ea * eb).sum() / ((S - 1) * (I - 1))
    return {
        "subject": (I * (ra * rb).sum() / (S - 1) - residual) / I,
        "item": (S * (ca * cb).sum() / (I - 1) - residual) / S,
        "residual": residual,
    }


def test_crossed_recovers_variance_components_and_correlations():
    dgp = sims.build("crossed", layout="full", n_subjects=400, n_items=400)
    frame = dgp.generate(rng(11))
    S, I = dgp.n_subjects, dgp.n_items
    y = frame["y"].to_numpy().reshape(S, I, 2)  # sorted by subject, item, condition (-0.5, +0.5)
    mean, diff = y.mean(axis=2) - dgp.intercept, y[:, :, 1] - y[:, :, 0] - dgp.effect
    sd = {"subject": (dgp.subject_intercept_sd, dgp.subject_slope_sd, dgp.subject_correlation),
          "item": (dgp.item_intercept_sd, dgp.item_slope_sd, dgp.item_correlation)}
    var_mean, var_diff = two_way_components(mean), two_way_components(diff)
    cov = two_way_components(mean, diff)
    for factor, count, other_count in (("subject", S, I), ("item", I, S)):
        sd0, sd1, correlation = sd[factor]
        # Normal theory for `count` levels whose means average `other_count` cells: the level
        # variances v0, v1 include the cell noise (residual_sd^2 / 2 for the mean of the two
        # conditions, 2 residual_sd^2 for their difference); a variance component then has SE
        # v sqrt(2 / (count - 1)), a covariance sqrt((v0 v1 + c^2) / (count - 1)), and the
        # correlation (1 - r^2) / sqrt(count - 3), inflated by the noise share sqrt(v0 v1) / (sd0 sd1).
        v0 = sd0**2 + dgp.residual_sd**2 / 2 / other_count
        v1 = sd1**2 + 2 * dgp.residual_sd**2 / other_count
        assert_within(var_mean[factor], v0 * np.sqrt(2 / (count - 1)), sd0**2, f"{factor} intercept variance")
        assert_within(var_diff[factor], v1 * np.sqrt(2 / (count - 1)), sd1**2, f"{factor} slope variance")
        c = correlation * sd0 * sd1
        assert_within(cov[factor], np.sqrt((v0 * v1 + c**2) / (count - 1)), c, f"{factor} intercept-slope covariance")
        estimated = cov[factor] / np.sqrt(var_mean[factor] * var_diff[factor])
        se = (1 - correlation**2) / np.sqrt(count - 3) * np.sqrt(v0 * v1) / (sd0 * sd1)
        assert_within(estimated, se, correlation, f"{factor} correlation")
    assert_within(var_mean["residual"], var_mean["residual"] * np.sqrt(2 / ((S - 1) * (I - 1))), dgp.residual_sd**2 / 2, "residual variance")


def test_crossed_layouts():
    within = sims.build("crossed").design()
    per_subject = within.groupby("subject")["condition"].agg(["size", "sum"])
    assert (per_subject["size"] == 12).all() and (per_subject["sum"] == 0).all()  # half the items each
    per_item = within.groupby(["item", "list"])["condition"].nunique()
    assert (per_item == 1).all() and (within.groupby("item")["condition"].nunique() == 2).all()
    assert set(within["list"]) == {1, 2}
    between = sims.build("crossed", layout="between_items").design()
    assert (between.groupby("item")["condition"].nunique() == 1).all()
    assert (between.groupby("subject")["condition"].sum() == 0).all()
    full = sims.build("crossed", layout="full").design()
    assert full.groupby(["subject", "item"])["condition"].apply(lambda c: sorted(c) == [-0.5, 0.5]).all()


def test_crossed_deletes_a_uniform_share_of_rows():
    dgp = sims.build("crossed", max_missing_share=0.05)
    n = len(dgp.design())
    shares = [1 - len(dgp.generate(rng(12, r))) / n for r in range(300)]
    assert min(shares) >= 0 and max(shares) <= 0.05 + 0.5 / n
    assert_within(*mean_and_se(shares), 0.025, "mean deleted share")
    assert not dgp.fixed_design


def test_crossed_random_parameters_follow_barr_ranges():
    dgp = sims.build("crossed", random_parameters=True)
    generator = rng(13)
    draws = [dgp.variance_parameters(generator) for _ in range(4000)]
    intercepts = np.array([d.intercept for d in draws])
    variances = np.array([[*np.diag(d.subject_covariance), *np.diag(d.item_covariance), d.residual_sd**2] for d in draws])
    correlations = np.array([[c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]) for c in (d.subject_covariance, d.item_covariance)] for d in draws])

    def check_uniform(values, bounds, what):
        low, high = bounds
        assert values.min() >= low and values.max() <= high, what
        assert_within(*mean_and_se(values), (low + high) / 2, f"mean of {what}")
        assert_within(*mean_and_se((values - (low + high) / 2) ** 2), (high - low) ** 2 / 12, f"variance of {what}")

    check_uniform(intercepts, BARR_INTERCEPT_RANGE, "intercept")
    for column in range(5):
        check_uniform(variances[:, column], BARR_VARIANCE_RANGE, f"variance {column}")
    for column in range(2):
        check_uniform(correlations[:, column], BARR_CORRELATION_RANGE, f"correlation {column}")
    assert dgp.truth() == {"condition": dgp.effect}


def test_crossed_random_parameters_give_items_nested_in_condition_no_slope():
    """Barr et al.'s between-item data have a by-item intercept only; the other draws are shared."""
    between = sims.build("crossed", layout="between_items", random_parameters=True)
    within = sims.build("crossed", layout="counterbalanced", random_parameters=True)
    for seed in range(20):
        nested, crossed = between.variance_parameters(rng(seed)), within.variance_parameters(rng(seed))
        assert nested.item_covariance[1, 1] == 0.0 and nested.item_covariance[0, 1] == 0.0
        assert crossed.item_covariance[1, 1] > 0.0
        assert nested.item_covariance[0, 0] == crossed.item_covariance[0, 0]
        np.testing.assert_array_equal(nested.subject_covariance, crossed.subject_covariance)
        assert (nested.intercept, nested.residual_sd) == (crossed.intercept, crossed.residual_sd)


def test_checks_that_do_not_apply_are_reported_as_skipped_not_passed():
    # GoodDGP is a fixed design without an outcome matrix: its chunks are one generate each
    report = check_dgp(GoodDGP())
    assert list(report.skipped) == ["check_chunk_equals_replicates"]
    assert "check_chunk_equals_replicates" not in report.passed
    assert check_dgp(OutcomeMatrixDGP()).skipped == {}


def test_a_fixed_design_that_does_not_draw_outcome_matrices_fails_the_chunk_check():
    class FramesOnly(OutcomeMatrixDGP):
        def generate_chunk(self, rngs):
            return [self.generate(rng) for rng in rngs]

    with pytest.raises(AssertionError, match="check_chunk_equals_replicates: .*not SharedDesignFrames"):
        check_dgp(FramesOnly())


# --- crossed_factor -------------------------------------------------------------------------

def test_crossed_factor_is_a_latin_square_with_its_variance_components():
    """Each subject sees n_items / n_levels items per level and each item every level; the
    covariances of two observations: same subject and level sd_S^2 + sd_SC^2, same subject
    only sd_S^2, same item and level sd_I^2 + sd_IC^2 (moments over many replicates)."""
    dgp = sims.build("crossed_factor", n_subjects=6, n_items=6, effect=0.5)
    design = dgp.design()
    counts = design.groupby(["subject", "condition"]).size()
    assert (counts == 2).all() and set(design.condition) == {"a", "b", "c"}
    assert (design.groupby(["item", "condition"]).size() == 2).all()
    assert dgp.truth() == {"Intercept": 0.0, "condition[T.b]": 0.5, "condition[T.c]": 1.0}
    Y = np.stack([dgp.draw_outcome(rng(seed)) for seed in range(4000)])
    means = Y.mean(axis=0)
    expected = 0.5 * design.condition.map({"a": 0, "b": 1, "c": 2}).to_numpy()
    assert np.all(np.abs(means - expected) < 4.5 * np.sqrt(0.36 + 0.09 + 0.25 + 0.09 + 1) / np.sqrt(4000))
    C = np.cov(Y, rowvar=False)
    s, i, c = design.subject.to_numpy(), design.item.to_numpy(), design.condition.to_numpy()
    def mean_cov(mask):
        return C[mask].mean()
    same_s, same_i, same_c = s[:, None] == s, i[:, None] == i, c[:, None] == c
    off = ~np.eye(len(s), dtype=bool)
    assert mean_cov(same_s & same_c & ~same_i & off) == pytest.approx(0.36 + 0.09, abs=0.03)
    assert mean_cov(same_s & ~same_c & ~same_i) == pytest.approx(0.36, abs=0.03)
    assert mean_cov(same_i & same_c & ~same_s & off) == pytest.approx(0.25 + 0.09, abs=0.03)
    assert mean_cov(~same_s & ~same_i) == pytest.approx(0.0, abs=0.02)
    assert np.diag(C).mean() == pytest.approx(0.36 + 0.09 + 0.25 + 0.09 + 1.0, rel=0.03)


# --- binary and count outcomes ------------------------------------------------------------

def normal_expectation(function, sd: float) -> float:
    """E f(sd Z), Z ~ N(0, 1), by 80-point Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(weights * function(sd * nodes)) / np.sqrt(2 * np.pi))


def assert_unit_means(frame: pd.DataFrame, unit: str, by: str, expected: dict, what: str) -> None:
    """The mean of y at each level of ``by`` matches ``expected``, with the SE of the mean of
    the per-unit means (units independent)."""
    for level, value in expected.items():
        means = frame[frame[by] == level].groupby(unit)["y"].mean()
        assert_within(*mean_and_se(means), value, f"{what}, {by} = {level}")


@pytest.mark.parametrize("link, inverse", [("logit", special.expit),
                                           ("probit", stats.norm.cdf)])
def test_clustered_binary_marginal_probabilities(link, inverse):
    """P(y = 1 | X) = E g^{-1}(b0 + b1 X + u0 + u1 X), u0 + u1 X ~ N(0, v0 + 2 X r sd0 sd1 + X^2 v1)."""
    dgp = sims.build("clustered_binary", n_subjects=3000, n_trials=4, link=link, intercept=0.3, slope=-0.6,
                     var_intercept=1.2, var_slope=0.5, correlation_intercept_slope=-0.5)
    frame = dgp.generate(rng(31))
    sd0, sd1, r = np.sqrt(1.2), np.sqrt(0.5), -0.5
    expected = {x: normal_expectation(lambda u: inverse(0.3 - 0.6 * x + u), np.sqrt(sd0**2 + 2 * x * r * sd0 * sd1 + x**2 * sd1**2))
                for x in (0, 1)}
    assert_unit_means(frame, "subject", "X", expected, f"clustered_binary ({link})")
    assert set(np.unique(frame["y"])) == {0.0, 1.0}


def test_clustered_binary_binomial_rows_hold_k_trials():
    frame = sims.build("clustered_binary", binomial_size=7).generate(rng(32))
    assert (frame["successes"] + frame["failures"] == 7).all()
    np.testing.assert_array_equal(frame["y"], frame["successes"] / 7)
    assert frame["successes"].between(0, 7).all() and frame["successes"].nunique() > 3


def test_clustered_counts_marginal_means_and_overdispersion():
    """E[y | X] = exp(b0 + b1 X + (v0 + 2 X cov + X^2 v1 + v_obs) / 2); with the subject
    effects switched off, Var y = mu + mu^2 (exp(v_obs) - 1)."""
    dgp = sims.build("clustered_counts", n_subjects=3000, n_trials=4, intercept=0.5, slope=0.3, var_intercept=0.4,
                     var_slope=0.2, correlation_intercept_slope=0.5, var_observation=0.3)
    frame = dgp.generate(rng(33))
    cov = 0.5 * np.sqrt(0.4 * 0.2)
    expected = {x: np.exp(0.5 + 0.3 * x + (0.4 + 2 * x * cov + x**2 * 0.2 + 0.3) / 2) for x in (0, 1)}
    assert_unit_means(frame, "subject", "X", expected, "clustered_counts")
    y = sims.build("clustered_counts", n_subjects=4000, n_trials=5, var_intercept=0.0, var_slope=0.0,
                   var_observation=0.3).generate(rng(34)).query("X == 0")["y"].to_numpy(dtype=float)
    mu = np.exp(1.0 + 0.15)
    variance, var_se = y.var(ddof=1), np.sqrt(np.var((y - y.mean()) ** 2, ddof=1) / len(y))
    assert_within(variance, var_se, mu + mu**2 * (np.exp(0.3) - 1), "overdispersed count variance")


@pytest.mark.parametrize("by, params", [
    ("subject", {"n_subjects": 3000, "n_items": 4, "item_intercept_sd": 0.0, "item_slope_sd": 0.0}),
    ("item", {"n_subjects": 2, "n_items": 3000, "subject_intercept_sd": 0.0, "subject_slope_sd": 0.0}),
])
def test_crossed_binary_marginal_probabilities(by, params):
    """P(y = 1 | c) = E expit(b0 + b1 c + a0 + a1 c) with the subject (or the item) effects alone."""
    base = {"intercept": 0.8, "effect": 0.6, "subject_intercept_sd": 1.1, "subject_slope_sd": 0.6,
            "subject_correlation": 0.4, "item_intercept_sd": 0.9, "item_slope_sd": 0.7, "item_correlation": -0.6}
    dgp = sims.build("crossed_binary", layout="full", **{**base, **params})
    prefix = "subject" if by == "subject" else "item"
    sd0, sd1, r = base[f"{prefix}_intercept_sd"], base[f"{prefix}_slope_sd"], base[f"{prefix}_correlation"]
    expected = {c: normal_expectation(lambda u: 1 / (1 + np.exp(-(0.8 + 0.6 * c + u))),
                                      np.sqrt(sd0**2 + 2 * c * r * sd0 * sd1 + c**2 * sd1**2)) for c in (-0.5, 0.5)}
    assert_unit_means(dgp.generate(rng(35)), by, "condition", expected, f"crossed_binary by {by}")


def test_crossed_binary_shares_the_crossed_layouts():
    for layout in ("counterbalanced", "between_items", "full"):
        binary = sims.build("crossed_binary", n_subjects=6, n_items=8, layout=layout).design()
        gaussian = sims.build("crossed", n_subjects=6, n_items=8, layout=layout).design()
        pd.testing.assert_frame_equal(binary, gaussian)


@pytest.mark.parametrize("variances, correlation", [((1.0, 0.09), 0.3), ((4.0, 0.0), 0.0), ((0.0, 2.5), -1.0),
                                                    ((250.0, 7.5), 0.99), ((1e-12, 1.0), 1.0)])
def test_multivariate_normal_with_its_factor_once_is_numpys_bit_for_bit(variances, correlation):
    from sims.dgp.base import multivariate_normal, normal_factor

    v0, v1 = variances
    c = correlation * np.sqrt(v0 * v1)
    covariance = np.array([[v0, c], [c, v1]])
    factor = normal_factor(covariance)
    for seed, size in [(0, 1), (1, 24), (2, 300)]:
        expected = np.random.default_rng(seed).multivariate_normal(np.zeros(2), covariance, size=size, method="eigh")
        drawn = multivariate_normal(np.random.default_rng(seed), factor, size)
        assert drawn.tobytes() == expected.tobytes()
