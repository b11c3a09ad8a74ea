"""Helpers shared by the tests that drive the command line."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from helpers import TESTS


def clustersim_command() -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    script = shutil.which("clustersim")
    return [script] if script else [sys.executable, "-m", "sims.run.cli"]


def read_ledger(run_dir) -> list[tuple[int, int, int]]:
    """The finished chunks (cell, start, stop) of a run directory, in the order they finished."""
    path = Path(run_dir) / "results.progress"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [tuple(map(int, parts[:3])) for parts in lines if len(parts) == 4]


# The override that lets a study's _target_ name classes in tests/helpers/ (README: What a config
# can do).
ALLOW_HELPERS = "allow_targets=[helpers]"


def env_with_helpers() -> dict[str, str]:
    """The environment with ``tests/`` on PYTHONPATH, so that a command-line run can build
    ``_target_: helpers.misbehaving.<Class>`` (with :data:`ALLOW_HELPERS`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def main_in_process(monkeypatch, capsys, *args) -> tuple[int, list[str], str]:
    """``clustersim ARGS`` through the command's own ``main`` (much faster than a subprocess);
    (exit code, stderr lines, stdout). The run must stop with an exit."""
    import pytest

    from sims.run.cli import main

    monkeypatch.setattr(sys, "argv", ["clustersim", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    captured = capsys.readouterr()
    return stopped.value.code, captured.err.strip().splitlines(), captured.out
