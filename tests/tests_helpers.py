"""Helpers shared by the tests that drive the command line."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path


def clustersim_command() -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    script = shutil.which("clustersim")
    return [script] if script else [sys.executable, "-m", "sims.cli"]


def read_ledger(run_dir) -> list[tuple[int, int, int]]:
    """The finished chunks (cell, start, stop) of a run directory, in the order they finished."""
    path = Path(run_dir) / "results.progress"
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if len(line.split()) == 3]
