"""The lme4 reference fits of the LMM engine's tests: ``tests/reference/lmm.csv`` and
``tests/reference_lmm/lmm_extra.csv`` (R scripts beside them), one case per data set, formula and
REML flag."""
from __future__ import annotations

import pandas as pd

from helpers import TESTS

REFERENCES = [(TESTS / "reference" / "lmm.csv", TESTS / "reference" / "data"),
              (TESTS / "reference_lmm" / "lmm_extra.csv", TESTS / "reference_lmm" / "data")]


def reference_cases() -> list[tuple]:
    """(data file, formula, reml, lme4's rows for that fit) of every reference fit."""
    folders = [folder for _, folder in REFERENCES]
    out = []
    for table, _ in REFERENCES:
        ref = pd.read_csv(table)
        for (dataset, formula, reml), rows in ref.groupby(["dataset", "formula", "reml"], sort=False):
            path = next(folder / f"{dataset}.csv" for folder in folders if (folder / f"{dataset}.csv").is_file())
            out.append((path, formula, bool(reml), rows.reset_index(drop=True)))
    return out
