"""The engine's convergence verdict follows lme4's gradient check: fits on a flat criterion
(a large variance ratio, as in the Simpson data) that stop on the iteration limit with a tiny
gradient count as converged."""
from __future__ import annotations

import numpy as np

from estimators.lmm.optimize import passes_lme4_gradient_check
from estimators.result import Status
from sims.api import compose
from sims.seeding import data_rng
from sims.study import validate


def test_lme4_gradient_check_uses_the_smaller_of_gradient_and_newton_step():
    H = np.array([[[1e4, 0.0], [0.0, 1.0]]])
    assert passes_lme4_gradient_check(np.array([[1e-3, 1e-3]]), H)  # |g| small though |Hg| = 10
    assert not passes_lme4_gradient_check(np.array([[3e-3, 1e-3]]), np.eye(2)[None] * 1.0)


def test_random_intercept_fits_of_the_simpson_data_converge():
    study = validate(compose(["experiment=seed_simpson"]))
    cell = study.cells[0]
    frames = [cell.dgp.generate(data_rng(study.seed, 0, rep)) for rep in range(30)]
    fits = cell.estimators["lmm_ri"].fit_batch(frames)
    assert all(f.status == Status.ok for f in fits)
    slopes = np.array([f.estimate[list(f.terms).index("finishtime")] for f in fits])
    assert abs(slopes.mean() - 0.40) < 4 * slopes.std(ddof=1) / np.sqrt(len(slopes))
