"""lme4's cbpp (k of n cattle with the disease per herd and period: a two-column binomial
response clustered by herd) as committed for the R references, and the same trials as
Bernoulli rows, for the GLM and GEE tests of ``cbind(successes, failures)``, and the bad
trials both must refuse in one line naming the column."""
from __future__ import annotations

import pandas as pd

from helpers import TESTS

CBPP = pd.read_csv(TESTS / "reference_glmm" / "data" / "cbpp.csv")
CBPP_FORMULA = "cbind(incidence, size - incidence) ~ C(period)"


def bernoulli_rows(data: pd.DataFrame) -> pd.DataFrame:
    """Each k-of-n row of ``data`` (columns ``incidence``, ``size``) as n rows with a 0/1 ``y``:
    k of them 1, n - k of them 0; every other column repeated."""
    rows = data.loc[data.index.repeat(data["size"])].copy()
    rows["y"] = (rows.groupby(level=0).cumcount() < rows["incidence"]).astype(float)
    return rows.reset_index(drop=True)


# (change to CBPP, the start of the one-line error it must give)
BAD_TRIALS = [
    (lambda d: d.assign(incidence=d.incidence.where(d.index != 3, -1)), "^response column 'incidence' must be non-negative"),
    (lambda d: d.assign(incidence=d.incidence.where(d.index != 3, 99)),
     r"^response column 'size - incidence' is negative: successes exceed the trials"),
    (lambda d: d.assign(size=d["size"].where(d.index != 3, 0), incidence=d.incidence.where(d.index != 3, 0)),
     r"^response cbind\(incidence, size - incidence\) has rows with no trials \(row 3\)"),
    (lambda d: d.assign(incidence=d.incidence + 0.5), "^response column 'incidence' must hold integer counts"),
    (lambda d: d.drop(columns="size"), "^response 'size - incidence' is not a column of the data"),
]
