"""The calibration check passes a calibrated estimator and fails a miscalibrated one, and
``clustersim-check`` says so with its exit code."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy import stats
from helpers.datasets import synthetic_dataset, write_run

from analysis import check_calibration
from analysis.calibration import binomial_p_value, holm, interval_alphas
from analysis.cli import check_main
from sims.api import run_study


@pytest.fixture(scope="module")
def null_study():
    """The lecture's clustered design with no effect of X, 300 replicates, iid OLS (SE of X far
    too large, of the intercept far too small) against cluster-robust CR2 OLS."""
    return run_study(["n_reps=300", "seed=11", "dgp.slope=0", "estimators={ols: ols, cr2: ols_cr2}",
                      "runner.n_jobs=1"])


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.5])
    # sorted finite: 0.005, 0.01, 0.03, 0.04, 0.5 with m = 5 -> 0.025, 0.04, 0.09, 0.09 (monotone), 0.5
    expected = np.array([0.04, 0.09, 0.09, 0.025, np.nan, 0.5])
    np.testing.assert_allclose(holm(p), expected)
    assert np.isnan(holm([np.nan])).all()


def test_binomial_p_value_is_the_exact_two_sided_test():
    assert binomial_p_value(15, 300, 0.05) == pytest.approx(stats.binomtest(15, 300, 0.05).pvalue)
    # all 20 intervals cover at nominal .95: two-sided p = P(X = 20) + P(X <= k) for the k with pmf <= .95^20
    pmf = stats.binom.pmf(np.arange(21), 20, 0.95)
    assert binomial_p_value(20, 20, 0.95) == pytest.approx(pmf[pmf <= pmf[20] * (1 + 1e-7)].sum())
    assert np.isnan(binomial_p_value(0, 0, 0.95))


@pytest.mark.parametrize("p", [0.0, 0.01, 0.05, 0.3, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("n", [1, 7, 200, 4_582])
def test_binomial_p_value_agrees_with_scipy_in_both_tails_and_at_the_edges(n, p):
    ks = sorted({0, 1, n // 3, int(p * n), int(np.ceil(p * n)), n - 1, n} & set(range(n + 1)))
    for k in ks:
        assert binomial_p_value(k, n, p) == pytest.approx(stats.binomtest(k, n, p).pvalue, rel=1e-9, abs=1e-300), k


def test_calibrated_passes_and_miscalibrated_fails_on_synthetic_data():
    ds = synthetic_dataset(seed=12, n_reps=400)
    result = check_calibration(ds)
    table = result.table.set_index(["estimator", "term", "check"]).sort_index()
    assert set(table.index.get_level_values("check")) == {"coverage", "type1"}
    assert ("good", "Intercept", "type1") not in table.index  # Type I error only where the truth is 0
    assert (table.loc["good", "verdict"] == "PASS").all()
    assert (table.loc["narrow", "verdict"] == "FAIL").all()
    assert not result.passed
    assert check_calibration(ds, estimators=["good"]).passed
    assert "FAIL" in result.to_string() and "checks FAIL" in result.to_string()


def test_rules_combine_the_test_and_the_band():
    # 36 of 40 intervals cover: 0.90 is outside the band 0.925..0.975 but not significantly below 0.95.
    ds = synthetic_dataset(seed=13, n_reps=40, estimators={"e": (0.0, 1.0, 1.0, 0.0)})
    covers = np.arange(40) >= 4
    ds["ci_lower"].loc[dict(term="X")] = np.where(covers, -1.0, 1.0)[None, :]
    ds["ci_upper"].loc[dict(term="X")] = np.where(covers, 1.0, 2.0)[None, :]
    row = lambda rule: check_calibration(ds, rule=rule, terms=["X"], checks=["coverage"]).table.iloc[0]
    both = row("both")
    assert (both["k"], both["n"]) == (36, 40)
    assert not both["in_band"] and both["consistent"] and both["verdict"] == "PASS"
    assert row("band")["verdict"] == "FAIL" and row("either")["verdict"] == "FAIL"
    assert row("test")["verdict"] == "PASS"
    wide = check_calibration(ds, coverage_band=(0.0, 4.0), rule="band", terms=["X"], checks=["coverage"])
    assert wide.table.iloc[0]["band_low"] == pytest.approx(0.8) and wide.passed


def test_failures_counted_as_misses_and_failure_rate_limit():
    ds = synthetic_dataset(seed=14, n_reps=400, estimators={"flaky": (0.0, 1.0, 1.0, 0.3)})
    assert check_calibration(ds).passed
    counted = check_calibration(ds, failures="count")
    assert counted.table.set_index("check").loc["coverage", "verdict"].eq("FAIL").all()
    assert not check_calibration(ds, max_failure_rate=0.1).passed


def test_terms_never_reported_are_skipped_and_estimators_that_always_fail_fail():
    ds = synthetic_dataset(seed=16, n_reps=50, estimators={"good": (0.0, 1.0, 1.0, 0.0), "broken": (0, 1, 1, 0)})
    # "good" reports no interval for the intercept (as fixed effects do); "broken" always fails.
    ds["ci_lower"].loc[dict(estimator="good", term="Intercept")] = np.nan
    ds["status"].loc[dict(estimator="broken")] = 3
    table = check_calibration(ds).table.set_index(["estimator", "term", "check"]).sort_index()
    assert ("good", "Intercept", "coverage") not in table.index
    assert (table.loc["good", "verdict"] == "PASS").all()
    assert (table.loc["broken", "verdict"] == "FAIL").all() and (table.loc["broken", "n"] == 0).all()


def test_nominal_coverage_uses_each_estimators_own_alpha():
    ds = synthetic_dataset(seed=15, n_reps=50)
    config = yaml.safe_load(ds.attrs["config"])
    config["estimators"]["narrow"]["alpha"] = 0.2
    ds.attrs["config"] = yaml.safe_dump(config)
    assert interval_alphas(ds) == {"good": 0.05, "narrow": 0.2, "flaky": 0.05}
    table = check_calibration(ds, checks=["coverage"]).table.set_index("estimator")
    assert table.loc["narrow", "nominal"].iloc[0] == pytest.approx(0.8)


def test_clustered_study_ols_fails_and_cr2_passes(null_study):
    result = check_calibration(null_study)
    verdicts = result.table.set_index(["estimator", "term", "check"]).sort_index()["verdict"]
    assert (verdicts.loc["cr2"] == "PASS").all()
    assert verdicts.loc[("ols", "X", "type1")] == "FAIL"  # conservative: almost never rejects
    assert verdicts.loc[("ols", "Intercept", "coverage")] == "FAIL"  # liberal: intervals far too narrow
    assert check_calibration(null_study, estimators=["cr2"]).passed


def test_check_command_exit_codes(null_study, tmp_path, capsys):
    run = write_run(null_study, tmp_path / "run")
    assert check_main([str(run)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "PASS" in out and "3 of 6 checks FAIL" in out
    assert check_main([str(run), "--estimators", "cr2"]) == 0
    assert "all 3 checks PASS" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert check_main([str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("clustersim-check: error:") and "results.zarr" in error
    assert check_main([str(run), "--terms", "Z"]) == 2


def test_check_command_as_a_process_and_over_a_sweep_directory(null_study, tmp_path):
    sweep = tmp_path / "sweep"
    for index, name in enumerate(("ols", "cr2")):
        write_run(null_study.sel(estimator=[name]), sweep / str(index))
    done = subprocess.run([sys.executable, "-m", "analysis.cli", "check", str(sweep), "--terms", "X"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[0] == "run" and "2 of 4 checks FAIL" in lines[-1]
    assert check_main([str(sweep / "1")]) == 0
