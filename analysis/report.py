"""``report.html``: one self-contained page per run directory.

It holds the study's config and overrides, its provenance (the dataset's attributes and the
status of every fit), the summary tables, the calibration check's verdicts and the figures of
:mod:`analysis.plots`, embedded as base64 PNG. Nothing is loaded from the network: the page
has no external stylesheet, script, font or image, so it reads the same offline, archived or
mailed. A short inline script only marks images that failed to decode (``data-broken-images``
on ``<body>``), which tests read.

``write_report(run_dir)`` is what the study command calls at the end of a run.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from analysis import plots
from analysis.calibration import CalibrationResult, check_calibration, describe_settings, display_table
from analysis.measures import lookup, summarise
from analysis.replicates import VALID_STATUSES
from analysis.schema import COMMAND, REPORT, RESULTS, grid_dims, open_results
from analysis.table import POWER, TYPE_I_ERROR, cell_tables, column_name
from estimators.result import Status

TABLE_MEASURES = ("bias", "empse", "modelse", "relerror_modelse", "coverage", "becoverage", "rejection",
                  "rejection_all", "failure_rate")


@dataclass
class ReportFigure:
    key: str
    title: str
    caption: str
    png: bytes


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def figures(ds: xr.Dataset, summary: xr.Dataset, save_dir: Path | None = None) -> list[ReportFigure]:
    """The report's figures, in order; also written as PNG and SVG into ``save_dir`` if given."""
    dims = grid_dims(ds)
    term = plots.default_terms(ds)[0]
    first_cell = plots.cells(ds)[0]
    factor_text = f"against {dims[0]}" if dims else "per estimator"
    specs: list[tuple[str, str, str, Callable]] = [
        ("rejection", f"Rejection rate {factor_text}",
         "Share of replicates with p < alpha, with 95% Monte Carlo bands. Where the truth is 0 this is the "
         "Type I error: it should sit on the dashed nominal line, inside the grey band (Bradley's liberal "
         "criterion, 0.5 to 1.5 times alpha). Elsewhere it is the power.",
         lambda: plots.plot_rejection(ds, summary=summary)),
        ("coverage", f"Coverage {factor_text}",
         "Share of intervals that contain the truth, with 95% Monte Carlo bands; dashed: nominal 1 - alpha; "
         "grey: the band 1 - 1.5 alpha to 1 - 0.5 alpha.",
         lambda: plots.plot_coverage(ds, summary=summary)),
        ("se", "Model SE against empirical SE",
         "One point per grid cell and estimator, with 95% Monte Carlo intervals. On the diagonal the reported "
         "SEs are right on average; below it they are too small (intervals too narrow, Type I error too "
         "high); above it too large (conservative tests, lost power).",
         lambda: plots.plot_se(ds, summary=summary)),
    ]
    if len(dims) >= 2:
        specs.append(("nested_loop", "Nested-loop plot of the rejection rate",
                      "Every grid cell side by side, the first factor changing slowest; the steps underneath "
                      "show each factor's level in each cell.",
                      lambda: plots.plot_nested_loop(ds, "rejection", term, summary=summary)))
    where = f" in the cell {plots.cell_label(first_cell)}" if first_cell else ""
    specs.append(("zip", f"Zip plot of {term}{where}",
                  "Each replicate's interval, ranked by the distance of the truth from its estimate in "
                  "half-widths. Intervals that miss the truth (vermillion) collect at the top; with calibrated "
                  "intervals the boundary meets the dashed nominal line inside the grey Monte Carlo band.",
                  lambda: plots.plot_zip(ds, term=term, cell=first_cell)))
    specs.append(("estimates", "Distribution of the estimates",
                  "Violins of the valid estimates per estimator, with quartiles (black bar), median (black tick "
                  "across the bar) and mean (white dot); dashed: the truth.",
                  lambda: plots.plot_estimates(ds)))
    out = []
    for key, title, caption, draw in specs:
        fig = draw()
        if save_dir is not None:
            plots.save_figure(fig, Path(save_dir) / key)
        out.append(ReportFigure(key, title, caption, _png(fig)))
    return out


