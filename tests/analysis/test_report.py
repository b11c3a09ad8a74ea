"""``report.html`` of the default study and of a grid study: complete, self-contained, and opened
by headless Chromium without errors and with every figure decoded."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from helpers.datasets import write_run

from analysis.cli import report_main
from analysis.report import write_report
from sims.api import run_study

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                  "--v=0"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Reports of the default study (12 replicates) and of a 2 x 2 grid of OLS estimators, the
    latter written through the ``clustersim-report`` command."""
    root = tmp_path_factory.mktemp("reports")
    default = write_run(run_study(["n_reps=12", "runner.n_jobs=1"]), root / "default")
    grid = write_run(run_study(["n_reps=40", "grid.dgp.n_subjects=[6,12]", "grid.dgp.slope=[0,3]",
                                "estimators={ols: ols, cr1: ols_cr1, cr2: ols_cr2}", "runner.n_jobs=1"]),
                     root / "grid")
    assert report_main([str(grid)]) == 0
    return {"default": write_report(default), "grid": grid / "report.html"}


@pytest.mark.parametrize("kind", ["default", "grid"])
def test_report_is_complete_and_self_contained(reports, kind):
    page = reports[kind].read_text(encoding="utf-8")
    for heading in ("Summary", "Calibration check", "Figures", "Resolved config", "Provenance", "Fits by status"):
        assert f">{heading}</h" in page, heading
    assert "version_numpy" in page and "seed 20210415" in page and "estimators:" in page
    figures = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}">', page)
    assert len(figures) == (6 if kind == "grid" else 5)  # the grid adds a nested-loop plot
    assert "Nested-loop plot" in page if kind == "grid" else "Nested-loop plot" not in page
    # Nothing from the network: no links or sources other than in-page anchors and data URIs.
    assert not re.search(r'(?:src|href)="(?!data:|#)', page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_report_command_refuses_a_directory_without_results(reports, tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("clustersim-report: error:") and error.count("\n") == 1
    runs = [str(path.parent) for path in reports.values()]
    assert report_main([*runs, "--output", str(tmp_path / "one.html")]) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
@pytest.mark.parametrize("kind", ["default", "grid"])
def test_report_opens_in_headless_chromium(reports, kind, tmp_path):
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         reports[kind].resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body, done.stdout[:500]
    images = 6 if kind == "grid" else 5
    assert f'data-images="{images}"' in body.group(0) and 'data-broken-images="0"' in body.group(0)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console


def test_report_is_titled_by_experiment_and_dgp_and_shows_the_command_as_typed(reports, tmp_path):
    """The header shows the arguments as typed (.hydra/command.yaml), not Hydra's rewritten
    overrides; the title names the experiment and DGP Hydra chose (.hydra/hydra.yaml)."""
    run = reports["grid"].parent
    hydra = run / ".hydra"
    hydra.mkdir(exist_ok=True)
    (hydra / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      experiment: few_clusters\n      dgp: clustered\n")
    (hydra / "overrides.yaml").write_text("- ~estimators\n- '+estimators={ols: ols}'\n")
    (hydra / "command.yaml").write_text("- grid.dgp.n_subjects=[6,12]\n- 'estimators={ols: ols}'\n")
    page = write_report(run, output=tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h1>clustersim report: few_clusters, DGP clustered (ClusteredDGP)</h1>" in page
    assert "Overrides: grid.dgp.n_subjects=[6,12] estimators={ols: ols}." in page
    assert "<pre>clustersim grid.dgp.n_subjects=[6,12] estimators={ols: ols}</pre>" in page
