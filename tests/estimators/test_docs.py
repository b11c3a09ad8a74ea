"""The worked example in docs/estimators.md works as printed: the user's estimator module passes
the conformance suite, runs in a study from the command line by ``_target_``, and the
experiment-file snippet composes into a study."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.cli import clustersim_command
from helpers import ROOT

DOC = (ROOT / "docs" / "estimators.md").read_text()


def block(info: str) -> str:
    """The body of the fenced code block whose info string is ``info``."""
    match = re.search(rf"^```{re.escape(info)}\n(.*?)^```", DOC, flags=re.MULTILINE | re.DOTALL)
    assert match, f"docs/estimators.md has no ```{info} block"
    return match.group(1)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_estimators.py").write_text(block("python file=my_estimators.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    yield tmp_path


def test_the_example_estimator_passes_the_conformance_suite(user_module):
    exec(compile(block("python check"), "docs/estimators.md", "exec"), {})


@pytest.mark.slow  # a whole CLI run (about 20 s); the experiment-snippet test covers the same _target_ route
def test_the_example_runs_in_a_study_from_the_command_line(user_module):
    command = next(line for line in block("bash").splitlines() if "clustersim" in line)
    words = shlex.split(command)
    assert words[0] == "PYTHONPATH=." and words[1] == "clustersim"
    run_dir = user_module / "run"
    overrides = [w for w in words[2:] if not w.startswith("n_reps=")]
    done = subprocess.run([*clustersim_command(), *overrides, "n_reps=10", "runner.n_jobs=1", "report=false",
                           "print_table=false", f"hydra.run.dir={run_dir}"],
                          cwd=user_module, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = pd.read_csv(run_dir / "summary.csv")
    bias = summary[(summary["estimator"] == "differences") & (summary["measure"] == "bias")].set_index("term")
    assert bias.loc["X", "n"] == 10 and abs(bias.loc["X", "value"]) < 3


def test_the_experiment_snippet_builds_a_study(user_module):
    from sims.api import compose
    from sims.run.study import validate

    snippet = yaml.safe_load(block("yaml"))
    flow = yaml.safe_dump(snippet["estimators"], default_flow_style=True, width=10_000).strip()
    allowed = ",".join(snippet["allow_targets"])
    study = validate(compose([f"estimators={flow}", f"allow_targets=[{allowed}]", "n_reps=2"]))
    built = study.cells[0].estimators
    assert type(built["differences"]).__name__ == "SubjectDifferences" and set(built) == {"differences", "ols_cr1"}