# ---------------------------------------------------------------------------------------------
# HTML pieces

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 1rem 2rem 4rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { margin-bottom: 0.3rem; }
.sub { color: #555; margin-top: 0; }
nav a { margin-right: 1rem; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.2rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; white-space: normal; } td.text, th.text { text-align: left; }
td.PASS { background: #e3f2e8; color: #0b5d2a; font-weight: 600; text-align: center; }
td.FAIL { background: #fbe3dc; color: #8a1c00; font-weight: 600; text-align: center; }
.verdict { padding: 0.6rem 1rem; border-radius: 4px; font-weight: 600; display: inline-block; }
.verdict.PASS { background: #e3f2e8; color: #0b5d2a; } .verdict.FAIL { background: #fbe3dc; color: #8a1c00; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #333; font-size: 0.9rem; max-width: 60rem; }
.scroll { overflow-x: auto; max-width: 100%; }  /* a table wider than the page scrolls inside itself */
#image-warning { display: none; background: #fbe3dc; padding: 0.5rem; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { broken += 1; }
  });
  document.body.setAttribute("data-images", String(document.images.length));
  document.body.setAttribute("data-broken-images", String(broken));
  if (broken > 0) { document.getElementById("image-warning").style.display = "block"; }
});
"""


def _e(value) -> str:
    return html.escape(str(value))


def frame_to_html(frame: pd.DataFrame, text_columns: Sequence[str] = (), verdict_column: str | None = None) -> str:
    """A plain HTML table; ``verdict_column`` cells get the class PASS or FAIL."""
    head = "".join(f'<th class="{"text" if c in text_columns else ""}">{_e(c)}</th>' for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            value = row[column]
            classes = []
            if column in text_columns:
                classes.append("text")
            if column == verdict_column:
                classes.append(str(value))
            cells.append(f'<td class="{" ".join(classes)}">{_e(value)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def summary_tables(summary: xr.Dataset, measures: Sequence[str] = TABLE_MEASURES,
                   truth: xr.DataArray | None = None) -> str:
    """One table per grid cell: rows estimator x term, columns ``value (MCSE)`` of ``measures``
    in words (:func:`analysis.table.cell_tables`)."""
    blocks = []
    for cell, n, table in cell_tables(summary, measures, truth):
        header = ", ".join(f"{d} = {k}" for d, k in cell.items())
        title = f"<h3>{_e(header)}</h3>" if header else ""
        blocks.append(f"{title}<p class='sub'>value (Monte Carlo SE); up to {n} replicates</p>"
                      + frame_to_html(table.reset_index(), text_columns=("estimator", "term")))
    return "\n".join(blocks)


def measure_key(summary: xr.Dataset, measures: Sequence[str] = TABLE_MEASURES) -> str:
    """What each column of :func:`summary_tables` is: the measure's label, as HTML (the
    rejection rate is power where the truth is not 0, Type I error where it is)."""
    alpha = float(summary.attrs.get("alpha", 0.05))
    shown = [m for m in measures if m in summary["measure"].values]
    return "; ".join(f"<code>{_e(column_name(m) if m != 'rejection' else f'{POWER} / {TYPE_I_ERROR}')}</code> "
                     f"{_e(lookup(m, alpha).label)}" for m in shown)


def status_table(ds: xr.Dataset) -> pd.DataFrame:
    """Count of fits per estimator and status (over all cells and replicates)."""
    counts = {}
    status = ds["status"]
    for code in Status:
        counts[code.name] = (status == int(code)).sum([d for d in status.dims if d != "estimator"])
    known = xr.concat(list(counts.values()), dim="status").sum("status")
    total = status.count([d for d in status.dims if d != "estimator"])
    counts["other"] = total - known
    frame = xr.Dataset(counts).compute().to_dataframe()
    frame = frame.loc[:, (frame != 0).any(axis=0) | (frame.columns == "ok")]
    return frame.reset_index()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _yaml_list(text: str | None) -> list | None:
    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, list) else None


def calibration_html(result: CalibrationResult) -> str:
    table = result.table
    if table.empty:
        return "<p>No checks.</p>"
    n_fail = int((table["verdict"] != "PASS").sum())
    verdict = "PASS" if n_fail == 0 else "FAIL"
    text = f"all {len(table)} checks pass" if n_fail == 0 else f"{n_fail} of {len(table)} checks fail"
    shown = display_table(result)
    text_columns = [c for c in shown.columns if c not in ("nominal", "observed (MCSE)", "band", "k/n", "p_holm",
                                                          "failures", "verdict")]
    intro = (f'<p><span class="verdict {verdict}">{_e(text)}</span></p>'
             f"<p>{_e(describe_settings(result.settings))}. <code>clustersim-check DIR</code> prints the same "
             "table and takes other settings (<code>clustersim-check --help</code>).</p>")
    if len(shown) <= 30:
        return intro + frame_to_html(shown, text_columns=text_columns, verdict_column="verdict")
    failing = shown[shown["verdict"] != "PASS"]
    head = (("<h3>Failing checks</h3>" + frame_to_html(failing, text_columns=text_columns, verdict_column="verdict"))
            if len(failing) else "")
    return (intro + head + f"<details><summary>All {len(shown)} checks</summary>"
            + frame_to_html(shown, text_columns=text_columns, verdict_column="verdict") + "</details>")


def study_title(ds: xr.Dataset, run_dir: Path) -> str:
    """``clustersim report: <experiment>, DGP <name> (<class>)``: the experiment and DGP Hydra
    chose (``.hydra/hydra.yaml``), else the DGP class of the stored config."""
    hydra_yaml = _read_text(run_dir / ".hydra" / "hydra.yaml")
    try:
        choices = (yaml.safe_load(hydra_yaml) or {})["hydra"]["runtime"]["choices"] if hydra_yaml else {}
        target = str((yaml.safe_load(ds.attrs.get("config", "")) or {})["dgp"]["_target_"]).rsplit(".", 1)[-1]
    except (yaml.YAMLError, KeyError, TypeError):
        choices, target = {}, "?"
    experiment = choices.get("experiment") or "default study"
    dgp = f"{choices['dgp']} ({target})" if choices.get("dgp") else target
    return f"clustersim report: {experiment}, DGP {dgp}"


def build_html(ds: xr.Dataset, run_dir: Path, summary: xr.Dataset, calibration: CalibrationResult,
               figure_list: Sequence[ReportFigure]) -> str:
    """The whole page as a string."""
    dims = grid_dims(ds)
    n_cells = int(np.prod([ds.sizes[d] for d in dims])) if dims else 1
    title = study_title(ds, run_dir)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    overrides = _read_text(run_dir / ".hydra" / "overrides.yaml")
    typed = _yaml_list(_read_text(run_dir / ".hydra" / COMMAND))
    swept = " ".join(str(item) for item in (typed if typed is not None else _yaml_list(overrides) or []))
    intro = (f"{n_cells} grid cell(s) x {ds.sizes['rep']} replicates x {ds.sizes['estimator']} estimator(s) "
             f"({', '.join(plots.estimator_names(ds))}); seed {ds.attrs.get('seed', '?')}, "
             f"alpha {ds.attrs.get('alpha', '?')}. Written {stamp} from {run_dir.resolve()}."
             + (f" Overrides: {swept}." if swept else ""))
    n_fail = int((calibration.table["verdict"] != "PASS").sum()) if not calibration.table.empty else 0
    verdict = "PASS" if n_fail == 0 and not calibration.table.empty else "FAIL"
    headline = (f"calibration check: all {len(calibration.table)} checks pass" if verdict == "PASS"
                else f"calibration check: {n_fail} of {len(calibration.table)} checks fail")

    provenance = pd.DataFrame(
        [(k, v) for k, v in ds.attrs.items() if k != "config"], columns=["attribute", "value"])
    config = ds.attrs.get("config", "")
    figures_html = "\n".join(
        f'<figure id="fig-{_e(f.key)}"><h3>{_e(f.title)}</h3>'
        f'<img alt="{_e(f.title)}" src="data:image/png;base64,{base64.b64encode(f.png).decode("ascii")}">'
        f"<figcaption>{_e(f.caption)}</figcaption></figure>"
        for f in figure_list)
    measures_text = (
        "Measures follow Morris, White &amp; Crowther (2019) as rsimsum computes them, each with its Monte Carlo SE "
        f"in parentheses. Valid replicates are fits with status {' or '.join(s.name for s in VALID_STATUSES)} and a "
        f"finite estimate. Columns: {measure_key(summary)}.")
    full = summary.to_dataframe().reset_index()
    full["value"] = full["value"].map(lambda v: f"{v:.6g}")
    full["mcse"] = full["mcse"].map(lambda v: f"{v:.3g}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{_e(intro)}</p>
<p><span class="verdict {verdict}">{_e(headline)}</span></p>
<p id="image-warning">Some figures failed to load.</p>
<nav><a href="#summary">Summary</a><a href="#check">Calibration check</a><a href="#figures">Figures</a>
<a href="#config">Config</a><a href="#provenance">Provenance</a></nav>

<h2 id="summary">Summary</h2>
<p>{measures_text}</p>
{summary_tables(summary, truth=ds['truth'])}
<details><summary>All measures ({len(full)} rows)</summary>
{frame_to_html(full, text_columns=[c for c in full.columns if c not in ("value", "mcse", "n")])}
</details>

<h2 id="check">Calibration check</h2>
{calibration_html(calibration)}

<h2 id="figures">Figures</h2>
{figures_html}

<h2 id="config">Config</h2>
{f"<h3>Command line</h3><pre>clustersim {_e(swept)}</pre>" if typed is not None else ""}
{f"<h3>Overrides (as Hydra applied them)</h3><pre>{_e(overrides)}</pre>" if overrides else ""}
<h3>Resolved config</h3>
<pre>{_e(config)}</pre>

<h2 id="provenance">Provenance</h2>
{frame_to_html(provenance, text_columns=("attribute", "value"))}
<h3>Fits by status</h3>
{frame_to_html(status_table(ds), text_columns=("estimator",))}
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_report(run_dir: str | Path, *, output: str | Path | None = None, figures_dir: str | Path | None = None,
                 check_options: dict | None = None, summary: xr.Dataset | None = None) -> Path:
    """Write ``report.html`` for the run in ``run_dir`` (which holds ``results.zarr``) and return
    its path. ``output`` chooses another file; ``figures_dir`` also saves every figure there as
    PNG and SVG; ``check_options`` go to :func:`~analysis.calibration.check_calibration`;
    ``summary`` is the run's :func:`~analysis.measures.summarise` if the caller has it already.
    Raises FileNotFoundError when ``run_dir`` holds no results."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).is_dir():
        raise FileNotFoundError(f"{run_dir}: no {RESULTS} (not a clustersim run directory)")
    ds = open_results(run_dir / RESULTS)
    summary = summarise(ds) if summary is None else summary
    calibration = check_calibration(ds, summary=summary, **(check_options or {}))
    figure_list = figures(ds, summary, Path(figures_dir) if figures_dir is not None else None)
    page = build_html(ds, run_dir, summary, calibration, figure_list)
    target = Path(output) if output is not None else run_dir / REPORT
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, target)
    return target
