"""The printed summary table (analysis/table.py): numbers at their Monte Carlo precision,
measures in words, rows only for terms an estimator reports, and the README's table."""
import subprocess

import numpy as np
import pytest
import xarray as xr
import yaml

from analysis import summarise
from analysis.table import HEADLINE, format_table, value_with_mcse
from helpers import ROOT
from helpers.cli import clustersim_command


@pytest.mark.parametrize("value, mcse, shown", [
    (0.51184, 0.001264, "0.5118 (0.0013)"),      # the MCSE's 2 digits fix the decimals
    (0.000271, 0.000233, "0.00027 (0.00023)"),   # Simpson's slope SE, once 0.000 (0.000)
    (0.002010, 0.0000213, "0.002010 (0.000021)"),
    (801.93, 2.04, "801.9 (2.0)"),
    (1234.567, 0.0012, "1235 (0)"),              # at most 4 significant digits of the value
    (-0.0654, 0.0671, "-0.065 (0.067)"),
    (1.0, 0.0, "1.000 (0.000)"),                 # MCSE 0: the value's 4 digits
    (0.0, 0.0, "0.000 (0.000)"),
    (0.25, float("nan"), "0.2500"),
    (float("nan"), float("nan"), ""),
])
def test_values_are_shown_to_their_monte_carlo_precision(value, mcse, shown):
    assert value_with_mcse(value, mcse) == shown


def summary_of(values: dict[str, list[float]], terms: list[str]) -> xr.Dataset:
    """One estimator, the given terms, HEADLINE measures; mcse a tenth of each value."""
    value = np.array([[values[m][i] for m in HEADLINE] for i in range(len(terms))])[None]
    dims = ("estimator", "term", "measure")
    coords = {"estimator": ["est"], "term": terms, "measure": list(HEADLINE)}
    return xr.Dataset({"value": (dims, value), "mcse": (dims, value / 10), "n": (dims, np.full(value.shape, 50))},
                      coords=coords, attrs={"alpha": 0.05})


def test_table_names_measures_in_words_and_leaves_out_unreported_terms():
    nan = float("nan")
    summary = summary_of({"bias": [0.1, 0.2, nan], "empse": [1.0, 1.1, nan], "modelse": [1.0, 1.2, nan],
                          "coverage": [0.95, 0.9, nan], "rejection": [0.8, 0.06, nan],
                          "failure_rate": [0.0, 0.0, nan]}, ["slope", "null_term", "slope_marginal"])
    truth = xr.DataArray([3.0, 0.0, 3.0], dims="term", coords={"term": ["slope", "null_term", "slope_marginal"]})
    text = format_table(summary, truth=truth,
                        estimators={"est": {"_target_": "estimators.lmm.LMM", "formula": "y ~ X + (1 | s)", "reml": True}})
    header = text.splitlines()[1]
    assert header.split() == ["bias", "empirical", "SE", "model", "SE", "coverage", "power", "Type", "I", "error",
                              "failures"]
    assert "slope_marginal" not in text and " - " not in text
    assert "power and Type I error: share of p < 0.05" in text.splitlines()[0]
    slope = next(line for line in text.splitlines() if " slope " in line)
    null = next(line for line in text.splitlines() if "null_term" in line)
    assert "0.800 (0.080)" in slope and "0.800" not in null and "0.0600 (0.0060)" in null
    assert text.count("LMM  y ~ X + (1 | s)  (reml true)") == 1


def readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("It prints (numbers from seed 20210415):\n\n```\n", 1)[1]
    return block.split("\n```", 1)[0]


@pytest.mark.slow
def test_readme_table_is_the_default_studys_digit_for_digit(tmp_path):
    """`clustersim` with its defaults, the X rows of its table: the README's block, verbatim."""
    done = subprocess.run([*clustersim_command(), f"hydra.run.dir={tmp_path}", "report=false"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    ds = xr.open_zarr(tmp_path / "results.zarr").load()
    shown = format_table(summarise(ds).sel(term=["X"]), truth=ds["truth"],
                         estimators=yaml.safe_load(ds.attrs["config"])["estimators"])
    assert shown == readme_table()
    assert all(line in done.stdout for line in readme_table().splitlines()[-4:])
