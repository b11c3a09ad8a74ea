"""The ``fitted`` DGP (sims/dgp/fitted.py): replicates of a mixed model fitted to pilot data.

The distribution is checked by refitting replicates with the same model, by an independent
loop drawing from the pilot fit with numpy, and by the closed-form power of the balanced
sleepstudy design; tolerances are K = 3 Monte Carlo SEs (fixed seeds, so each test is
deterministic; a correct DGP fails one comparison with probability 0.003 under another seed).
The design is checked exactly: extension copies whole levels, replication fills every cell.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sims
from estimators.lmm import LMM
from estimators.presets import ConfigError
from sims.api import compose, run_study
from sims.dgp.base import InvalidParameter
from sims.dgp.fitted import FittedDGP, data_path
from sims.run.replay import replay
from sims.run.rundir import run_in_directory
from sims.run.study import validate
import analysis
from helpers.closed_form import sleepstudy_power

K = 3.0
SEED = 20210415
MAXIMAL = "Reaction ~ Days + (Days | Subject)"
INTERCEPTS = "Reaction ~ Days + (1 | Subject)"
SLEEPSTUDY = data_path("builtin:sleepstudy")


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *key])


def assert_within(values, expected: float, what: str) -> None:
    values = np.asarray(values, dtype=float)
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
    assert abs(mean - expected) <= K * se, \
        f"{what}: mean {mean:.5g} over {len(values)} replicates, expected {expected:.5g} (MCSE {se:.3g}, {K:g} allowed)"


def lmm(formula: str = MAXIMAL, **params) -> dict:
    return {"_target_": "estimators.lmm.LMM", "formula": formula, **params}


def study_overrides(*extra: str, estimators: str = f'estimators={{max: {{preset: lmm, formula: "{MAXIMAL}"}}}}') -> list[str]:
    return ["dgp=fitted", estimators, "runner.n_jobs=1", "runner.chunk_size=500", "runner.progress=false", *extra]


def rejection(ds, estimator: str, term: str = "Days", **cell) -> tuple[float, float]:
    summary = analysis.summarise(ds).sel(estimator=estimator, term=term, measure="rejection", **cell)
    return float(summary["value"]), float(summary["mcse"])


# --- the pilot fit and its replicates -------------------------------------------------------

def test_the_preset_is_lme4s_sleepstudy_fit():
    """lme4 1.1: fixef 251.405, 10.467; Subject SDs 24.741, 5.922, correlation 0.066; sigma 25.592."""
    dgp = sims.build("fitted")
    assert dgp.pilot.frame.shape == (180, 3) and dgp.columns == {"Reaction": "f", "Days": "i", "Subject": "i"}
    np.testing.assert_allclose(list(dgp.truth().values()), [251.405, 10.467], atol=1e-3)
    np.testing.assert_allclose([v for *_, v in dgp.pilot.fit.varcorr()], [24.741, 5.922, 0.066, 25.592], atol=1e-3)


def test_replicates_recover_the_pilot_fixed_effects_and_variance_components():
    """The maximal model refitted to 300 replicates of the pilot design: REML is unbiased for
    the fixed effects and, in this balanced design (where it equals the ANOVA estimator away
    from the boundary), for the variances, the covariance and sigma^2."""
    dgp = sims.build("fitted")
    fits = [LMM(MAXIMAL).fit_model(dgp.generate(rng(1, r))) for r in range(300)]
    for j, (term, value) in enumerate(dgp.truth().items()):
        assert_within([f.beta[j] for f in fits], value, f"fixed effect {term}")
    covariance = dgp.covariances["Subject"]
    components = np.array([[c.sds[0] ** 2, c.sds[1] ** 2, c.correlations[0, 1] * c.sds[0] * c.sds[1]]
                           for f in fits for c in f.components])
    for column, expected, what in zip(components.T, covariance[[0, 1, 0], [0, 1, 1]], ("intercept variance", "slope variance", "covariance")):
        assert_within(column, expected, f"Subject {what}")
    assert_within([f.sigma ** 2 for f in fits], dgp.residual_sd ** 2, "residual variance")


def test_replicates_recover_the_pilot_sds_and_correlation_on_a_large_extension():
    """SDs and correlations are non-linear in the estimates, so their REML estimates are biased
    by O(1/levels) (at the pilot's 18 subjects the slope SD by -2.4 MCSE and the correlation by
    +2.8 over 300 replicates); on 180 subjects copying the pilot's design that bias is a tenth."""
    dgp = sims.build("fitted", extend={"Subject": 180})
    pilot = dict(((g, a, b), v) for g, a, b, v in dgp.pilot.fit.varcorr())
    fits = [dict(((g, a, b), v) for g, a, b, v in LMM(MAXIMAL).fit_model(dgp.generate(rng(2, r))).varcorr())
            for r in range(200)]
    for key, expected in pilot.items():
        assert_within([f[key] for f in fits], expected, " ".join(filter(None, key)))


