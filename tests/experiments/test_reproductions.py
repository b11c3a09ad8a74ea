"""The reproductions of Clark (1973), Barr et al. (2013), Matuschek et al. (2017) and Bates et
al. (2015) (conf/experiment/, analysis/reproductions.py, estimators/barr_fallback.py).

Smoke runs: each experiment at a reduced size through the same composition path as
``clustersim experiment=<name>`` (fixed seeds, in-process, one core), then the tables and the
figure from the dataset alone. The directions of the papers' effects must hold by more than
K = 3 Monte Carlo SEs of the difference, sqrt(mcse_a^2 + mcse_b^2); rates that should be at or
below alpha must be below alpha + K MCSE. Together these runs take about 30 s on one free core.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

import estimators.barr_fallback as barr
import sims
from analysis import reproductions
from estimators.barr_fallback import BarrFallback, factors_with_slopes, model_label, structure_formula
from estimators.checks import SEED, check_estimator
from estimators.lmm import LMM
from estimators.result import Status
from sims.api import run_study

K = 3.0
ALPHA = 0.05


def run(experiment: str, n_reps: int, seed: int, *overrides: str) -> xr.Dataset:
    return run_study([f"experiment={experiment}", f"n_reps={n_reps}", f"seed={seed}", "runner.n_jobs=1", *overrides])


def rate(table, estimator: str, alpha: float = ALPHA, **cell) -> tuple[float, float]:
    rows = table[(table["estimator"] == estimator) & np.isclose(table["alpha"], alpha)]
    for key, value in cell.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, (estimator, cell)
    return float(rows["value"].iloc[0]), float(rows["mcse"].iloc[0])


def assert_above(high: tuple[float, float], low: tuple[float, float]) -> None:
    """high - low > K sqrt(mcse_high^2 + mcse_low^2)."""
    assert high[0] - low[0] > K * np.hypot(high[1], low[1]), (high, low)


def assert_at_most_nominal(value: tuple[float, float], alpha: float = ALPHA) -> None:
    assert value[0] <= alpha + K * max(value[1], np.sqrt(alpha * (1 - alpha) / 100)), value


# --- Barr et al.'s design-driven structures and fallback -------------------------------------

@pytest.fixture(scope="module")
def crossed_frames():
    rng = np.random.default_rng(6)
    between = sims.build("crossed", layout="between_items", n_items=12, effect=0.0).generate(rng)
    within = sims.build("crossed", layout="counterbalanced", n_items=12, effect=0.0, subject_slope_sd=1.0,
                        item_slope_sd=0.0).generate(rng)
    return between, within


def test_slopes_follow_the_design(crossed_frames):
    between, within = crossed_frames
    assert factors_with_slopes(between, "condition", ["subject", "item"]) == ("subject",)
    assert factors_with_slopes(within, "condition", ["subject", "item"]) == ("subject", "item")
    assert structure_formula("y", "c", ["s", "i"], ["s"], correlated=True) == "y ~ c + (1 + c | s) + (1 | i)"
    assert structure_formula("y", "c", ["s", "i"], ["s", "i"], correlated=False) == "y ~ c + (1 + c || s) + (1 + c || i)"
    assert model_label("maximal", [], ["subject"]) == "maximal"
    assert model_label("maximal", ["item"], ["subject"]) == "maximal_no_item_slope"
    assert model_label("zero_correlation", ["item", "subject"], []) == "intercepts"


def test_lrt_and_t_as_z_agree_with_the_engine(crossed_frames):
    """The predictor's LRT and z test equal the engine's own (ML fits, same formula)."""
    _, within = crossed_frames
    formula = "y ~ condition + (1 + condition | subject) + (1 + condition | item)"
    for inference in ("lrt", "wald_z"):
        ours = BarrFallback("maximal", inference=inference).fit(within)
        engine = LMM(formula, reml=False, inference=inference).fit(within)
        j = ours.terms.index("condition")
        assert ours.extras == {"model": "maximal"}
        np.testing.assert_allclose(ours.p_value[j], engine.p_value[j], rtol=1e-6)
        np.testing.assert_allclose(ours.estimate, engine.estimate, rtol=1e-6)


def test_fallback_drops_the_smaller_slope_then_both(crossed_frames, monkeypatch):
    """A maximal fit that does not converge loses the slope with the smaller variance (the item
    slope: its true SD is 0, the subject slope's 1); a fit with any slope that fails ends at
    intercepts only. The fits' own convergence flags are overridden to force the path."""
    _, within = crossed_frames
    real = barr.ml_fit

    def failing(pattern):
        def ml_fit(formula, data):
            model, fit, y = real(formula, data)
            return model, dataclasses.replace(fit, converged=pattern not in formula), y
        return ml_fit

    monkeypatch.setattr(barr, "ml_fit", failing("condition | item"))
    assert BarrFallback("maximal").fit(within).extras == {"model": "maximal_no_item_slope"}
    monkeypatch.setattr(barr, "ml_fit", failing("+ condition"))
    result = BarrFallback("maximal", inference="wald_z").fit(within)
    assert result.extras == {"model": "intercepts"} and result.status == Status.ok


# --- smoke runs of the experiments ----------------------------------------------------------

def test_clark1973_smoke(tmp_path):
    """Clark: with item variance, F1 and the subjects-only model over-reject; min F' and the
    crossed model do not; without it, F1 is fine."""
    ds = run("clark1973", 100, 11, "grid.dgp.item_intercept_sd=[0.0,1.0]", "grid.dgp.n_items=[20]")
    table = reproductions.rejection_table(ds)
    large = {"item_intercept_sd": 1.0}
    for fallacy in ("f1", "subjects_only"):
        assert_above(rate(table, fallacy, **large), rate(table, "minf", **large))
        assert_above(rate(table, fallacy, **large), rate(table, "crossed", **large))
    for name in ("minf", "crossed", "f1xf2"):
        assert_at_most_nominal(rate(table, name, **large))
    assert_at_most_nominal(rate(table, "f1", item_intercept_sd=0.0))
    files = reproductions.reproduce(ds, tmp_path)
    assert (tmp_path / "clark1973_rejection.png").stat().st_size > 10_000
    assert (tmp_path / "clark1973_table.md") in files


def test_barr2013_smoke(tmp_path):
    """Barr, between items, 12 items: F1 over-rejects, min F' and the maximal model do not; the
    published comparison and the tally of the models used are written."""
    ds = run("barr2013", 50, 13, "grid.dgp.layout=[between_items]", "grid.dgp.n_items=[12]")
    table = reproductions.rejection_table(ds)
    assert_above(rate(table, "f1", layout="between_items"), rate(table, "minf", layout="between_items"))
    for name in ("minf", "max_lrt", "f1xf2"):
        assert_at_most_nominal(rate(table, name, layout="between_items"))
    reproductions.reproduce(ds, tmp_path)
    published = (tmp_path / "barr2013_published.csv").read_text()
    assert published.count("between_items") == 5  # min F', maximal (LRT), RI (LRT), F1xF2, F1 at 12 items
    tallies = reproductions.model_tallies(ds)
    assert set(tallies["model"]) <= {"maximal", "zero_correlation", "intercepts", "maximal_no_subject_slope",
                                     "zero_correlation_no_subject_slope"}
    np.testing.assert_allclose(tallies.groupby("estimator")["share"].sum(), 1.0)


def test_matuschek2017_smoke(tmp_path):
    """Matuschek, 30 x 10, large slope SD, no effect: intercepts-only over-rejects, the maximal
    model does not; LRT selection sits at or below intercepts-only."""
    ds = run("matuschek2017_small", 40, 17, "grid.dgp.effect=[0.0]", "grid.dgp.subject_slope_sd=[120.0]")
    table = reproductions.rejection_table(ds)
    assert_above(rate(table, "intercepts"), rate(table, "max"))
    assert_at_most_nominal(rate(table, "max"))
    assert rate(table, "select_lrt")[0] <= rate(table, "intercepts")[0]
    reproductions.reproduce(ds, tmp_path)
    assert (tmp_path / "matuschek2017_30x10_models.csv").exists()


def test_bates2015_smoke(tmp_path):
    """Bates: the parsimonious procedure and the maximal model on the same data; its choices
    are tallied, and with no slope variance it leaves the maximal model most of the time."""
    ds = run("bates2015", 20, 15, "grid.dgp.effect=[25.0]", "grid.dgp.subject_slope_sd=[0.0]")
    tallies = reproductions.model_tallies(ds)
    chosen = tallies[tallies["estimator"] == "parsimonious"].set_index("model")["share"]
    np.testing.assert_allclose(chosen.sum(), 1.0)
    assert chosen.get("max", 0.0) < 0.5
    assert reproductions.identify(ds).name == "bates2015"
    reproductions.reproduce(ds, tmp_path)
    assert (tmp_path / "bates2015_models.md").exists()


def test_identify_names_the_study_or_says_which_to_choose():
    ds = xr.Dataset({"truth": (("n_subjects", "term"), [[0.0]])},
                    coords={"estimator": ["ols"], "n_subjects": [6], "term": ["X"]})
    with pytest.raises(ValueError, match="--experiment"):
        reproductions.identify(ds)


@pytest.mark.parametrize("estimator", [BarrFallback("maximal", inference="lrt"), BarrFallback("zero_correlation", inference="wald_z")],
                         ids=["maximal_lrt", "zero_correlation_z"])
def test_barr_fallback_passes_the_conformance_suite(estimator):
    dgp = sims.build("crossed", n_subjects=12, n_items=8)
    large = sims.build("crossed", n_subjects=60, n_items=30)
    data = dgp.generate(np.random.default_rng(SEED))
    replicates = tuple(dgp.generate(np.random.default_rng(SEED + r)) for r in (1, 2))
    check_estimator(estimator, data, groups=("subject", "item"), replicates=replicates,
                    large_data=large.generate(np.random.default_rng(SEED)), truth=large.truth())
