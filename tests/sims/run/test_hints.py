"""What the command line says to a user who has not read the docs yet: its own ``--help``,
"did you mean" for a misspelt name or key, a word while the summary is computed, and one line
for a launcher this machine cannot use."""
from __future__ import annotations

import subprocess
import sys

import pytest

from estimators.presets import available
from helpers.cli import clustersim_command, main_in_process


@pytest.fixture(scope="module")
def help_text():
    done = subprocess.run([*clustersim_command(), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_says_what_the_tool_does_and_what_a_run_writes(help_text):
    assert help_text.startswith("clustersim: Monte Carlo simulation studies of estimators on clustered data.")
    for words in ("n_reps=200", "dgp.<param>=VALUE", "estimators.NAME=PRESET", "grid.<key>=[V1,V2,...]",
                  "hydra.run.dir=DIR", "results.zarr", "summary.csv", "report.html", "--config-dir DIR", "docs/"):
        assert words in help_text, words
    assert "Powered by Hydra" not in help_text and "== Configuration groups ==" not in help_text


def test_help_lists_the_groups_that_can_be_selected_with_their_options(help_text):
    groups = {line.split("=", 1)[0].strip() for line in help_text.splitlines() if line.startswith("  ") and
              line.split("=", 1)[0].strip() in ("experiment", "dgp", "estimator_set", "runner", "hydra/launcher", "estimator")}
    assert groups == {"experiment", "dgp", "estimator_set", "runner", "hydra/launcher"}  # estimator is not a group choice
    flat = " ".join(help_text.split())
    for group in ("experiment", "dgp", "runner", "estimator"):
        assert ", ".join(available(group)) in flat, group


@pytest.mark.parametrize("args, line", [
    (["dgp.n_subject=12"], "clustersim: error: dgp.n_subject: not a parameter of sims.dgp.clustered.ClusteredDGP; "
                           "did you mean 'dgp.n_subjects'?"),
    (["runner.n_job=1"], "clustersim: error: runner.n_job: no such key in the config; did you mean 'runner.n_jobs'?"),
    (["n_rep=3"], "clustersim: error: n_rep: unknown key; did you mean 'n_reps'?"),
    (["experiment=seed_simpsons"], "clustersim: error: experiment: unknown experiment 'seed_simpsons'; "
                                   "did you mean 'seed_simpson'?"),
    (["dgp=clusterd"], "clustersim: error: dgp: unknown dgp 'clusterd'; did you mean 'clustered'?"),
    (["estimators.x=ols_cr22"], "clustersim: error: estimators.x: unknown estimator 'ols_cr22'; did you mean 'ols_cr2'?"),
])
def test_a_misspelt_name_or_key_gets_the_close_one(args, line, monkeypatch, capsys, tmp_path):
    code, err, _ = main_in_process(monkeypatch, capsys, *args, "n_reps=2", f"hydra.run.dir={tmp_path}")
    assert code == 2 and len(err) == 1 and err[0].startswith(line), err
    assert "+" not in err[0]  # no advice to add a key the DGP would refuse


def test_a_mapping_for_the_dgp_says_how_to_choose_one(monkeypatch, capsys, tmp_path):
    code, err, _ = main_in_process(monkeypatch, capsys, "dgp={_target_: my_dgps.SkewedTrials}", f"hydra.run.dir={tmp_path}")
    assert code == 2 and err == ["clustersim: error: dgp: takes a name (dgp=clustered) or a class "
                                 "(dgp=<module>.<Class>), not a mapping; set its parameters with dgp.<param>=..."]


def test_a_name_far_from_every_option_gets_no_guess(monkeypatch, capsys, tmp_path):
    code, err, _ = main_in_process(monkeypatch, capsys, "estimators.x=zzzz", "n_reps=2", f"hydra.run.dir={tmp_path}")
    assert code == 2 and "did you mean" not in err[0] and "(available: " in err[0]


def test_a_slurm_launcher_without_slurm_stops_in_one_line(monkeypatch, capsys, tmp_path):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    code, err, _ = main_in_process(monkeypatch, capsys, "-m", "hydra/launcher=slurm", "dgp.n_subjects=6,12",
                                   f"hydra.sweep.dir={tmp_path}")
    assert code == 2 and err == ["clustersim: error: hydra/launcher: slurm submits SLURM jobs, but sbatch and srun are "
                                 "not on PATH; run on a SLURM login node, or sweep on this machine with "
                                 "hydra/launcher=joblib"]


@pytest.mark.parametrize("terminal, report, said", [
    (True, False, "clustersim: computing the summary ...\n"),
    (True, True, "clustersim: computing the summary and the report ...\n"),
    (False, False, ""),
])
def test_a_word_on_stderr_while_the_summary_is_computed(terminal, report, said, monkeypatch, capsys, tmp_path):
    """On a terminal, after the progress bar (the chunks are a synthetic dataset here): the
    summary and the report take a while on big stores."""
    from omegaconf import OmegaConf

    from helpers.datasets import synthetic_dataset
    from sims.api import compose
    from sims.run import cli

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    monkeypatch.setattr(cli, "validate", lambda cfg: cfg)
    monkeypatch.setattr(cli, "release_workers", lambda study: None)
    monkeypatch.setattr(cli, "run_in_directory", lambda study, output_dir: synthetic_dataset(n_reps=20))
    monkeypatch.setattr("analysis.report.write_report", lambda output_dir, summary: output_dir / "report.html")
    cfg = compose(["print_table=false", f"report={str(report).lower()}"])
    cli._run_study(cfg, tmp_path)
    err = capsys.readouterr().err  # (a log handler an earlier in-process run left may complain here too)
    assert (said in err if said else "computing the summary" not in err) and (tmp_path / "summary.csv").is_file()
