"""Tables and figures of the published reproductions (docs/reproductions.md), drawn from a
results dataset alone.

Four studies, each an experiment in conf/experiment/ and recognised here by its estimators and
grid factors (:data:`REPRODUCTIONS`):

- ``clark1973`` (Clark 1973, the language-as-fixed-effect fallacy): Type I error against the
  item intercept SD, one panel per number of items.
- ``barr2013`` (Barr, Levy, Scheepers & Tily 2013): rejection rates at alpha .01, .05 and .10
  per design and number of items, with the values of their supplementary tables beside ours.
- ``matuschek2017`` (Matuschek, Kliegl, Vasishth, Baayen & Bates 2017): Type I error and power
  against the random-slope SD s.
- ``bates2015`` (Bates, Kliegl, Vasishth & Baayen 2015): the parsimonious model against the
  maximal one on the same data, with the structures chosen.

For each, :func:`reproduce` writes into an output directory (file names start with the study's
name, :func:`file_stem`: e.g. ``barr2013``, ``barr2013_power``, ``matuschek2017_30x10``):

- ``<name>_rejection.png``: the rejection rate at the study's alpha against the swept factor,
  one line per model with a +/- 1.96 Monte Carlo SE band (:func:`analysis.plots.plot_measure_vs_factor`);
- ``<name>_rates.csv``: every rejection rate of ``condition`` at alpha .01, .05 and .10 with its
  MCSE and n, per grid cell and estimator;
- ``<name>_table.md`` / ``.csv``: the paper-style table, each cell ``rate (MCSE)``;
- ``<name>_published.md`` / ``.csv`` where published values exist: ours, our MCSE, the
  published value and whether |ours - published| <= 3 MCSE + 0.01 (:data:`TOLERANCE_MCSE`,
  :data:`TOLERANCE_ABSOLUTE`: the procedures differ in documented ways, docs/reproductions.md);
- ``<name>_models.md`` / ``.csv`` where an estimator reports the model it used (``model``):
  the share of replicates per model, per grid cell.

Command line: ``python -m analysis.reproductions RUN_DIR [RUN_DIR ...] --out DIR``
(``--experiment NAME`` when the estimators do not identify the study).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from analysis.measures import DEFAULT_ALPHAS, rejection_name, summarise, to_tidy
from analysis.plots import plot_measure_vs_factor, save_figure
from analysis.integrity import DamagedStore, verify_run
from analysis.schema import RESULTS, grid_dims, open_results

TERM = "condition"
TOLERANCE_MCSE = 3.0
TOLERANCE_ABSOLUTE = 0.01


@dataclass(frozen=True)
class Reproduction:
    """One paper's study: how to recognise its results, what to plot, which labels to use.

    ``identifying``: estimators whose presence identifies the study; ``factor``: the grid factor
    on the x axis; ``columns``: grid factors that become table columns (the others, rows);
    ``labels``: the paper's names of our estimators, in the order of the tables and figures;
    ``table_alphas``: the alphas the paper-style table shows (all three are in ``_rates.csv``);
    ``figure_estimators``: the estimators drawn (default: all in ``labels``);
    ``size_in_name``: the study runs at several sizes, so file names carry subjects x items.
    """

    name: str
    title: str
    identifying: tuple[str, ...]
    factor: str
    columns: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    table_alphas: tuple[float, ...] = (0.05,)
    figure_estimators: tuple[str, ...] = ()
    size_in_name: bool = False


REPRODUCTIONS = (
    Reproduction(
        "clark1973", "Clark (1973): Type I error against the item intercept SD",
        ("f1", "subjects_only", "crossed"), "item_intercept_sd", ("item_intercept_sd",),
        {"f1": "F1", "subjects_only": "LMM, subjects only", "f2": "F2", "f1xf2": "F1 x F2",
         "minf": "min F'", "crossed": "LMM, subjects and items"}),
    Reproduction(
        "barr2013", "Barr et al. (2013): maximal, zero-correlation and intercepts-only models, F1, F1 x F2, min F'",
        ("max_lrt", "ri_lrt"), "n_items", ("n_items",),
        {"minf": "min F'", "f1": "F1", "f1xf2": "F1 x F2",
         "max_lrt": "maximal LMM (LRT)", "max_z": "maximal LMM (t as z)",
         "zcp_lrt": "no random correlations (LRT)", "zcp_z": "no random correlations (t as z)",
         "ri_lrt": "random intercepts only (LRT)", "ri_z": "random intercepts only (t as z)"},
        DEFAULT_ALPHAS, ("minf", "f1", "f1xf2", "max_lrt", "zcp_lrt", "ri_lrt")),
    Reproduction(
        "matuschek2017", "Matuschek et al. (2017): Type I error and power against the slope SD",
        ("select_lrt", "select_aic"), "subject_slope_sd", ("subject_slope_sd",),
        {"max": "maximal", "zcp": "zero correlation", "zcp_no_item_slope": "(1+c||S)+(1|I)",
         "zcp_no_subject_slope": "(1|S)+(1+c||I)", "intercepts": "(1|S)+(1|I)",
         "select_aic": "AIC selection", "select_lrt": "LRT selection (alpha .20)",
         "minf": "min F'", "f1xf2": "F1 x F2"},
        size_in_name=True),
    Reproduction(
        "bates2015", "Bates et al. (2015): parsimonious against maximal models",
        ("parsimonious", "max"), "subject_slope_sd", ("subject_slope_sd",),
        {"max": "maximal", "zcp": "zero correlation", "parsimonious": "parsimonious"}),
    Reproduction(
        "binary_accuracy", "Accuracy data (Jaeger 2008): ANOVA on proportions, logistic regression, GEE and GLMMs",
        ("f1_elogit", "logit_glm", "gee_exch"), "item_intercept_sd", ("item_intercept_sd",),
        {"f1": "F1 (proportions)", "f1_elogit": "F1 (empirical logits)", "f2": "F2 (proportions)",
         "f1xf2": "F1 x F2", "minf": "min F' (proportions)", "minf_elogit": "min F' (empirical logits)",
         "logit_glm": "logistic GLM", "logit_glm_cr1": "logistic GLM, CR1 by subject",
         "logit_glm_cr2": "logistic GLM, CR2 by subject", "gee_exch": "GEE exch. by subject",
         "gee_exch_md": "GEE exch. by subject, Mancl-DeRouen",
         "glmm_ri": "GLMM (1|subject) + (1|item)", "glmm_max": "GLMM (1 + c|subject) + (1|item)",
         "glmm_max_lrt": "GLMM (1 + c|subject) + (1|item), LRT"},
        figure_estimators=("f1", "f1_elogit", "minf", "logit_glm", "logit_glm_cr2", "gee_exch_md", "glmm_ri",
                           "glmm_max", "glmm_max_lrt")),
)
BY_NAME = {r.name: r for r in REPRODUCTIONS}

# Barr, Levy, Scheepers & Tily (2013, J Mem Lang 68:255), supplementary tables: Type I error (effect 0)
# in the between-item design at alpha = .01, for 12 and 24 items. Keyed by our estimator names.
PUBLISHED = pd.DataFrame(
    [("barr2013", "between_items", n_items, 0.0, 0.01, estimator, value)
     for estimator, values in {"minf": (0.009, 0.009), "max_lrt": (0.017, 0.013), "ri_lrt": (0.032, 0.039),
                               "f1xf2": (0.014, 0.019), "f1": (0.297, 0.217)}.items()
     for n_items, value in zip((12, 24), values)],
    columns=["study", "layout", "n_items", "effect", "alpha", "estimator", "published"],
)


def estimators_of(ds: xr.Dataset) -> list[str]:
    return [str(e) for e in ds["estimator"].values]


def identify(ds: xr.Dataset) -> Reproduction:
    """The reproduction whose identifying estimators and swept factor the dataset has."""
    names, dims = set(estimators_of(ds)), set(grid_dims(ds))
    for reproduction in REPRODUCTIONS:
        if set(reproduction.identifying) <= names and reproduction.factor in dims:
            return reproduction
    raise ValueError(f"no reproduction matches estimators {sorted(names)} and grid factors {sorted(dims)}; "
                     f"name one with --experiment ({', '.join(BY_NAME)})")


def rejection_table(ds: xr.Dataset, alphas: Sequence[float] = DEFAULT_ALPHAS) -> pd.DataFrame:
    """Tidy rejection rates of ``condition``: grid factors..., effect, estimator, alpha, value,
    mcse, n. ``effect`` is the true condition effect (the rate is a Type I error where it is 0)."""
    names = [rejection_name(a) for a in alphas]
    dims = grid_dims(ds)
    tidy = to_tidy(summarise(ds, alphas=alphas, measures=names).sel(term=TERM))
    tidy["alpha"] = tidy.pop("measure").map(dict(zip(names, alphas)))
    if "effect" not in dims:
        truth = ds["truth"].sel(term=TERM, drop=True)
        tidy = (tidy.merge(truth.to_dataframe(name="effect").reset_index()[[*dims, "effect"]], on=dims) if dims
                else tidy.assign(effect=float(truth)))
    return tidy[[*dims, *(["effect"] if "effect" not in dims else []), "estimator", "alpha", "value", "mcse", "n"]]


def compare_published(tidy: pd.DataFrame, study: str) -> pd.DataFrame:
    """Our rates beside the published ones, with |ours - published| <= 3 MCSE + 0.01 (``within``);
    empty when the results hold none of the published cells."""
    published = PUBLISHED[PUBLISHED["study"] == study].drop(columns="study")
    keys = [k for k in published.columns if k != "published"]
    if published.empty or not set(keys) <= set(tidy.columns):
        return pd.DataFrame()
    merged = tidy.merge(published, on=keys)
    merged["difference"] = merged["value"] - merged["published"]
    merged["tolerance"] = TOLERANCE_MCSE * merged["mcse"] + TOLERANCE_ABSOLUTE
    merged["within"] = merged["difference"].abs() <= merged["tolerance"]
    return merged.round({"value": 4, "mcse": 4, "difference": 4, "tolerance": 4})


def rate_text(value: float, mcse: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f} ({mcse:.3f})"


def paper_table(tidy: pd.DataFrame, reproduction: Reproduction) -> pd.DataFrame:
    """Rows: the other grid factors, effect and the estimators (in the paper's order and names);
    columns: the reproduction's column factors (and alpha, when it shows several); cells
    ``rate (MCSE)``."""
    frame = tidy[tidy["alpha"].isin(reproduction.table_alphas)].copy()
    if len(reproduction.table_alphas) == 1:
        frame = frame.drop(columns="alpha")
    order = [e for e in reproduction.labels if e in set(frame["estimator"])]
    order += [e for e in dict.fromkeys(frame["estimator"]) if e not in order]
    frame["estimator"] = pd.Categorical(frame["estimator"], categories=order, ordered=True)
    frame["text"] = [rate_text(v, m) for v, m in zip(frame["value"], frame["mcse"])]
    columns = [c for c in reproduction.columns if c in frame.columns] + (["alpha"] if len(reproduction.table_alphas) > 1 else [])
    rows = [c for c in frame.columns if c not in {*columns, "estimator", "value", "mcse", "n", "text"}] + ["estimator"]
    table = frame.pivot_table(index=rows, columns=columns, values="text", aggfunc="first", observed=True)
    table = table.rename(index=lambda e: reproduction.labels.get(e, e), level="estimator")
    return table


def model_tallies(ds: xr.Dataset) -> pd.DataFrame:
    """Share of replicates per model used, per grid cell and estimator that reports one."""
    if "model" not in ds:
        return pd.DataFrame()
    frame = ds["model"].to_dataframe().reset_index()
    frame = frame[frame["model"].astype(str) != ""]
    if frame.empty:
        return frame
    keys = [*grid_dims(ds), "estimator"]
    counts = frame.groupby([*keys, "model"]).size().rename("count").reset_index()
    counts["share"] = counts["count"] / counts.groupby(keys)["count"].transform("sum")
    return counts


def markdown(table: pd.DataFrame) -> str:
    """A pandas table as a GitHub markdown table (multi-level headers joined with ', ')."""
    frame = table.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [", ".join(f"{n}={v}" for n, v in zip(frame.columns.names, c)) for c in frame.columns]
    elif frame.columns.name:
        frame.columns = [f"{frame.columns.name}={c}" for c in frame.columns]
    frame = frame.reset_index()
    header = "| " + " | ".join(map(_cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join("" if pd.isna(v) else _cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def _cell(value) -> str:
    """Text of a markdown table cell: a literal | (as in lme4's ``||``) escaped."""
    return str(value).replace("|", "\\|")


def _write(frame: pd.DataFrame, out: Path, stem: str, title: str, index: bool) -> list[Path]:
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    frame.to_csv(csv, index=index)
    md.write_text(f"# {title}\n\n" + markdown(frame if index else frame.set_index(frame.columns[0])))
    return [csv, md]


def figure(ds: xr.Dataset, reproduction: Reproduction):
    """Rejection rate at the study's alpha against the swept factor, one line per model, named
    as in the paper."""
    order = [e for e in reproduction.figure_estimators or reproduction.labels if e in estimators_of(ds)]
    named = ds.sel(estimator=order).assign_coords(estimator=[reproduction.labels[e] for e in order])
    return plot_measure_vs_factor(named, "rejection", reproduction.factor, terms=[TERM])


def file_stem(ds: xr.Dataset, reproduction: Reproduction) -> str:
    """The study's name; then ``_<subjects>x<items>`` for studies run at several sizes (from the
    config stored in the dataset); then ``_power`` when the condition has an effect in every
    cell (the power version of a study whose grid does not cross the effect, barr2013_power)."""
    stem = reproduction.name
    if reproduction.size_in_name:
        dgp = yaml.safe_load(ds.attrs["config"])["dgp"]
        stem += f"_{dgp['n_subjects']}x{dgp['n_items']}"
    if "effect" not in grid_dims(ds) and bool((ds["truth"].sel(term=TERM) != 0).all()):
        stem += "_power"
    return stem


def reproduce(ds: xr.Dataset, out: str | Path, reproduction: Reproduction | None = None) -> list[Path]:
    """Write the figure and tables of ``ds`` into ``out`` (file names from :func:`file_stem`);
    returns the files written."""
    reproduction = reproduction or identify(ds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = file_stem(ds, reproduction)
    written = save_figure(figure(ds, reproduction), out / f"{name}_rejection", formats=("png",))
    tidy = rejection_table(ds)
    tidy.to_csv(out / f"{name}_rates.csv", index=False)
    written.append(out / f"{name}_rates.csv")
    alphas = " / ".join(f"{a:g}" for a in reproduction.table_alphas)
    written += _write(paper_table(tidy, reproduction), out, f"{name}_table",
                      f"{reproduction.title}: rejection rate at alpha {alphas} (Monte Carlo SE), "
                      f"{int(ds.sizes['rep'])} replicates per cell", True)
    comparison = compare_published(tidy, reproduction.name)
    if not comparison.empty:
        written += _write(comparison, out, f"{name}_published", f"{reproduction.title}: ours against published", False)
    tallies = model_tallies(ds)
    if not tallies.empty:
        written += _write(tallies, out, f"{name}_models", f"{reproduction.title}: models used", False)
    return written


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Tables and figures of the reproductions from run directories.")
    p.add_argument("runs", nargs="+", help="run directories (each with results.zarr)")
    p.add_argument("--out", default="docs/figures/reproductions", help="output directory")
    p.add_argument("--experiment", choices=sorted(BY_NAME), help="the study, when the estimators do not tell")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for run in args.runs:
        path = Path(run) / RESULTS
        if not path.exists():
            print(f"{parser().prog}: error: {path} does not exist", file=sys.stderr)
            return 2
        try:
            verify_run(run)
        except DamagedStore as error:
            print(f"{parser().prog}: error: {error}", file=sys.stderr)
            return 2
        ds = open_results(path)
        reproduction = BY_NAME[args.experiment] if args.experiment else identify(ds)
        for written in reproduce(ds, args.out, reproduction):
            print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
