"""Hydra multirun sweeps (basic, joblib and submitit-local launchers), merging them with
clustersim-collect, replaying one replicate, and n_reps: auto."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import xarray as xr

from sims.api import run_study
from sims.run.collect import main as collect_main
from sims.run.replay import main as replay_main
from helpers.cli import clustersim_command

SWEEP = ("dgp.slope=0,3", "n_reps=6", "estimators={ols: ols, cr1: ols_cr1}",
         "print_table=false", "report=false")


def sweep(sweep_dir, *extra):
    done = subprocess.run([*clustersim_command(), "-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP, *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


# The basic launcher by default; the joblib and submitit-local launchers (the same collect path,
# 10-20 s each) with -m slow.
@pytest.mark.parametrize("launcher, subjects", [("basic", "6,12"), pytest.param("joblib", "12", marks=pytest.mark.slow),
                                                pytest.param("submitit_local", "12", marks=pytest.mark.slow)])
def test_multirun_sweep_collects_into_one_dataset(tmp_path, launcher, subjects):
    sweep(tmp_path / "sweep", f"hydra/launcher={launcher}", f"dgp.n_subjects={subjects}")
    assert collect_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "merged")]) == 0
    ds = xr.open_zarr(tmp_path / "merged" / "results.zarr")
    swept = ("n_subjects", "slope") if "," in subjects else ("slope",)
    assert ds["estimate"].dims == (*swept, "estimator", "rep", "term")
    assert ds["truth"].sel(term="X").values.ravel().tolist() == [0.0, 3.0] * (2 if "," in subjects else 1)
    # each job equals the single-cell study with the same settings
    alone = run_study(["dgp.n_subjects=12", "dgp.slope=3", "n_reps=6", "estimators={ols: ols, cr1: ols_cr1}"])
    job = ds["estimate"].sel(slope=3).sel({"n_subjects": 12} if "," in subjects else {})
    np.testing.assert_array_equal(job.values, alone["estimate"].values)
    assert (tmp_path / "merged" / "summary.csv").is_file()


def test_collect_refuses_runs_that_do_not_differ(tmp_path, capsys):
    for name in ("a", "b"):
        done = subprocess.run([*clustersim_command(), f"hydra.run.dir={tmp_path / name}", "n_reps=2",
                               "estimators={ols: ols}", "report=false"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert collect_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "do not differ" in capsys.readouterr().err


def test_replay_reproduces_a_stored_replicate(tmp_path, capsys):
    done = subprocess.run([*clustersim_command(), f"hydra.run.dir={tmp_path}", "n_reps=6", "grid.dgp.n_subjects=[6,12]",
                           "estimators={ols: ols, cr2: ols_cr2}", "report=false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code = replay_main([str(tmp_path), "--rep", "4", "--cell", "n_subjects=12", "--save-data", str(tmp_path / "r4.csv")])
    out = capsys.readouterr().out
    assert code == 0 and out.count("matches the stored result bit for bit") == 2
    assert (tmp_path / "r4.csv").read_text().count("\n") == 12 * 20 + 1
    assert replay_main([str(tmp_path), "--rep", "4", "--cell", "n_subjects=7"]) == 2
    assert replay_main([str(tmp_path), "--rep", "99", "--cell", "n_subjects=6"]) == 2


def test_auto_reps_stop_when_the_target_is_met(tmp_path):
    done = subprocess.run([*clustersim_command(), f"hydra.run.dir={tmp_path}", "n_reps=auto",
                           "+precision={measure: bias, mcse: 0.5, min_reps: 20, max_reps: 400, step: 20}",
                           "estimators={ols: ols, cr1: ols_cr1}", "report=false", "print_table=false"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ds = xr.open_zarr(tmp_path / "results.zarr")
    n = ds.sizes["rep"]
    assert 20 < n < 400 and n % 20 == 0
    assert ds.attrs["stop_reason"].startswith("target reached")
    from analysis.measures import summarise

    mcse = summarise(ds).compute()["mcse"].sel(measure="bias")
    assert float(mcse.max()) <= 0.5
    # one step fewer would not have met the target on the Intercept (the hardest term)
    fewer = summarise(ds.isel(rep=slice(0, n - 20))).compute()["mcse"].sel(measure="bias")
    assert float(fewer.max()) > 0.5
