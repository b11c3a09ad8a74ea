"""conf/experiment/small_sample_inference*.yaml at a reduced size: every test's rows are in the
dataset, with the reference law each method uses (docs/lmm.md, "Small samples")."""
from __future__ import annotations

import numpy as np

from sims.api import run_study


def test_small_sample_inference_runs_every_test():
    ds = run_study(["experiment=small_sample_inference", "n_reps=4", "grid.dgp.n_subjects=[6]", "runner.n_jobs=1"])
    assert set(ds.estimator.values) == {"wald_z", "satterthwaite", "kenward_roger", "lrt"}
    assert {"Intercept", "condition[T.b]", "condition[T.c]", "F:condition"} <= set(ds.term.values)
    p = ds.p_value.sel(term=["condition[T.b]", "F:condition"])
    assert np.isfinite(p).all()
    df = ds.df.sel(term="F:condition")
    assert np.isinf(df.sel(estimator=["wald_z", "lrt"])).all()
    assert (np.isfinite(df.sel(estimator=["satterthwaite", "kenward_roger"])) & (df.sel(estimator=["satterthwaite", "kenward_roger"]) > 0)).all()
    assert float(ds.truth.sel(term="condition[T.b]").squeeze()) == 0.0


def test_the_bootstrap_variant_adds_the_parametric_bootstrap():
    ds = run_study(["experiment=small_sample_inference_bootstrap", "n_reps=2", "estimators.bootstrap.n_boot=9",
                    "runner.n_jobs=1"])
    assert "bootstrap" in ds.estimator.values
    p = ds.p_value.sel(estimator="bootstrap", term="F:condition")
    assert np.all((p >= 0.1) & (p <= 1.0))  # (1 + k) / (1 + n), n <= 9
