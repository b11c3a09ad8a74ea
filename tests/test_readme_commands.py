"""Every ``clustersim`` command in the README's bash blocks runs as printed and exits 0, with
fewer replicates (``n_reps``, or a smaller ``precision`` target for ``n_reps=auto``), one worker
process and a scratch run directory, from a scratch folder that holds the README's files
(``file=`` blocks: the own-DGP example).

A few commands run by default; the rest (minutes in all on 2 cores) are marked ``slow``:
``python3 -m pytest -m slow tests/test_readme_commands.py``. Commands that need a machine this
one is not (a dask scheduler at a named host, a SLURM cluster) are skipped, saying so.
"""
from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from helpers import ROOT
from helpers.cli import clustersim_command
from helpers.readme import commands, save_files

README = (ROOT / "README.md").read_text()
N_REPS = 4
# Run by default: the config printer and a DGP change (a few seconds of CPU each; a whole run
# from the command line is also tests/sims/run/test_own_dgp.py's).
FAST = (
    "clustersim --cfg job",
    "clustersim dgp.n_subjects=48 dgp.var_slope=0",
)
NEEDS = {
    "runner.address=tcp://scheduler:8786": "needs a dask scheduler at tcp://scheduler:8786",
    "hydra/launcher=slurm": "needs a SLURM cluster",
}
# Keys the test sets itself (a scratch directory, fewer replicates, one worker).
OWN_KEYS = ("n_reps", "hydra.run.dir", "hydra.sweep.dir", "report", "runner.n_jobs")


def _param(command: str):
    marks = [] if command in FAST else [pytest.mark.slow]
    reason = next((why for needle, why in NEEDS.items() if needle in command), None)
    if reason:
        marks.append(pytest.mark.skip(reason=reason))
    return pytest.param(command, marks=marks, id=command)


def test_the_listed_commands_are_in_the_readme():
    assert set(FAST) <= set(commands(README))


def reduced(words: list[str], scratch) -> list[str]:
    """The command's overrides with fewer replicates, in a scratch directory."""
    key_of = lambda word: word.lstrip("+~").partition("=")[0]
    auto = "n_reps=auto" in words
    kept = [w for w in words if key_of(w) not in OWN_KEYS or (auto and w == "n_reps=auto")]
    if "runner.n_jobs" in map(key_of, words):
        kept += [w for w in words if key_of(w) == "runner.n_jobs"]
    else:
        kept.append("runner.n_jobs=1")
    if auto:
        kept += ["precision.min_reps=10", "precision.max_reps=20", "precision.step=10"]
    else:
        kept.append(f"n_reps={N_REPS}")
    directory = "hydra.sweep.dir" if "-m" in words else "hydra.run.dir"
    return [*kept, f"{directory}={scratch / 'run'}", "report=false"]


@pytest.mark.parametrize("command", [_param(c) for c in dict.fromkeys(commands(README))])
def test_the_readme_command_runs(command, tmp_path):
    save_files(README, tmp_path)
    words = shlex.split(command)
    env = dict(os.environ)
    while "=" in words[0]:  # VAR=value before the program
        name, _, value = words.pop(0).partition("=")
        value = str((tmp_path / value).resolve()) if name == "PYTHONPATH" else value
        env[name] = os.pathsep.join(filter(None, [value, os.environ.get(name)])) if name == "PYTHONPATH" else value
    assert words[0] == "clustersim"
    done = subprocess.run([*clustersim_command(), *reduced(words[1:], tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stderr or done.stdout)[-2000:]