def test_overrides_set_the_model_on_its_own_scale():
    dgp = sims.build("fitted", fixed={"Days": 0}, sd={"Subject": {"Days": 3.0}}, cor={"Subject": -0.5}, sigma=10.0)
    assert dgp.truth() == {"Intercept": pytest.approx(251.405, abs=1e-3), "Days": 0.0}
    sd0 = dgp.pilot.fit.components[0].sds[0]
    np.testing.assert_allclose(dgp.covariances["Subject"], [[sd0**2, -0.5 * sd0 * 3], [-0.5 * sd0 * 3, 9.0]])
    assert dgp.residual_sd == 10.0
    nested = sims.build("fitted", cor={"Subject": {"Days": {"Intercept": 0.25}}})
    assert nested.covariances["Subject"][0, 1] == pytest.approx(0.25 * np.prod(nested.pilot.fit.components[0].sds))
    # Days effect 0, slope SD 3: per-subject OLS slopes have variance 3^2 + sigma^2 / Sxx.
    slopes = []
    days = np.arange(10.0)
    for r in range(400):
        y = dgp.generate(rng(3, r))["Reaction"].to_numpy().reshape(18, 10)
        slopes.append(((days - days.mean()) * y).sum(axis=1) / ((days - days.mean()) ** 2).sum())
    slopes = np.concatenate(slopes)
    assert_within(slopes, 0.0, "mean per-subject slope")
    assert_within((slopes - slopes.mean()) ** 2 * len(slopes) / (len(slopes) - 1), 9.0 + 100.0 / 82.5, "slope variance")


def test_the_pilot_is_fitted_once_per_content_and_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = sims.build("fitted"), sims.build("fitted", fixed={"Days": 1.0})
    assert first.pilot is second.pilot
    copy = tmp_path / "pilot.csv"
    copy.write_bytes(SLEEPSTUDY.read_bytes())
    assert sims.build("fitted", data="pilot.csv").pilot is first.pilot  # same content, same fit
    assert first.provenance() == {"data_sha256": first.pilot.sha256}


