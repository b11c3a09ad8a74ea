"""README, "Your own DGP, estimators and experiments": a DGP class and config files in a folder
of the user's own (outside the package) run as printed, from the command line."""
from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimators.presets import ConfigError
from helpers import ROOT
from helpers.cli import clustersim_command
from helpers.readme import commands, save_files

README = (ROOT / "README.md").read_text()
SECTION = README.split("### Your own DGP", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
N_REPS = 25


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """The section's files saved into a folder of the user's, which is the working directory
    and on the import path (``PYTHONPATH=.``)."""
    folder = tmp_path / "study"
    folder.mkdir()
    saved = save_files(SECTION, folder)
    assert {p.relative_to(folder).as_posix() for p in saved} == {
        "my_dgps.py", "conf/dgp/skewed.yaml", "conf/experiment/skewed.yaml"}
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    return folder


def test_the_experiment_runs_from_the_command_line_with_the_expected_results(user_folder):
    command = next(c for c in commands(SECTION) if "experiment=" in c)
    words = shlex.split(command)
    assert words[:2] == ["PYTHONPATH=.", "clustersim"]
    run_dir = user_folder / "run"
    overrides = [w for w in words[2:] if not w.startswith("n_reps=")]
    done = subprocess.run([*clustersim_command(), *overrides, f"n_reps={N_REPS}", "runner.n_jobs=1", "report=false",
                           "print_table=false", f"hydra.run.dir={run_dir}"],
                          cwd=user_folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = pd.read_csv(run_dir / "summary.csv")
    x = summary[summary["term"] == "X"].set_index(["n_subjects", "estimator", "measure"])
    assert sorted(set(summary["estimator"])) == ["lmm_ri", "ols_cr1"]
    assert sorted(set(summary["n_subjects"])) == [10, 40]
    for (n_subjects, estimator, measure), row in x.iterrows():
        if measure == "bias":  # unbiased: 0 within 4 Monte Carlo SEs
            assert row["n"] == N_REPS and abs(row["value"]) <= 4 * row["mcse"], (n_subjects, estimator, row)
        if measure == "coverage":  # near 95%: within 4 binomial SEs
            assert abs(row["value"] - 0.95) <= 4 * np.sqrt(0.95 * 0.05 / N_REPS), (n_subjects, estimator, row)
    with xr.open_zarr(run_dir / "results.zarr") as results:
        stored = yaml.safe_load(results.attrs["config"])["dgp"]
        truth = float(results["truth"].sel(term="X").max())
    from my_dgps import SkewedTrials

    defaults = {f.name: f.default for f in dataclasses.fields(SkewedTrials)}
    assert stored == {"_target_": "my_dgps.SkewedTrials", **defaults, "sigma": 1.0}  # the class's defaults filled in
    assert truth == defaults["effect"]


def test_a_class_as_the_dgp_takes_its_defaults_and_the_parameters_set(user_folder):
    from sims.api import compose
    from sims.run.study import validate

    command = next(c for c in commands(SECTION) if "dgp=my_dgps" in c)
    overrides = [w for w in shlex.split(command)[2:] if not w.startswith("n_reps=")]
    for choice in (overrides, [o.replace("dgp=", "dgp._target_=") if o.startswith("dgp=") else o for o in overrides]):
        study = validate(compose([*choice, "n_reps=2", "estimators={ols_cr1: ols_cr1}"]))
        from my_dgps import SkewedTrials

        assert study.cells[0].dgp == SkewedTrials(n_subjects=12)
        assert set(study.config.dgp) == {"_target_", *(f.name for f in dataclasses.fields(SkewedTrials))}


def test_a_misspelt_parameter_of_a_class_dgp_names_the_close_one(user_folder):
    from sims.api import compose
    from sims.run.study import validate

    with pytest.raises(ConfigError, match=r"^dgp\.n_subject: not a parameter of my_dgps\.SkewedTrials; "
                                          r"did you mean 'dgp\.n_subjects'\?"):
        validate(compose(["dgp=my_dgps.SkewedTrials", "dgp.n_subject=12", "allow_targets=[my_dgps]", "n_reps=2"]))


def test_a_class_outside_allow_targets_is_refused_before_its_module_is_imported(user_folder):
    import sys

    from sims.api import compose
    from sims.run.study import validate

    sys.modules.pop("my_dgps", None)
    with pytest.raises(ConfigError, match=r"add 'my_dgps' to allow_targets"):
        validate(compose(["dgp=my_dgps.SkewedTrials", "n_reps=2"]))
    assert "my_dgps" not in sys.modules


def test_config_dir_finds_the_user_files_from_another_folder(user_folder, monkeypatch):
    from sims.api import compose
    from sims.run.cli import preflight

    elsewhere = user_folder.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = preflight(["--config-dir", str(user_folder / "conf"), "experiment=skewed", "n_reps=2"])
    assert args[:2] == ["--config-dir", str(user_folder / "conf")]
    cfg = compose([a for a in args if "=" in a and not a.startswith("-")])
    assert cfg.dgp == {"_target_": "my_dgps.SkewedTrials", "sigma": 1.0} and set(cfg.estimators) == {"ols_cr1", "lmm_ri"}


def test_an_estimator_preset_of_the_users_own_is_found_in_their_conf(user_folder):
    from sims.api import compose
    from sims.run.study import validate

    (user_folder / "conf" / "estimator").mkdir()
    (user_folder / "conf" / "estimator" / "cr2_subject.yaml").write_text(
        "_target_: estimators.ols.OLS\nformula: y ~ X\nvcov: CR2\ncluster: subject\n")
    study = validate(compose(["estimators={mine: cr2_subject}", "n_reps=2"]))
    assert study.cells[0].estimators["mine"].vcov == "CR2"
    with pytest.raises(ConfigError, match=r"unknown estimator 'cr2_subjekt'; did you mean 'cr2_subject'\?"):
        validate(compose(["estimators={mine: cr2_subjekt}", "n_reps=2"]))
