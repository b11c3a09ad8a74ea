"""clustersim-power (sims/run/power.py): a bisection over sizes whose decisions at each size
stop when the power's confidence interval excludes the target, checked on the sleepstudy
example against the closed-form power of its balanced design."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from estimators.presets import ConfigError
from helpers.closed_form import sleepstudy_power
from sims.run.power import PowerSearch, main, parse_sizes

STUDY = ["experiment=sleepstudy_power", "runner.n_jobs=1", "runner.progress=false"]


def test_parse_sizes():
    assert parse_sizes("10:14") == [10, 11, 12, 13, 14]
    assert parse_sizes("10:30:10") == [10, 20, 30]
    assert parse_sizes("40,10,20,10") == [10, 20, 40]
    with pytest.raises(ConfigError, match=r"^--sizes: must be"):
        parse_sizes("ten")


def test_the_search_decides_each_size_on_the_side_of_its_closed_form_power():
    """Candidates 10..50 by 10 for 80% (closed form 0.25, 0.49, 0.68, 0.805, 0.89): 50 is
    visited first, then 30, then 40, which at 1000 replicates is within Monte Carlo error of
    the target and is judged by its point estimate."""
    search = PowerSearch(STUDY, "Subject", "Days", "max", 0.8, [10, 20, 30, 40, 50], step=200, max_reps=1000)
    chosen = search.run()
    table = search.table().set_index("size")
    assert list(table.index) == [30, 40, 50]
    assert chosen in (40, 50) and chosen == (40 if table.loc[40, "power"] >= 0.8 else 50)
    for size, row in table.iterrows():
        truth = sleepstudy_power(3.0, size)
        if row["decision"] in ("above", "below"):
            assert (truth > 0.8) == (row["decision"] == "above"), (size, row["decision"], truth)
            assert row["reps"] < 1000  # decided early: replicates went where the decision was close
        assert abs(row["power"] - truth) <= 3 * row["mcse"], (size, row["power"], truth)
    assert table.loc[40, "decision"] == "undecided" and table.loc[40, "reps"] == 1000
    # a size's numbers do not depend on the path of the search
    again = PowerSearch(STUDY, "Subject", "Days", "max", 0.8, [30], step=200, max_reps=1000)
    again.run()
    assert again.results[30] == search.results[30]


def test_a_target_out_of_reach_is_said(capsys, tmp_path):
    code = main([*STUDY, "--factor", "Subject", "--term", "Days", "--estimator", "max", "--sizes", "10,12",
                 "--max-reps", "400", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "stays below 0.8 up to 12 levels of Subject" in out
    assert (tmp_path / "power.png").is_file()
    assert list(pd.read_csv(tmp_path / "power.csv")["decision"]) == ["below"]


@pytest.mark.parametrize("study, options, message", [
    (STUDY, {"--term": "Nights"}, r"^clustersim-power: error: --term: 'Nights' is not a term of the study \(terms: Intercept, Days\)$"),
    (STUDY, {"--estimator": "none"}, r"^clustersim-power: error: --estimator: 'none' is not in the study"),
    (STUDY, {"--factor": "Item"}, r"^clustersim-power: error: dgp\.extend: 'Item' is not a grouping factor of the formula"),
    (STUDY, {"--target": "1.5"}, r"^clustersim-power: error: --target: must be in \(0, 1\), got 1\.5$"),
    (["dgp=clustered"], {"--term": "X", "--estimator": "ols"},
     r"^clustersim-power: error: --factor: the DGP sims\.dgp\.clustered\.ClusteredDGP has no extend parameter \(use dgp=fitted\)$"),
])
def test_bad_input_is_one_line_naming_the_option(study, options, message, capsys, tmp_path):
    options = {"--factor": "Subject", "--term": "Days", "--estimator": "max", "--sizes": "10:20", "--out": str(tmp_path), **options}
    assert main([*study, *(x for item in options.items() for x in item)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.match(message, err), err