def test_parquet_pilot_data(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "pilot.parquet"
    pd.read_csv(SLEEPSTUDY).to_parquet(path)
    assert sims.build("fitted", data=str(path)).truth() == pytest.approx(sims.build("fitted").truth())


# --- the design: extend and within ----------------------------------------------------------

def layout(design: pd.DataFrame, factor: str, level) -> list[tuple]:
    """The rows of one level, without the factor's own column, in a canonical order."""
    rows = design[design[factor] == level].drop(columns=factor)
    return sorted(map(tuple, rows.to_numpy().tolist()))


@pytest.fixture(scope="module")
def crossed_pilot(tmp_path_factory):
    """12 subjects x 8 items in two counterbalanced lists (sims/dgp/crossed.py), as a CSV."""
    path = tmp_path_factory.mktemp("crossed") / "pilot.csv"
    sims.build("crossed", n_subjects=12, n_items=8).generate(rng(4)).to_csv(path, index=False)
    return str(path)


def test_extension_copies_whole_levels_keeping_the_crossing(crossed_pilot):
    formula = "y ~ condition + (1 | subject) + (1 | item)"
    pilot = FittedDGP(data=crossed_pilot, formula=formula, allow_singular=True).design()
    design = FittedDGP(data=crossed_pilot, formula=formula, allow_singular=True,
                       extend={"subject": 30, "item": 12}).design()
    assert list(design.columns) == ["condition", "subject", "item", "list"]
    assert sorted(design["subject"].unique()) == list(range(1, 31))
    assert sorted(design["item"].unique()) == list(range(1, 13))
    assert len(design) == 30 * 12 and not design.duplicated(["subject", "item"]).any()  # fully crossed
    for subject in range(1, 31):  # subject 13 copies 1, ..., 25 copies 1 again: lists cycle
        assert layout(design, "subject", subject) == layout(design, "subject", (subject - 1) % 12 + 1)
    for item in range(1, 13):
        assert layout(design, "item", item) == layout(design, "item", (item - 1) % 8 + 1)
    # the pilot's own levels keep their pilot rows, over the pilot's items
    pilot_items = design[design["item"] <= 8]
    for subject in range(1, 13):
        assert layout(pilot_items, "subject", subject) == layout(pilot, "subject", subject)
    counts = design.groupby(["subject", "condition"]).size().unstack()
    pilot_counts = pilot.groupby(["subject", "condition"]).size().unstack()
    np.testing.assert_array_equal(counts.to_numpy(), 1.5 * pilot_counts.to_numpy()[(np.arange(30) % 12)])


def test_extension_below_the_pilot_size_keeps_the_first_levels_and_within_fills_cells(crossed_pilot):
    small = sims.build("fitted", extend={"Subject": 10}).design()
    assert sorted(small["Subject"].unique()) == sorted(pd.read_csv(SLEEPSTUDY)["Subject"].unique())[:10]
    assert len(small) == 100
    doubled = sims.build("fitted", extend={"Subject": 25}, within={"Days": 2}).design()
    assert (doubled.groupby(["Subject", "Days"]).size() == 2).all() and len(doubled) == 25 * 10 * 2
    formula = "y ~ condition + (1 | subject) + (1 | item)"
    three = FittedDGP(data=crossed_pilot, formula=formula, allow_singular=True, within={"condition": 3}).design()
    assert (three.groupby(["subject", "item", "condition"]).size() == 3).all() and len(three) == 3 * 96


def test_string_levels_get_new_labels(tmp_path):
    frame = pd.read_csv(SLEEPSTUDY)
    frame["Subject"] = "s" + frame["Subject"].astype(str)
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    design = FittedDGP(data=str(path), extend={"Subject": 20}).design()
    new = [level for level in design["Subject"].unique() if level not in set(frame["Subject"])]
    assert new == ["s308_2", "s309_2"]
    assert layout(design, "Subject", "s308_2") == layout(design, "Subject", "s308")


# --- Type I error and power -----------------------------------------------------------------

def test_type_one_error_of_the_maximal_model_is_within_bradleys_band():
    """Days set to 0 on the pilot's own design: lmerTest's Satterthwaite t test of the maximal
    model (the generating one) rejects 2.5% to 7.5% of 1000 replicates."""
    ds = run_study(study_overrides("dgp.fixed={Days: 0}", "n_reps=1000"))
    rate, mcse = rejection(ds, "max")
    assert 0.025 <= rate <= 0.075, f"Type I error {rate:.3f} ({mcse:.3f})"
    assert abs(rate - 0.05) <= K * mcse


def test_power_at_the_pilot_size_agrees_with_an_independent_loop_and_the_closed_form():
    """Days = 3 ms/day. The study's power (2000 replicates) against (a) a loop in this test
    drawing from the pilot fit with numpy (its own seeds) and fitting with the engine, within
    K SEs of the difference, and (b) the noncentral-t power of the balanced design
    (helpers.closed_form)."""
    effect, n = 3.0, 2000
    ds = run_study(study_overrides(f"dgp.fixed={{Days: {effect}}}", f"n_reps={n}"))
    power, mcse = rejection(ds, "max")

    fit = LMM(MAXIMAL).fit_model(pd.read_csv(SLEEPSTUDY))
    (sd0, sd1), corr = fit.components[0].sds, fit.components[0].correlations[0, 1]
    covariance = np.array([[sd0**2, corr * sd0 * sd1], [corr * sd0 * sd1, sd1**2]])
    pilot = pd.read_csv(SLEEPSTUDY)
    subject = pd.factorize(pilot["Subject"], sort=True)[0]
    days = pilot["Days"].to_numpy(dtype=float)
    generator = np.random.default_rng(9)
    frames = []
    for _ in range(n):
        b = generator.multivariate_normal(np.zeros(2), covariance, size=18)
        y = fit.beta[0] + effect * days + b[subject, 0] + b[subject, 1] * days + generator.normal(0, fit.sigma, len(days))
        frames.append(pilot.assign(Reaction=y))
    results = LMM(MAXIMAL).fit_batch(frames)
    loop = np.mean([r.p_value[r.terms.index("Days")] < 0.05 for r in results])
    loop_mcse = np.sqrt(loop * (1 - loop) / n)
    assert abs(power - loop) <= K * np.hypot(mcse, loop_mcse), f"study {power:.3f} ({mcse:.3f}), loop {loop:.3f} ({loop_mcse:.3f})"
    closed_form = sleepstudy_power(effect, 18)
    assert abs(power - closed_form) <= K * mcse, f"study {power:.3f} ({mcse:.3f}), closed form {closed_form:.3f}"


def test_a_grid_over_extend_is_a_sample_size_curve():
    ds = run_study(study_overrides("dgp.fixed={Days: 3}", "grid.dgp.extend.Subject=[10,30]", "n_reps=1000"))
    assert list(ds["Subject"].values) == [10, 30]
    for size in (10, 30):
        power, mcse = rejection(ds, "max", Subject=size)
        expected = sleepstudy_power(3.0, size)
        assert abs(power - expected) <= K * mcse, f"{size} subjects: {power:.3f} ({mcse:.3f}), closed form {expected:.3f}"


# --- provenance: a changed pilot file is refused --------------------------------------------

def test_a_changed_data_file_is_refused_on_resume(tmp_path):
    data = tmp_path / "pilot.csv"
    data.write_bytes(SLEEPSTUDY.read_bytes())
    overrides = study_overrides(f"dgp.data={data}", "n_reps=10", "dgp.fixed={Days: 0}")
    run_dir = tmp_path / "run"
    run_in_directory(validate(compose(overrides)), run_dir)
    run_in_directory(validate(compose(overrides)), run_dir)  # same file: resumes (nothing to do)
    frame = pd.read_csv(data)
    frame.loc[0, "Reaction"] += 1.0
    frame.to_csv(data, index=False)
    with pytest.raises(ConfigError, match=r"^dgp\.data_sha256: differs from the config of the results"):
        run_in_directory(validate(compose(overrides)), run_dir)
    with pytest.raises(ConfigError, match=r"^dgp\.data_sha256: differs from what the run used .* pilot data file"):
        replay(run_dir, 3)


# --- bad input: one line naming the key, before any simulation ------------------------------

def singular_pilot(tmp_path) -> str:
    """Group means exactly equal: the REML subject variance is 0."""
    noise = np.tile([-1.0, 0.5, 0.5, 1.5, -1.5], 6)
    frame = pd.DataFrame({"y": noise, "x": np.tile(np.arange(5.0), 6), "g": np.repeat(np.arange(6), 5)})
    path = tmp_path / "flat.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("override, message", [
    ("dgp.data=/no/such/pilot.csv", r"^dgp\.data: no such file: /no/such/pilot\.csv$"),
    ("dgp.data=builtin:nothing", r"^dgp\.data: no built-in data set 'nothing' \(built-in: sleepstudy, verbagg\)$"),
    ("dgp.formula='Reaction ~ Nights + (1 | Subject)'", r"^dgp\.formula: cannot be fitted to the data: column 'Nights'"),
    ("dgp.formula='RT ~ Days + (1 | Subject)'", r"^dgp\.formula: its outcome 'RT' must be a column of the data"),
    ("dgp.formula='Reaction ~ Days + (1 | Person)'", r"^dgp\.formula: cannot be fitted to the data: grouping column 'Person'"),
    ("dgp.extend.Item=20", r"^dgp\.extend: 'Item' is not a grouping factor of the formula \(grouping factors: Subject\)$"),
    ("dgp.extend.Subject=1", r"^dgp\.extend: the number of levels of Subject must be an integer >= 2, got 1$"),
    ("dgp.within.Nights=2", r"^dgp\.within: 'Nights' is not a design column"),
    ("dgp.fixed={Dayz: 0}", r"^dgp\.fixed: 'Dayz' is not a fixed effect of the model \(fixed effects: Intercept, Days\)$"),
    ("dgp.sd={Person: {Days: 1}}", r"^dgp\.sd: 'Person' is not a grouping factor of the random effects \(groups: Subject\)$"),
    ("dgp.sd={Subject: {Nights: 1}}", r"^dgp\.sd: Subject has no random effect 'Nights' \(effects: Intercept, Days\)$"),
    ("dgp.sd={Subject: {Days: -1}}", r"^dgp\.sd: the SD of Subject Days must be a number >= 0, got -1$"),
    ("dgp.cor={Subject: 1.5}", r"^dgp\.cor: the correlation of Subject Intercept and Days must be a number in \[-1, 1\], got 1\.5$"),
    ("dgp.sigma=0", r"^dgp\.sigma: must be > 0, got 0$"),
])
def test_bad_input_names_the_key_before_any_simulation(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(compose(study_overrides(override)))
    assert "\n" not in str(error.value)


def test_a_singular_pilot_fit_is_refused_unless_allowed(tmp_path):
    data = singular_pilot(tmp_path)
    formula = "y ~ x + (1 | g)"
    with pytest.raises(ConfigError, match=r"^dgp\.formula: the pilot fit is singular .*g Intercept SD 0.*allow_singular: true$"):
        validate(compose(study_overrides(f"dgp.data={data}", f"dgp.formula='{formula}'",
                                         estimators=f'estimators={{m: {{preset: lmm, formula: "{formula}"}}}}')))
    dgp = FittedDGP(data=data, formula=formula, allow_singular=True)
    assert dgp.covariances["g"][0, 0] == 0.0
    with pytest.raises(InvalidParameter, match="^formula: the pilot fit is singular"):
        FittedDGP(data=data, formula=formula)


# --- binary and count pilots: the GLMM ----------------------------------------------------

GLMM_DATA = Path(__file__).resolve().parents[2] / "reference_glmm" / "data"
CROSSED_BINARY = str(GLMM_DATA / "crossed_binary.csv")  # 30 subjects x 16 items, R's rbinom
CROSSED_SLOPE = "y ~ condition + (1 + condition | subject) + (1 | item)"
GROUSETICKS = str(GLMM_DATA / "grouseticks.csv")
TICKS = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)"


