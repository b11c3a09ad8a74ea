"""The seed experiments (conf/experiment/seed_*.yaml) reproduce the lecture's tables in
expectation.

Each test runs an experiment through the same composition path as ``clustersim
experiment=<name>`` (fixed seed, in-process) and compares a measure with its expected value,
allowing K = 4 Monte Carlo SEs (the measure's own, plus that of a simulated reference value
where the expectation has no closed form). The lecture's figures come from single draws; where
a test also compares them with the expectation, it allows two of the lecture's own SEs.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import sims
from analysis.measures import summarise
from sims.api import compose, run_study
from sims.dgp.confounder import AUSTIN_MONTHLY_HIGHS_F
from estimators.presets import available
from sims.run.study import validate

K = 4.0
MEASURES = ("bias", "empse", "modelse", "relerror_modelse", "coverage", "rejection", "failure_rate")


def run(experiment: str, n_reps: int, seed: int, *overrides: str) -> xr.Dataset:
    ds = run_study([f"experiment={experiment}", f"n_reps={n_reps}", f"seed={seed}", "runner.n_jobs=1", *overrides])
    return summarise(ds, measures=MEASURES)


def measure(summary: xr.Dataset, estimator: str, term: str, name: str) -> tuple[float, float]:
    cell = summary.sel(estimator=estimator, term=term, measure=name)
    return float(cell["value"]), float(cell["mcse"])


def mean_estimate(summary: xr.Dataset, estimator: str, term: str, truth: float) -> tuple[float, float]:
    bias, mcse = measure(summary, estimator, term, "bias")
    return truth + bias, mcse


def replicates(quick: int, precise: int = 1000) -> pytest.MarkDecorator:
    """Run a test with ``quick`` replicates, and with ``precise`` ones in the slow suite."""
    return pytest.mark.parametrize("n_reps", [quick, pytest.param(precise, marks=pytest.mark.slow)])


def assert_within(value: float, mcse: float, expected: float, what: str) -> None:
    assert abs(value - expected) <= K * mcse, \
        f"{what}: {value:.6g}, expected {expected:.6g} (Monte Carlo SE {mcse:.3g}, {K:g} SE allowed)"


# --- seed_clustered: the lecture's first example ---------------------------------------------

def expected_clustered_standard_errors(dgp) -> dict[str, float]:
    """sqrt(E[SE^2]) of X per estimator, in closed form for the balanced design (what the
    modelse measure, sqrt(mean SE^2), estimates).

    ols:     E[RSS] / (n - p) [(X'X)^-1]_XX with E[RSS] = tr(M Sigma), M = I - H.
    ols_cr1: [(X'X)^-1 sum_g X_g' (M Sigma M)_gg X_g (X'X)^-1]_XX G/(G-1) (n-1)/(n-p).
    lmm_ri:  sigma^2-hat is, in this balanced design with X varying only within subjects, the
             residual mean square of the subject-fixed-effects regression; its expectation over
             the within-subject sum of squares of X.
    lmm_rs:  (var_slope + var_residual / S_x) / G, S_x a subject's sum of squares of X (REML
             equals the moment estimator in balanced designs).
    """
    frame = dgp.design()
    n, G = len(frame), dgp.n_subjects
    subject = frame["subject"].to_numpy()
    X = np.column_stack([np.ones(n), frame["X"].to_numpy()])
    Sigma = dgp.var_residual * np.eye(n)
    for s in range(1, G + 1):
        rows = np.flatnonzero(subject == s)
        Sigma[np.ix_(rows, rows)] += X[rows] @ dgp.random_effects_covariance @ X[rows].T
    bread = np.linalg.inv(X.T @ X)
    M = np.eye(n) - X @ bread @ X.T
    MSM = M @ Sigma @ M
    meat = sum(X[subject == s].T @ MSM[np.ix_(subject == s, subject == s)] @ X[subject == s] for s in range(1, G + 1))
    cr0 = (bread @ meat @ bread)[1, 1]
    within_x = frame["X"] - frame.groupby("subject")["X"].transform("mean")
    dummies = np.column_stack([subject == s for s in range(1, G + 1)] + [frame["X"]]).astype(float)
    fixed_effects_residual = np.eye(n) - dummies @ np.linalg.pinv(dummies)
    within_mean_square = np.trace(fixed_effects_residual @ Sigma) / (n - G - 1)
    return {
        "ols": np.sqrt(np.trace(M @ Sigma) / (n - 2) * bread[1, 1]),
        "ols_cr1": np.sqrt(cr0 * G / (G - 1) * (n - 1) / (n - 2)),
        "lmm_ri": np.sqrt(within_mean_square / (within_x**2).sum()),
        "lmm_rs": np.sqrt((dgp.var_slope + dgp.var_residual / ((within_x**2).sum() / G)) / G),
    }


# The lecture's standard errors of X (one draw each).
LECTURE_CLUSTERED_SE = {"ols": 2.620, "ols_cr1": 0.932, "lmm_ri": 0.510, "lmm_rs": 0.931}


def test_expected_clustered_standard_errors_are_the_lectures():
    expected = expected_clustered_standard_errors(sims.build("clustered"))
    for estimator, lecture in LECTURE_CLUSTERED_SE.items():
        assert round(expected[estimator], 2) == round(lecture, 2), (estimator, expected[estimator], lecture)


@replicates(100)
def test_seed_clustered_standard_errors(n_reps):
    summary = run("seed_clustered", n_reps, 1)
    expected = expected_clustered_standard_errors(sims.build("clustered"))
    for estimator, se in expected.items():
        assert_within(*measure(summary, estimator, "X", "modelse"), se, f"{estimator} model SE of X")
        assert_within(*measure(summary, estimator, "X", "bias"), 0.0, f"{estimator} bias of X")
    # The true SD of every estimate is the random-slope SE's expectation (all four estimators
    # are the difference of condition means here), so ignoring the random slopes makes the
    # random-intercept SE 45% too small.
    relative_error = 100 * (expected["lmm_ri"] / expected["lmm_rs"] - 1)
    assert_within(*measure(summary, "lmm_ri", "X", "relerror_modelse"), relative_error, "lmm_ri relative error of its SE")


# --- seed_simpson: the lecture's two tables --------------------------------------------------

# The lecture's tables: (estimate, its SE) per estimator and term.
LECTURE_SIMPSON = {
    ("ols", "Intercept"): (210.6811, 5.463), ("ols", "finishtime"): (-1.5422, 0.077),
    ("lmm_ri", "Intercept"): (73.823, 3.664), ("lmm_ri", "finishtime"): (0.402, 0.00214),
}


def expected_simpson(dgp) -> dict[tuple[str, str], float]:
    """OLS: the marginal estimands, exact given the fixed design. Random intercept: the within
    estimands (its slope is a precision-weighted mix of the within and between slopes whose
    between weight is below 1e-4 with the defaults)."""
    truth = dgp.truth()
    return {
        ("ols", "Intercept"): truth["Intercept_marginal"], ("ols", "finishtime"): truth["finishtime_marginal"],
        ("lmm_ri", "Intercept"): truth["Intercept"], ("lmm_ri", "finishtime"): truth["finishtime"],
    }


def test_simpson_expectations_are_the_lectures_tables():
    for key, value in expected_simpson(sims.build("simpson")).items():
        lecture, lecture_se = LECTURE_SIMPSON[key]
        assert abs(value - lecture) <= 2 * lecture_se, (key, value, lecture)
    truth = sims.build("simpson").truth()
    assert round(truth["finishtime_marginal"], 2) == -1.54 and round(truth["Intercept_marginal"], 1) == 210.7


@replicates(50)
def test_seed_simpson_tables(n_reps):
    dgp = sims.build("simpson")
    summary = run("seed_simpson", n_reps, 2, "~estimators.lmm_rs")
    truth = dgp.truth()
    for (estimator, term), expected in expected_simpson(dgp).items():
        assert_within(*mean_estimate(summary, estimator, term, truth[term]), expected, f"{estimator} {term}")
    # The estimators answer opposite questions: OLS's slope has the other sign.
    ols, ols_mcse = mean_estimate(summary, "ols", "finishtime", truth["finishtime"])
    assert ols + K * ols_mcse < 0 < truth["finishtime"]


# --- seed_confounder: the lecture's ice-cream sales ------------------------------------------

# E[price coefficient] of the random-intercept model sales ~ price_scaled + (1 | salesperson):
# the mean over 4000 replicates of a separate balanced-design REML fit used to choose the
# defaults (Monte Carlo SE 1.3; seed_confounder with 1000 replicates gives 151.3, SE 2.5).
CONFOUNDED_RI_PRICE, CONFOUNDED_RI_PRICE_MCSE = 150.7, 1.3
LECTURE_CONFOUNDED_RI_PRICE, LECTURE_CONFOUNDED_RI_PRICE_SE = 148.609, 77.358


@replicates(50)
def test_seed_confounder_tables(n_reps):
    dgp = sims.build("omitted_confounder")
    truth = dgp.truth()
    summary = run("seed_confounder", n_reps, 3, "~estimators.lmm_rs")
    # Without temperature, price gets the wrong sign.
    value, mcse = mean_estimate(summary, "lmm_ri", "price_scaled", truth["price_scaled"])
    assert_within(value, np.hypot(mcse, CONFOUNDED_RI_PRICE_MCSE), CONFOUNDED_RI_PRICE, "random-intercept price, temperature omitted")
    assert value - K * mcse > 0
    # OLS of sales on the z-scored price alone: mean(price_scaled * sales) = b_price + b_temp r,
    # r the correlation of price and temperature, sd_T / sqrt(sd_T^2 + sd_price^2) in expectation.
    temps = np.asarray(AUSTIN_MONTHLY_HIGHS_F)
    rho = temps.std() / np.sqrt(temps.var() + dgp.sd_price**2)
    for estimator in ("ols", "ols_cr1"):
        assert_within(*mean_estimate(summary, estimator, "price_scaled", truth["price_scaled"]),
                      dgp.price_effect + dgp.temp_effect * rho, f"{estimator} price, temperature omitted")
    # With temperature, the truth: -200 and +500.
    for estimator in ("ols_cr1_adjusted", "lmm_ri_adjusted"):
        for term in ("Intercept", "price_scaled", "temp_scaled"):
            assert_within(*measure(summary, estimator, term, "bias"), 0.0, f"{estimator} bias of {term}")


def test_confounder_expectation_is_the_lectures_table():
    assert abs(CONFOUNDED_RI_PRICE - LECTURE_CONFOUNDED_RI_PRICE) <= 2 * LECTURE_CONFOUNDED_RI_PRICE_SE
    assert round(CONFOUNDED_RI_PRICE, -1) == round(LECTURE_CONFOUNDED_RI_PRICE, -1)


# --- seed_heteroskedastic --------------------------------------------------------------------

def expected_heteroskedastic_ols(dgp) -> dict[str, float]:
    """Approximate SDs of the OLS slope of x (to O(1/N)): the true one (empse) and the iid
    formula's (modelse), with N = n_clusters * cluster_size, m = cluster_size.

    Var(b) ~ E[sum x^2 sigma^2(x) + var_cluster sum_i (sum_j x_ij)^2] E[1/(sum x^2)^2], where
    E[x^2 exp(s x - s^2/2)] = 1 + s^2 and E[(sum_j x_ij)^2] = m (1 + (m - 1) icc); the iid
    formula's variance is E[s^2] E[1/sum x^2] with E[s^2] = var_cluster + var_residual. For
    1/sum x^2: E[1/D] ~ (1 + V/N^2)/N and E[1/D^2] ~ (1 + 3 V/N^2)/N^2, V = Var(sum x^2) =
    2 (N + n_clusters m (m - 1) icc^2).
    """
    m, G = dgp.cluster_size, dgp.n_clusters
    N = G * m
    V = 2 * (N + G * m * (m - 1) * dgp.x_icc**2)
    numerator = dgp.var_residual * N * (1 + dgp.strength**2) + dgp.var_cluster * G * m * (1 + (m - 1) * dgp.x_icc)
    return {
        "empse": np.sqrt(numerator * (1 + 3 * V / N**2) / N**2),
        "modelse": np.sqrt((dgp.var_cluster + dgp.var_residual) * (1 + V / N**2) / N),
    }


@replicates(100)
def test_seed_heteroskedastic_standard_errors(n_reps):
    dgp = sims.build("heteroskedastic")
    summary = run("seed_heteroskedastic", n_reps, 4, "~estimators.lmm_rs", "~estimators.lmm_ri", "~estimators.ols_cr1")
    expected = expected_heteroskedastic_ols(dgp)
    assert_within(*measure(summary, "ols", "x", "empse"), expected["empse"], "true SD of the OLS slope")
    assert_within(*measure(summary, "ols", "x", "modelse"), expected["modelse"], "iid model SE of the OLS slope")
    for estimator in ("ols", "ols_hc3", "ols_cr2"):
        assert_within(*measure(summary, estimator, "x", "bias"), 0.0, f"{estimator} bias of x")
    # iid SEs miss both the clustering and the heteroskedasticity, HC3 the clustering; CR2
    # (Bell-McCaffrey) misses neither.
    errors = {e: measure(summary, e, "x", "relerror_modelse") for e in ("ols", "ols_hc3", "ols_cr2")}
    assert errors["ols"][0] < errors["ols_hc3"][0] < errors["ols_cr2"][0]
    assert errors["ols_hc3"][0] + K * errors["ols_hc3"][1] < 0
    assert_within(*errors["ols_cr2"], 0.0, "ols_cr2 relative error of its SE")


# --- every experiment and its null version ---------------------------------------------------

NULL_EFFECTS = {
    "seed_clustered_null": ("X", "dgp.slope"),
    "seed_heteroskedastic_null": ("x", "dgp.slope"),
    "seed_simpson_null": ("finishtime", "dgp.within_slope"),
    "seed_confounder_null": ("price_scaled", "dgp.price_effect"),
}


def test_every_seed_experiment_has_a_null_version():
    seeds = {name for name in available("experiment") if name.startswith("seed_") and not name.endswith("_null")}
    assert seeds == {"seed_clustered", "seed_heteroskedastic", "seed_simpson", "seed_confounder"}
    assert {f"{name}_null" for name in seeds} == set(NULL_EFFECTS)


@pytest.mark.parametrize("experiment", sorted(NULL_EFFECTS))
def test_null_experiment_sets_the_effect_to_zero(experiment):
    term, key = NULL_EFFECTS[experiment]
    null = validate(compose([f"experiment={experiment}"]))
    base = validate(compose([f"experiment={experiment.removesuffix('_null')}"]))
    assert null.cells[0].dgp.truth()[term] == 0.0 != base.cells[0].dgp.truth()[term]
    assert null.estimator_names == base.estimator_names
    assert type(null.cells[0].dgp) is type(base.cells[0].dgp)


# Per null experiment: estimators with valid SEs for the null's question, estimators without,
# and estimators left out to save time.
NULL_CHECKS = {
    "seed_clustered_null": (("ols_cr1", "lmm_rs"), ("lmm_ri",), ()),
    "seed_simpson_null": (("lmm_ri",), ("ols", "ols_cr1"), ("lmm_rs",)),
    "seed_confounder_null": (("ols_cr1_adjusted", "lmm_ri_adjusted"), ("ols_cr1", "lmm_ri"), ("lmm_rs",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", NULL_CHECKS)
def test_null_experiments_type_one_error(experiment):
    """Estimators that answer the question with valid SEs reject a true null at the nominal
    5% (within K MC SEs); the others at more than twice that rate."""
    valid, invalid, dropped = NULL_CHECKS[experiment]
    summary = run(experiment, 1000, 5, *(f"~estimators.{name}" for name in dropped))
    term = NULL_EFFECTS[experiment][0]
    for estimator in valid:
        assert_within(*measure(summary, estimator, term, "rejection"), 0.05, f"{experiment} {estimator} Type I error")
    for estimator in invalid:
        value, mcse = measure(summary, estimator, term, "rejection")
        assert value - K * mcse > 0.1, f"{experiment} {estimator}: rejection rate {value:.3f} (MC SE {mcse:.3f})"
