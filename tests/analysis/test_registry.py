"""Every measure is declared once, with what summarise, compare, the figures and the report need:
a label, a nominal value where it is a rate, and an influence function that reproduces its
Monte Carlo SE."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.datasets import ALPHA, hand_made, synthetic_dataset

from analysis import plots
from analysis.measures import REGISTRY, lookup, measure_names, parse_rejection, summarise
from analysis.replicates import Replicates

EXTRA_ALPHAS = (0.001, 0.01, 0.05, 0.10)
NAMES = measure_names(EXTRA_ALPHAS)
# Measures whose rsimsum MCSE assumes normal estimates, which their influence functions do not.
NORMAL_THEORY = ("empse", "relerror_modelse", "relprec")


def influence_mcse(psi: np.ndarray) -> np.ndarray:
    """sqrt(sum psi_i^2 / (N (N-1))) over the replicate axis: the MCSE an influence function gives."""
    total = psi.shape[-2]
    return np.sqrt((psi**2).sum(axis=-2) / (total * (total - 1)))


def test_every_reported_measure_is_registered_under_its_own_name():
    assert len(set(NAMES)) == len(NAMES)
    assert {name for name in NAMES if parse_rejection(name) is None} == set(REGISTRY)
    for name in NAMES:
        assert lookup(name, ALPHA).name == name
    with pytest.raises(ValueError, match="unknown measure 'sharpness'"):
        lookup("sharpness", ALPHA)


@pytest.mark.parametrize("name", NAMES)
def test_every_measure_has_a_label_and_every_rate_a_nominal_value(name):
    measure = lookup(name, ALPHA)
    assert measure.label and measure.label != name
    assert plots.measure_label(name, ALPHA) == measure.label
    if measure.rate:
        assert 0 <= measure.nominal_at(ALPHA) < 1


def test_nominal_values_follow_the_study_alpha_and_the_thresholds():
    assert lookup("coverage", 0.1).nominal_at(0.1) == pytest.approx(0.9)
    assert lookup("coverage_all", 0.05).nominal_at(0.05) == pytest.approx(0.95)
    assert lookup("rejection", 0.1).nominal_at(0.1) == 0.1
    assert lookup("rejection_0.01_all", 0.1).nominal_at(0.1) == 0.01
    assert lookup("rejection", 0.1).label == "Rejection rate, p < 0.1 (share)"
    assert lookup("rejection_0.10_all", 0.05).label == "Rejection rate, p < 0.10 (share, failures as non-rejections)"
    for name in ("bias", "relbias", "relerror_modelse", "relprec", "failure_rate"):
        assert lookup(name, ALPHA).nominal_at(ALPHA) == 0
    for name in ("empse", "mse", "rmse", "modelse", "ci_width"):
        assert lookup(name, ALPHA).nominal_at(ALPHA) is None and not lookup(name, ALPHA).rate


def test_a_rate_is_a_share_with_a_binomial_mcse_and_nothing_else_is():
    summary = summarise(synthetic_dataset(seed=31), alphas=EXTRA_ALPHAS)
    for name in NAMES:
        part = summary.sel(measure=name)
        value, mcse, n = (part[v].values.ravel() for v in ("value", "mcse", "n"))
        shown = np.isfinite(value)
        with np.errstate(invalid="ignore"):  # a bias can be negative
            binomial = np.isclose(mcse, np.sqrt(value * (1 - value) / n), rtol=1e-12, atol=0)
        if lookup(name, ALPHA).rate:
            assert ((value >= 0) & (value <= 1))[shown].all() and binomial[shown].all(), name
        else:
            assert not binomial[shown].all(), name


@pytest.mark.parametrize("name", NAMES)
def test_influence_values_are_centred_and_reproduce_the_mcse_on_hand_made_data(name):
    """Sum psi_i = 0, and for a mean over the n replicates that count among N,
    sqrt(sum psi_i^2 / (N (N-1))) = MCSE sqrt(N (n-1) / (n (N-1))) (n-1 in the sample variance);
    for a binomial rate, MCSE sqrt(N / (N-1)) (P (1-P) has no such factor)."""
    ds, _ = hand_made()
    # Correlated estimators, so that relprec's influence is not trivial.
    ds["estimate"].loc[dict(estimator="b")] = ds["estimate"].sel(estimator="b") + 0.5 * ds["estimate"].sel(estimator="a")
    measure = lookup(name, ALPHA)
    rep = Replicates.from_dataset(ds, reference="a")
    psi = measure.influence(rep).fillna(0.0).transpose("estimator", "rep", "term").values
    value = measure.value(rep)
    mcse = value.mcse.transpose("estimator", "term").values
    n = value.n.transpose("estimator", "term").values
    total = ds.sizes["rep"]
    assert np.allclose(psi.sum(axis=1), 0, atol=1e-9)
    if name in NORMAL_THEORY:
        return
    factor = np.sqrt(total / (total - 1)) if measure.rate else np.sqrt(total * (n - 1) / (n * (total - 1)))
    np.testing.assert_allclose(influence_mcse(psi), mcse * factor, rtol=1e-12)


@pytest.mark.parametrize("name", NORMAL_THEORY)
def test_influence_mcse_agrees_with_the_normal_theory_mcse_for_normal_estimates(name):
    """Where rsimsum's MCSE assumes normal estimates, the influence function's (which does not)
    agrees with it for normal estimates: within 6% at 20,000 replicates (its own relative SE
    is about 1.9 / sqrt(n), 1.3%)."""
    ds = synthetic_dataset(seed=32, n_reps=20_000, estimators={"a": (0.0, 1.0, 1.0, 0.0), "b": (0.0, 1.3, 0.8, 0.0)})
    measure = lookup(name, ALPHA)
    rep = Replicates.from_dataset(ds, reference="a")
    psi = measure.influence(rep).fillna(0.0).sel(estimator="b").transpose("rep", "term").values
    mcse = measure.value(rep).mcse.sel(estimator="b").transpose("term").values
    np.testing.assert_allclose(influence_mcse(psi), mcse, rtol=0.06)