def binary_pilot(**params) -> FittedDGP:
    return FittedDGP(data=CROSSED_BINARY, formula=CROSSED_SLOPE, family="binomial", **params)


def test_a_binomial_pilot_is_fitted_by_the_glmm_and_keyed_by_family_and_link():
    """lme4 1.1 (tests/reference_glmm/glmer_crossed_slope.json): fixef -0.139, 0.337; subject
    SDs 0.746, 0.861, correlation 0.407; item SD 0.413."""
    dgp = binary_pilot()
    assert dgp.pilot.link == "logit" and dgp.residual_sd is None
    assert dgp.truth() == pytest.approx({"Intercept": -0.139, "condition": 0.337}, abs=1e-3)
    np.testing.assert_allclose([v for *_, v in dgp.pilot.fit.varcorr()], [0.746, 0.861, 0.407, 0.413], atol=1e-3)
    assert dgp.columns == {"y": "f", "subject": "O", "item": "O", "condition": "f"}
    probit = binary_pilot(link="probit")
    assert probit.pilot is not dgp.pilot and probit.pilot.link == "probit"
    assert abs(probit.truth()["condition"]) < abs(dgp.truth()["condition"])  # probit scale: about 1/1.7
    assert binary_pilot(link="logit").pilot is dgp.pilot  # null is the canonical link
    y = dgp.generate(rng(10))["y"].to_numpy()
    assert set(np.unique(y)) == {0.0, 1.0}
    assert binary_pilot(fixed={"condition": 0.0}).truth()["condition"] == 0.0


