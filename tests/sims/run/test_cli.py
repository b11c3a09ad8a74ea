"""The ``clustersim`` command: a run writes results.zarr and summary.csv; bad input stops
before any simulation with one line naming the key and exit code 2."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pandas as pd
import pytest
import xarray as xr
import yaml

from sims.run.cli import TYPED_ARGS_ENV, main
from helpers.cli import clustersim_command


def clustersim(run_dir, *overrides):
    return subprocess.run([*clustersim_command(), f"hydra.run.dir={run_dir}", *overrides],
                          capture_output=True, text=True, timeout=300)


def test_default_study_writes_store_summary_and_table(tmp_path):
    done = clustersim(tmp_path, "n_reps=12")
    assert done.returncode == 0, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(tmp_path / "results.zarr").load()
    assert list(ds["estimator"].values) == ["ols", "ols_cr1", "lmm_ri", "lmm_rs"]
    assert list(ds["term"].values) == ["Intercept", "X"]
    assert ds["estimate"].dims == ("estimator", "rep", "term")
    assert ds["status"].dims == ("estimator", "rep")
    assert ds.attrs["seed"] == 20210415 and "n_reps: 12" in ds.attrs["config"]
    assert ds["status"].attrs["flag_meanings"].split()[:4] == ["ok", "not_converged", "singular", "failed"]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["estimator", "term", "measure", "value", "mcse", "n"]
    assert {"bias", "empse", "modelse", "relerror_modelse", "coverage", "rejection", "rmse",
            "failure_rate"} <= set(summary["measure"])
    for name in ("ols_cr1", "lmm_rs", "coverage", "power", "empirical SE", "y ~ X + (1 + X | subject)"):
        assert name in done.stdout


def test_grid_run_gives_one_dataset_with_a_dim_per_factor(tmp_path):
    done = clustersim(tmp_path, "grid.dgp.n_subjects=[6,12,24]", "grid.dgp.slope=[0,3]", "n_reps=8",
                      "estimators={ols: ols, cr2: ols_cr2}", "print_table=false")
    assert done.returncode == 0, done.stderr
    ds = xr.open_zarr(tmp_path / "results.zarr")
    assert ds["estimate"].dims == ("n_subjects", "slope", "estimator", "rep", "term")
    assert list(ds["n_subjects"].values) == [6, 12, 24]
    assert ds["truth"].sel(slope=0, term="X").values.tolist() == [0.0, 0.0, 0.0]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns[:3]) == ["n_subjects", "slope", "estimator"]



def test_switching_random_slopes_off_needs_one_override(tmp_path, monkeypatch):
    """README's `clustersim dgp.n_subjects=48 dgp.var_slope=0`: the intercept-slope dependence
    is a correlation, so the covariance follows the slope variance to 0. In-process (the
    command's own ``main``)."""
    monkeypatch.setattr(sys, "argv", ["clustersim", f"hydra.run.dir={tmp_path}", "dgp.n_subjects=48", "dgp.var_slope=0",
                                      "n_reps=4", "runner.n_jobs=1", "print_table=false", "report=false",
                                      "estimators={ols_cr1: ols_cr1}"])
    monkeypatch.setenv(TYPED_ARGS_ENV, "")  # main sets it; restored afterwards
    main()
    ds = xr.open_zarr(tmp_path / "results.zarr")
    assert "var_slope: 0" in ds.attrs["config"] and "n_subjects: 48" in ds.attrs["config"]
    # The report's header shows the arguments as typed, not Hydra's "~estimators +estimators=...".
    typed = yaml.safe_load((tmp_path / ".hydra" / "command.yaml").read_text())
    assert typed[-1] == "estimators={ols_cr1: ols_cr1}" and typed[1:3] == ["dgp.n_subjects=48", "dgp.var_slope=0"]

BAD_INPUTS = [
    (["dgp=nope"], "dgp"),
    (["estimators.extra=nope"], "estimators.extra"),
    (["n_reps=0"], "n_reps"),
    (["n_reps=abc"], "n_reps"),
    (["alpha=1.5"], "alpha"),
    (["dgp.var_intercept=-1"], "dgp.var_intercept"),
    (["dgp.correlation_intercept_slope=2"], "dgp.correlation_intercept_slope"),
    (["dgp.n_subject=3"], "dgp.n_subject"),
    (["grid.dgp.nope=[1,2]"], "grid.dgp.nope"),
    (["grid.dgp.n_subjects=[]"], "grid.dgp.n_subjects"),
    (["grid.dgp.n_subjects=[0,4]"], "dgp.n_subjects"),
    (["runner.n_jobs=0"], "runner.n_jobs"),
    (["foo=1"], "foo"),
    (["estimators.bad={preset: ols, formula: 'y ~ Z'}"], "estimators.bad"),
    (["estimators.bad={preset: ols_cr1, cluster: school}"], "estimators.bad"),
    (["estimators.bad={preset: ols, vcov: HC9}"], "estimators.bad.vcov"),
    (["estimators.slow={preset: ols, timeout_s: -1}"], "estimators.slow.timeout_s"),
    (["runner=nope"], "runner"),
    (["experiment=nope"], "experiment"),
    (["runner.backend=spark"], "runner.backend"),
    (["runner.chunk_size=0"], "runner.chunk_size"),
    (["n_reps=auto"], "n_reps"),
    (["n_reps=auto", "+precision={measure: power, mcse: 0.01}"], "precision.measure"),
    (["n_reps=auto", "+precision={measure: coverage, mcse: 0}"], "precision.mcse"),
    (["alpha=0"], "alpha"),
    (["seed=-1"], "seed"),
    (["grid.n_reps=[10,20]"], "grid.n_reps"),
    (["grid.dgp.n_subjects=7"], "grid.dgp.n_subjects"),
    (["dgp.n_subjects=2.5"], "dgp.n_subjects"),
]


@pytest.mark.parametrize("overrides, key", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_stops_with_one_line_naming_the_key(tmp_path, overrides, key, monkeypatch, capsys):
    """In-process (the command's own ``main``), which is much faster than a subprocess."""
    monkeypatch.setattr(sys, "argv", ["clustersim", f"hydra.run.dir={tmp_path}", *overrides])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"clustersim: error: {key}"), lines[0]
    assert not (tmp_path / "results.zarr").exists()


def test_bad_input_exits_non_zero_from_the_command(tmp_path):
    done = clustersim(tmp_path, "n_reps=0")
    assert done.returncode == 2
    assert done.stderr.strip() == "clustersim: error: n_reps: must be >= 1, got 0"
