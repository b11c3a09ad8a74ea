"""Every estimator config in conf/estimator/ passes the conformance suite (estimators/checks.py),
each check with its own test id; a check that does not apply to a preset (no replicates of a
fixed design for the fit_batch check) is reported as skipped, with its reason. Each estimator
runs on the first DGP whose columns it can fit: the clustered design (y, X, subject), the
crossed one (y, condition, subject, item, list), their binary and count versions (for
estimators that refuse a continuous outcome), or small binary and count designs with the same
columns (tests/helpers/glmm_data.py)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import estimators
import sims
from estimators.checks import CHECKS, SEED, EstimatorCase
from estimators.design import InputError
from helpers.checks import run_check
from helpers.glmm_data import GLMM_DESIGNS

# Small designs keep the suite quick; the large ones make the consistency check sharp.
DGPS = {
    "clustered": ({"n_subjects": 12, "n_trials": 5}, {"n_subjects": 150}, ("subject",)),
    "crossed": ({"n_subjects": 12, "n_items": 8}, {"n_subjects": 60, "n_items": 30}, ("subject", "item")),
    # Binary and count outcomes. Their truth is conditional on the random effects, which
    # marginal models (GLM, GEE) do not estimate: the large draws switch the random effects off.
    # (counts first: a 0/1 outcome is a count too)
    "clustered_counts": ({"n_subjects": 12, "n_trials": 5}, {"n_subjects": 150, "var_intercept": 0.0, "var_slope": 0.0},
                         ("subject",)),
    "clustered_binary": ({"n_subjects": 12, "n_trials": 6}, {"n_subjects": 150, "var_intercept": 0.0, "var_slope": 0.0},
                         ("subject",)),
    "crossed_binary": ({"n_subjects": 12, "n_items": 8},
                       {"n_subjects": 60, "n_items": 30, "subject_intercept_sd": 0.0, "subject_slope_sd": 0.0,
                        "item_intercept_sd": 0.0, "item_slope_sd": 0.0}, ("subject", "item")),
}
# |estimate - truth| allowed on the large crossed draw for terms without a standard error
# (F1xF2, min F'): about 4.5 by-subject standard errors there (the SE of F1 is about 0.08).
TOLERANCE = 0.35
N_REPLICATES = 3


def _draw(dgp, seed: int):
    return dgp.generate(np.random.default_rng(seed))


@functools.cache
def case_for(preset: str) -> EstimatorCase:
    estimator = estimators.build(preset)
    designs = [(sims.build(name, **small), sims.build(name, **{**small, **large}), groups)
               for name, (small, large, groups) in DGPS.items()]
    for dgp, large_dgp, groups in designs + list(GLMM_DESIGNS.values()):
        data = _draw(dgp, SEED)
        try:
            estimator.fit(data, np.random.default_rng(SEED))
        except InputError:
            continue
        replicates = tuple(_draw(dgp, SEED + r) for r in range(1, N_REPLICATES + 1)) if dgp.fixed_design else ()
        return EstimatorCase(estimator, data, groups, replicates, _draw(large_dgp, SEED), large_dgp.truth(), TOLERANCE)
    raise AssertionError(f"estimator preset {preset!r} fits none of the DGPs {list(DGPS) + list(GLMM_DESIGNS)}")


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("preset", sims.available("estimator"))
def test_estimator_preset_conforms(preset, check):
    run_check(check, case_for(preset))
