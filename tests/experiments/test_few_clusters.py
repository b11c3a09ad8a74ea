"""experiment=few_clusters shows the known pattern at G = 6: CR1 with t(G-1) over-rejects,
CR2 with Satterthwaite df and the wild cluster bootstrap stay near 5% (fixed seed;
tolerances in Monte Carlo SEs)."""
from __future__ import annotations

import analysis
from sims.api import run_study


def test_cr1_over_rejects_where_cr2_and_the_wild_bootstrap_do_not():
    ds = run_study(["experiment=few_clusters", "n_reps=1500", "grid.dgp.n_clusters=[6]", "runner.n_jobs=2"])
    summary = analysis.summarise(ds).sel(n_clusters=6, term="x", measure="rejection")
    rate = summary["value"].to_pandas()
    mcse = summary["mcse"].to_pandas()
    difference = analysis.compare(ds, "ols_cr1", "ols_cr2", "rejection").sel(n_clusters=6, term="x")
    assert float(difference["value"]) > 3 * float(difference["mcse"])  # paired: CR1 rejects more
    assert rate["ols_cr1"] - 3 * mcse["ols_cr1"] > 0.05
    for name in ("ols_cr2", "ols_wcb"):
        assert abs(rate[name] - 0.05) < 3 * mcse[name] + 0.01, (name, rate[name])