def test_binary_replicates_match_an_independent_simulation_of_the_pilot_model():
    """Per replicate: the share of 1s in each condition and the variances of the subjects' and
    the items' shares (which the random-effect SDs set), in 3000 replicates of the DGP and 3000
    of a numpy loop here drawing eta = b0 + b1 c + u_0s + u_1s c + w_i from the GLMM's pilot fit;
    each mean within K SEs of the difference."""
    dgp = binary_pilot(sd={"item": {"Intercept": 0.8}})
    pilot = pd.read_csv(CROSSED_BINARY)
    fit = dgp.pilot.fit
    subject_sds, item_sd = fit.components[0].sds, 0.8
    r = fit.components[0].correlations[0, 1]
    cov = np.array([[subject_sds[0] ** 2, r * np.prod(subject_sds)], [r * np.prod(subject_sds), subject_sds[1] ** 2]])
    subject = pd.factorize(pilot["subject"], sort=True)[0]
    item = pd.factorize(pilot["item"], sort=True)[0]
    condition = pilot["condition"].to_numpy()

    def statistics(y: np.ndarray) -> list[float]:
        frame = pd.DataFrame({"y": y, "s": subject, "i": item})
        return [y[condition < 0].mean(), y[condition > 0].mean(),
                frame.groupby("s")["y"].mean().var(), frame.groupby("i")["y"].mean().var()]

    n = 3000
    design = dgp.design()
    assert (design["subject"] == pilot["subject"]).all() and (design["condition"] == pilot["condition"]).all()
    drawn = np.array([statistics(dgp.draw_outcome(rng(11, k))) for k in range(n)])
    generator = np.random.default_rng(12)
    loop = []
    for _ in range(n):
        u = generator.multivariate_normal(np.zeros(2), cov, size=30)
        w = generator.normal(0.0, item_sd, size=16)
        eta = fit.beta[0] + fit.beta[1] * condition + u[subject, 0] + u[subject, 1] * condition + w[item]
        loop.append(statistics((generator.random(len(eta)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)))
    loop = np.array(loop)
    for j, what in enumerate(("share at condition -0.5", "share at condition 0.5", "variance of subject shares",
                              "variance of item shares")):
        difference = drawn[:, j].mean() - loop[:, j].mean()
        se = np.hypot(drawn[:, j].std(ddof=1), loop[:, j].std(ddof=1)) / np.sqrt(n)
        assert abs(difference) <= K * se, f"{what}: DGP {drawn[:, j].mean():.5f}, loop {loop[:, j].mean():.5f} (SE {se:.2g})"


def test_poisson_replicates_have_the_lognormal_mean_of_the_pilot_model():
    """grouseticks (lme4): with normal random intercepts E y_i = exp(x_i' beta + sum_t sigma_t^2 / 2).
    Over 2000 replicates each row's mean count is within K SEs of it, on average over rows and
    for the largest expected count."""
    dgp = FittedDGP(data=GROUSETICKS, formula=TICKS, family="poisson")
    assert dgp.pilot.link == "log"
    X = dgp.pilot.X
    variance = sum(c[0, 0] for c in dgp.covariances.values())
    expected = np.exp(X @ np.array(list(dgp.truth().values())) + variance / 2)
    Y = np.array([dgp.draw_outcome(rng(13, k)) for k in range(2000)])
    assert np.all(Y == np.rint(Y)) and Y.min() >= 0
    totals = Y.mean(axis=1)
    assert_within(totals, expected.mean(), "mean count")
    top = int(np.argmax(expected))
    assert_within(Y[:, top], expected[top], f"mean count of row {top}")


def test_type_one_error_of_the_glmm_on_a_binomial_pilot():
    """condition set to 0 on the pilot's design (30 subjects x 16 items): the Wald z test of the
    generating GLMM rejects within K MC SEs of 5% of 400 replicates."""
    estimators = f'estimators={{glmm: {{preset: glmm_ri, formula: "{CROSSED_SLOPE}"}}}}'
    ds = run_study(study_overrides(f"dgp.data={CROSSED_BINARY}", "dgp.family=binomial", f"dgp.formula='{CROSSED_SLOPE}'",
                                   "dgp.fixed={condition: 0}", "n_reps=400", estimators=estimators))
    rate, mcse = rejection(ds, "glmm", term="condition")
    assert abs(rate - 0.05) <= K * np.sqrt(0.05 * 0.95 / 400), f"Type I error {rate:.3f} ({mcse:.3f})"


@pytest.mark.parametrize("overrides, message", [
    (["dgp.family=binary"], r"^dgp\.family: must be one of gaussian, binomial, poisson, got 'binary'$"),
    (["dgp.link=logit"], r"^dgp\.link: must be null for family gaussian \(the identity\), got 'logit'$"),
    (["dgp.family=binomial", "dgp.link=log"], r"^dgp\.link: must be one of logit, probit for family 'binomial', got 'log'$"),
    (["dgp.family=binomial", "dgp.sigma=10"], r"^dgp\.sigma: has no meaning for family binomial \(the family sets the variance from the mean\); "
                                             r"leave it null, got 10$"),
    (["dgp.family=binomial"], r"^dgp\.formula: its outcome 'Reaction' must be 0/1 for family binomial \(found 249\.56\); "
                              r"the pilot data need one row per trial$"),
    (["dgp.family=poisson"], r"^dgp\.formula: response column 'Reaction' must hold integer counts for family poisson \(found 249\.56\)$"),
    (["dgp.family=binomial", "dgp.data=builtin:verbagg", "dgp.formula='cbind(y, 1 - y) ~ btype + (1 | id)'"],
     r"^dgp\.formula: its outcome cbind\(y, 1 - y\) is k of n trials; the pilot data need 0/1 rows, one row per trial$"),
])
def test_bad_glmm_input_names_the_key_before_any_simulation(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(compose(study_overrides(*overrides)))
    assert "\n" not in str(error.value)


# --- the documented commands ----------------------------------------------------------------

def documented_commands() -> list[list[str]]:
    """The ``clustersim`` commands of the ```bash blocks of docs/dgps.md's fitted section."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "dgps.md").read_text()
    section = text[text.index("\n## fitted\n"):text.index("\n## Seed experiments\n")]
    commands = []
    for body in re.findall(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            if words and words[0] == "clustersim":
                commands.append([w for w in words[1:] if not w.startswith("hydra.")])
    return commands


def test_the_documented_commands_build_their_studies():
    commands = documented_commands()
    assert len(commands) == 4
    for overrides in commands:
        study = validate(compose(overrides))
        assert type(study.cells[0].dgp) is FittedDGP
