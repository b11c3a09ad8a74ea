"""Figures of a study, drawn from the results dataset alone.

- :func:`plot_measure_vs_factor` (and :func:`plot_rejection`, :func:`plot_coverage`): a measure
  against a grid factor, one line per estimator with a band of +/- 1.96 Monte Carlo SEs, the
  nominal value and Bradley's band as reference.
- :func:`plot_zip`: the zip plot of Morris, White & Crowther (2019, Stat Med 38:2074, Fig. 4):
  each replicate's interval, ranked by how far the truth is from its estimate.
- :func:`plot_se`: model SE against empirical SE, one point per cell and estimator.
- :func:`plot_nested_loop`: a measure over every cell of a multi-factor grid (Ruecker &
  Schwarzer 2014, BMC Med Res Methodol 14:129), with the factors' levels drawn underneath.
- :func:`plot_estimates`: the distribution of the estimates of each estimator, against the truth.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no GUI
backend, no global state; PNG and SVG render with Agg); :func:`save_figure` writes it as PNG
and SVG. Colours are the Okabe-Ito palette (Okabe & Ito 2008), safe for colour-blind readers,
with a marker per estimator as a second cue.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.measures import lookup, summarise
from analysis.replicates import VALID_CODES
from analysis.schema import grid_dims

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
Z95 = 1.959963984540054


def measure_label(measure: str, alpha: float) -> str:
    """Axis label of a measure, with its unit (the measure's name when it has none)."""
    try:
        return lookup(measure, alpha).label
    except ValueError:
        return measure


def style(index: int) -> dict:
    """Colour, marker and line style of the estimator at position ``index``.

    With C colours and M markers (C = M = 8) and L line styles (4): colour i mod C; in round
    k = i div C of the colours, marker (i + k + k div M) mod M and line style k mod L. Shifting
    the markers by one per round keeps (colour, marker) unique for the first C x M = 64
    estimators (the only cues of plots without lines), and (colour, marker, line style) unique
    for the first 256.
    """
    k = index // len(OKABE_ITO)
    return {"color": OKABE_ITO[index % len(OKABE_ITO)],
            "marker": MARKERS[(index + k + k // len(MARKERS)) % len(MARKERS)],
            "linestyle": LINESTYLES[k % len(LINESTYLES)]}


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, laid out by matplotlib's constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def _subplots(fig: Figure, nrows: int, ncols: int, **kwargs):
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    for ax in axes.flat:
        # The house style, set per axes rather than through rcParams so that a user's own
        # matplotlib settings are neither needed nor changed.
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=9)
    return axes


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats``; returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        fig.savefig(target, format=fmt, dpi=dpi)
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------------
# Dataset helpers


def estimator_names(ds: xr.Dataset) -> list[str]:
    return [str(e) for e in ds["estimator"].values]


def term_names(ds: xr.Dataset) -> list[str]:
    return [str(t) for t in ds["term"].values]


def default_terms(ds: xr.Dataset) -> list[str]:
    """The terms worth a figure: all but ``Intercept``, unless it is the only one."""
    terms = term_names(ds)
    slopes = [t for t in terms if t != "Intercept"]
    return slopes or terms


def cells(ds: xr.Dataset) -> list[dict]:
    """Every grid cell as {factor: value}, first factor slowest; [{}] without a grid."""
    dims = grid_dims(ds)
    values = [[v.item() if hasattr(v, "item") else v for v in ds[d].values] for d in dims]
    return [dict(zip(dims, combo)) for combo in itertools.product(*values)]


def cell_label(cell: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def factor_label(ds: xr.Dataset, factor: str) -> str:
    """``n_subjects (dgp.n_subjects)`` from the dataset's ``grid_keys`` attribute."""
    keys = dict(item.split("=", 1) for item in str(ds.attrs.get("grid_keys", "")).split() if "=" in item)
    key = keys.get(factor)
    return f"{factor} ({key})" if key and key != factor else factor


def _alpha(ds: xr.Dataset) -> float:
    return float(ds.attrs.get("alpha", 0.05))


def _truth_text(truth: xr.DataArray) -> str:
    values = np.unique(np.asarray(truth, dtype=float))
    if len(values) == 1:
        value = values[0]
        kind = "Type I error" if value == 0 else "power"
        return f"truth {value:g}, {kind}"
    return "truth varies"


def _summary(ds: xr.Dataset, summary: xr.Dataset | None, measures: Iterable[str]) -> xr.Dataset:
    if summary is not None:
        return summary
    return summarise(ds, measures=tuple(dict.fromkeys(measures)))


def _legend(fig: Figure, names: Sequence[str], extra: Sequence[Line2D] = ()) -> None:
    handles = [Line2D([], [], color=style(i)["color"], marker=style(i)["marker"], linestyle=style(i)["linestyle"],
                      label=name) for i, name in enumerate(names)]
    fig.legend(handles=[*handles, *extra], loc="outside right upper", frameon=False)


# ---------------------------------------------------------------------------------------------
# Measure against a grid factor


def plot_measure_vs_factor(ds: xr.Dataset, measure: str = "rejection", factor: str | None = None,
                           terms: Sequence[str] | None = None, summary: xr.Dataset | None = None,
                           band: tuple[float, float] | None = (0.5, 1.5), max_rows: int = 6) -> Figure:
    """``measure`` against grid ``factor`` (default: the first), one line per estimator with a
    +/- 1.96 MCSE band. Columns: terms; rows: combinations of the other grid factors (at most
    ``max_rows``). Without a grid, the estimators sit side by side with 95% Monte Carlo
    intervals. Rates show the nominal value (dashed) and, where it applies, the practical band
    ``band`` x the nominal error rate (grey; Bradley's liberal criterion by default)."""
    alpha = _alpha(ds)
    summary = _summary(ds, summary, [measure])
    terms = list(terms or default_terms(ds))
    dims = grid_dims(ds)
    names = estimator_names(ds)
    factor = factor or (dims[0] if dims else None)
    if factor is not None and factor not in dims:
        raise ValueError(f"factor: {factor!r} is not a grid factor (grid factors: {', '.join(dims) or 'none'})")
    others = [d for d in dims if d != factor]
    other_cells = [dict(zip(others, combo)) for combo in itertools.product(
        *[[v.item() if hasattr(v, "item") else v for v in ds[d].values] for d in others])]
    shown_rows = other_cells[:max_rows]
    spec = lookup(measure, alpha)
    nominal = spec.nominal_at(alpha)
    band_drawn = False
    fig = new_figure(4.2 * len(terms) + 2.4, 3.1 * len(shown_rows) + 0.9)
    axes = _subplots(fig, len(shown_rows), len(terms), sharey="row")
    for r, other in enumerate(shown_rows):
        for c, term in enumerate(terms):
            ax = axes[r, c]
            part = summary.sel(term=term, measure=measure, **other)
            truth = ds["truth"].sel(term=term, **other)
            if factor is None:
                _dot_panel(ax, part, names, rate=spec.rate)
            else:
                _line_panel(ax, part, names, factor, ds[factor].values, rate=spec.rate)
                ax.set_xlabel(factor_label(ds, factor))
            if nominal is not None:
                ax.axhline(nominal, color="#444444", linestyle="--", linewidth=1)
                if band is not None and (measure.startswith("coverage") or
                                         (measure.startswith("rejection") and np.all(np.asarray(truth) == 0))):
                    error = 1 - nominal if measure.startswith("coverage") else nominal
                    low, high = band[0] * error, band[1] * error
                    if measure.startswith("coverage"):
                        low, high = 1 - high, 1 - low
                    ax.axhspan(low, high, color="#999999", alpha=0.18, linewidth=0)
                    band_drawn = (low, high)
            title = term if not measure.startswith("rejection") else f"{term} ({_truth_text(truth)})"
            if other:
                title += f"\n{cell_label(other)}"
            ax.set_title(title)
            if c == 0:
                ax.set_ylabel(measure_label(measure, alpha))
    extra = []
    if nominal is not None:
        label = f"alpha = {nominal:g}" if measure.startswith("rejection") else f"nominal {nominal:g}"
        extra.append(Line2D([], [], color="#444444", linestyle="--", label=label))
    if band_drawn:
        extra.append(Patch(facecolor="#999999", alpha=0.35,
                           label=f"practical band {band_drawn[0]:.3g}..{band_drawn[1]:.3g}"))
    if factor:
        extra.append(Patch(facecolor="#555555", alpha=0.25, label="95% Monte Carlo band"))
    else:
        extra.append(Line2D([], [], color="#555555", marker="|", markersize=10, label="95% Monte Carlo interval"))
    _legend(fig, names, extra)
    if len(other_cells) > len(shown_rows):
        fig.suptitle(f"first {len(shown_rows)} of {len(other_cells)} combinations of {', '.join(others)}")
    return fig


def _line_panel(ax, part: xr.DataArray, names: Sequence[str], factor: str, levels, rate: bool = False) -> None:
    numeric = np.issubdtype(np.asarray(levels).dtype, np.number)
    x = np.asarray(levels, dtype=float) if numeric else np.arange(len(levels))
    for i, name in enumerate(names):
        value = part["value"].sel(estimator=name).transpose(factor).values
        mcse = part["mcse"].sel(estimator=name).transpose(factor).values
        s = style(i)
        ax.plot(x, value, color=s["color"], marker=s["marker"], linestyle=s["linestyle"], markersize=5, linewidth=1.5)
        low, high = value - Z95 * mcse, value + Z95 * mcse
        if rate:
            low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
        ax.fill_between(x, low, high, color=s["color"], alpha=0.15, linewidth=0)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in levels])
    elif len(x) > 1 and x.min() > 0 and x.max() / x.min() >= 8:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
    else:
        ax.set_xticks(x, [f"{v:g}" for v in x])


def _dot_panel(ax, part: xr.DataArray, names: Sequence[str], rate: bool = False) -> None:
    for i, name in enumerate(names):
        value = float(part["value"].sel(estimator=name))
        mcse = float(part["mcse"].sel(estimator=name))
        low, high = value - Z95 * mcse, value + Z95 * mcse
        if rate:
            low, high = max(low, 0.0), min(high, 1.0)
        s = style(i)
        ax.errorbar([i], [value], yerr=[[value - low], [high - value]], color=s["color"], marker=s["marker"],
                    markersize=6, capsize=3, linestyle="none")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)


def plot_rejection(ds: xr.Dataset, factor: str | None = None, **kwargs) -> Figure:
    """Rejection rate at the study's alpha against a grid factor (see :func:`plot_measure_vs_factor`)."""
    return plot_measure_vs_factor(ds, "rejection", factor, **kwargs)


def plot_coverage(ds: xr.Dataset, factor: str | None = None, **kwargs) -> Figure:
    """Coverage against a grid factor (see :func:`plot_measure_vs_factor`)."""
    return plot_measure_vs_factor(ds, "coverage", factor, **kwargs)


# ---------------------------------------------------------------------------------------------
# Zip plot


def plot_zip(ds: xr.Dataset, term: str | None = None, cell: dict | None = None,
             estimators: Sequence[str] | None = None, max_reps: int = 1000, ncols: int = 4) -> Figure:
    """Zip plot (Morris et al. 2019, Fig. 4) of one term in one grid cell, a panel per estimator.

    Each valid replicate's interval is a horizontal line at the fractional centile of
    |estimate - truth| / (half-width of the interval) (equivalently of |z| for Wald intervals
    with a common critical value), so intervals that miss the truth (vermillion) collect at the
    top. The dashed line is the nominal 1 - alpha, the grey band the 95% Monte Carlo interval of
    the coverage: when the estimator is calibrated, the boundary between covering and missing
    intervals falls inside the band at the dashed line. Uses the first ``max_reps`` replicates.
    """
    alpha = _alpha(ds)
    term = term or default_terms(ds)[0]
    cell = cells(ds)[0] if cell is None else cell
    names = list(estimators or estimator_names(ds))
    n_total = ds.sizes["rep"]
    part = ds[["estimate", "ci_lower", "ci_upper", "status", "truth"]].sel(term=term, **cell)
    part = part.sel(estimator=names).isel(rep=slice(0, max_reps)).load()
    theta = float(part["truth"])
    ncols = min(ncols, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig = new_figure(2.7 * ncols + 2.6, 3.5 * nrows + 0.5)
    axes = _subplots(fig, nrows, ncols, sharex=True, sharey=True)
    half_widths = []
    for i, name in enumerate(names):
        ax = axes.flat[i]
        one = part.sel(estimator=name)
        lo, hi, est = one["ci_lower"].values, one["ci_upper"].values, one["estimate"].values
        ok = np.isin(one["status"].values, VALID_CODES) & np.isfinite(est) & np.isfinite(lo) & np.isfinite(hi)
        lo, hi, est = lo[ok], hi[ok], est[ok]
        n = len(est)
        if n == 0:
            ax.text(0.5, 0.5, "no valid replicate", transform=ax.transAxes, ha="center")
            ax.set_title(name)
            continue
        half = np.maximum((hi - lo) / 2, np.finfo(float).tiny)
        half_widths.append(np.median(half))
        distance = np.abs(est - theta) / half
        order = np.argsort(distance, kind="stable")
        centile = np.empty(n)
        centile[order] = 100 * (np.arange(n) + 0.5) / n
        covered = (lo <= theta) & (theta <= hi)
        segments = np.stack([np.column_stack([lo, centile]), np.column_stack([hi, centile])], axis=1)
        colours = np.where(covered, OKABE_ITO[0], OKABE_ITO[1])
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=max(0.3, min(1.2, 150 / n))))
        share = covered.mean()
        mcse = np.sqrt(share * (1 - share) / n)
        ax.axhspan(100 * (share - Z95 * mcse), 100 * (share + Z95 * mcse), color="#999999", alpha=0.3, linewidth=0)
        ax.axhline(100 * (1 - alpha), color="#444444", linestyle="--", linewidth=1)
        ax.axvline(theta, color="#222222", linewidth=1)
        ax.set_title(f"{name}\ncoverage {share:.3f} ({mcse:.3f})", fontsize=9)
        ax.set_ylim(0, 100)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if half_widths:
        spread = 3.5 * float(np.median(half_widths))
        axes.flat[0].set_xlim(theta - spread, theta + spread)
    for ax in axes[:, 0]:
        ax.set_ylabel("centile of |estimate - truth| / half-width")
    for ax in axes[-1, :]:
        ax.set_xlabel(f"{1 - alpha:.0%} interval for {term}")
    where = f" ({cell_label(cell)})" if cell else ""
    shown = min(max_reps, n_total)
    fig.suptitle(f"Zip plot of {term}{where}: {shown} of {n_total} replicates")
    extra = [Line2D([], [], color=OKABE_ITO[0], label="covers the truth"),
             Line2D([], [], color=OKABE_ITO[1], label="misses the truth"),
             Line2D([], [], color="#222222", label=f"truth {theta:g}"),
             Line2D([], [], color="#444444", linestyle="--", label=f"nominal {1 - alpha:.0%}"),
             Patch(facecolor="#999999", alpha=0.5, label="95% MC interval of coverage")]
    fig.legend(handles=extra, loc="outside right upper", frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Model SE against empirical SE


def plot_se(ds: xr.Dataset, terms: Sequence[str] | None = None, summary: xr.Dataset | None = None) -> Figure:
    """Model SE (root mean squared reported SE) against empirical SE (SD of the estimates), one
    point per grid cell and estimator with 95% Monte Carlo intervals in both directions, a panel
    per term. Points below the diagonal: the reported SEs are too small (intervals too narrow,
    Type I error too high); above it: too large (conservative, power lost)."""
    summary = _summary(ds, summary, ["empse", "modelse"])
    terms = list(terms or default_terms(ds))
    names = estimator_names(ds)
    fig = new_figure(3.9 * len(terms) + 2.6, 4.0)
    axes = _subplots(fig, 1, len(terms))
    for c, term in enumerate(terms):
        ax = axes[0, c]
        part = summary.sel(term=term)
        lows, highs = [], []
        for i, name in enumerate(names):
            one = part.sel(estimator=name)
            x = np.ravel(one["value"].sel(measure="empse").values)
            y = np.ravel(one["value"].sel(measure="modelse").values)
            xe = Z95 * np.ravel(one["mcse"].sel(measure="empse").values)
            ye = Z95 * np.ravel(one["mcse"].sel(measure="modelse").values)
            s = style(i)
            ax.errorbar(x, y, xerr=xe, yerr=ye, color=s["color"], marker=s["marker"], markersize=5,
                        linestyle="none", elinewidth=0.8, capsize=2, alpha=0.9)
            finite = np.isfinite(x) & np.isfinite(y)
            lows.append(np.concatenate([x[finite] - xe[finite], y[finite] - ye[finite]]))
            highs.append(np.concatenate([x[finite] + xe[finite], y[finite] + ye[finite]]))
        low = np.concatenate(lows).min() if any(len(v) for v in lows) else 0.0
        high = np.concatenate(highs).max() if any(len(v) for v in highs) else 1.0
        pad = 0.06 * (high - low if high > low else 1.0)
        limits = (max(0.0, low - pad), high + pad)
        line = np.linspace(*limits, 2)
        ax.plot(line, line, color="#444444", linestyle="--", linewidth=1)
        ax.fill_between(line, 0.9 * line, 1.1 * line, color="#999999", alpha=0.18, linewidth=0)
        ax.set_xlim(limits)
        ax.set_ylim(limits)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(term)
        ax.set_xlabel("Empirical SE (SD of estimates)")
        if c == 0:
            ax.set_ylabel("Model SE (root mean squared SE)")
    extra = [Line2D([], [], color="#444444", linestyle="--", label="model SE = empirical SE"),
             Patch(facecolor="#999999", alpha=0.35, label="within 10%")]
    _legend(fig, names, extra)
    return fig


# ---------------------------------------------------------------------------------------------
# Nested-loop plot


def plot_nested_loop(ds: xr.Dataset, measure: str = "rejection", term: str | None = None,
                     summary: xr.Dataset | None = None, factors: Sequence[str] | None = None) -> Figure:
    """Nested-loop plot (Ruecker & Schwarzer 2014): ``measure`` for every cell of the grid, cells
    ordered with the first of ``factors`` (default: the grid's order) changing slowest, a step
    line per estimator; underneath, one step line per factor shows its level in each cell."""
    alpha = _alpha(ds)
    term = term or default_terms(ds)[0]
    spec = lookup(measure, alpha)
    summary = _summary(ds, summary, [measure])
    dims = list(factors or grid_dims(ds))
    if not dims:
        raise ValueError("a nested-loop plot needs a grid (the dataset has no grid factor)")
    names = estimator_names(ds)
    levels = [[v.item() if hasattr(v, "item") else v for v in ds[d].values] for d in dims]
    combos = list(itertools.product(*levels))
    x = np.arange(len(combos))
    part = summary.sel(term=term, measure=measure).transpose(*dims, "estimator")
    fig = new_figure(max(6.5, 0.22 * len(combos) + 3), 4.6 + 0.45 * len(dims))
    axes = _subplots(fig, 2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 0.55 * len(dims) + 0.3]})
    ax, loops = axes[0, 0], axes[1, 0]
    for i, name in enumerate(names):
        value = part["value"].sel(estimator=name).values.reshape(-1)
        mcse = part["mcse"].sel(estimator=name).values.reshape(-1)
        s = style(i)
        ax.step(x, value, where="mid", color=s["color"], linestyle=s["linestyle"], linewidth=1.5)
        ax.plot(x, value, color=s["color"], marker=s["marker"], linestyle="none", markersize=4)
        low, high = value - Z95 * mcse, value + Z95 * mcse
        if spec.rate:
            low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
        ax.fill_between(x, low, high, step="mid", color=s["color"], alpha=0.12, linewidth=0)
    nominal = spec.nominal_at(alpha)
    if nominal is not None:
        ax.axhline(nominal, color="#444444", linestyle="--", linewidth=1)
    truth = ds["truth"].sel(term=term)
    title = f"{measure} of {term}"
    if measure.startswith("rejection"):
        title += f" ({_truth_text(truth)})"
    ax.set_title(title)
    ax.set_ylabel(measure_label(measure, alpha))
    for j, (dim, values) in enumerate(zip(dims, levels)):
        base = len(dims) - 1 - j
        index = np.array([values.index(combo[j]) for combo in combos])
        height = index / max(len(values) - 1, 1) * 0.7 + base
        loops.step(x, height, where="mid", color="#333333", linewidth=1.2)
        loops.text(-0.02, base + 0.35, dim, transform=loops.get_yaxis_transform(), ha="right", va="center",
                   fontsize=9)
        # Level labels where the level changes, in the factor's first full cycle only (they repeat).
        cycle = int(np.prod([len(v) for v in levels[j:]]))
        previous = None
        for position, level_index in enumerate(index):
            if level_index != previous and (position < cycle or len(combos) <= 24):
                loops.text(position, height[position] + 0.08, f"{values[level_index]}", fontsize=7, ha="center",
                           va="bottom", color="#333333")
            previous = level_index
    loops.set_ylim(-0.15, len(dims) + 0.1)
    loops.set_yticks([])
    loops.grid(False)
    loops.spines["left"].set_visible(False)
    loops.set_xlabel("grid cell (first factor changes slowest)")
    loops.set_xticks(x if len(x) <= 40 else x[:: max(1, len(x) // 20)])
    extra = []
    if nominal is not None:
        label = f"alpha = {nominal:g}" if measure.startswith("rejection") else f"nominal {nominal:g}"
        extra.append(Line2D([], [], color="#444444", linestyle="--", label=label))
    _legend(fig, names, extra)
    return fig


# ---------------------------------------------------------------------------------------------
# Distribution of the estimates


def plot_estimates(ds: xr.Dataset, terms: Sequence[str] | None = None, cell_list: Sequence[dict] | None = None,
                   max_cells: int = 6, max_reps: int = 20000) -> Figure:
    """Distribution of each estimator's valid estimates (violin, with the median and quartiles
    as a box, the median as a tick across it and the mean as a white dot) against the truth (vertical line), a row per grid cell
    (at most ``max_cells``) and a column per term. Uses the first ``max_reps`` replicates."""
    terms = list(terms or default_terms(ds))
    all_cells = cells(ds) if cell_list is None else list(cell_list)
    shown = all_cells[:max_cells]
    names = estimator_names(ds)
    fig = new_figure(3.8 * len(terms) + 1.2, (0.42 * len(names) + 1.0) * len(shown) + 0.9)
    axes = _subplots(fig, len(shown), len(terms), sharey=True)
    for r, cell in enumerate(shown):
        for c, term in enumerate(terms):
            ax = axes[r, c]
            part = ds[["estimate", "status", "truth"]].sel(term=term, **cell).isel(rep=slice(0, max_reps)).load()
            theta = float(part["truth"])
            data, positions = [], []
            for i, name in enumerate(names):
                one = part.sel(estimator=name)
                values = one["estimate"].values
                ok = np.isin(one["status"].values, VALID_CODES) & np.isfinite(values)
                if ok.sum() >= 2:
                    data.append(values[ok])
                    positions.append(i)
            if data:
                parts = ax.violinplot(data, positions=positions, orientation="horizontal", showextrema=False,
                                      widths=0.8)
                for body, position in zip(parts["bodies"], positions):
                    body.set_facecolor(style(position)["color"])
                    body.set_edgecolor(style(position)["color"])
                    body.set_alpha(0.45)
                for values, position in zip(data, positions):
                    q1, median, q3 = np.percentile(values, [25, 50, 75])
                    ax.plot([q1, q3], [position, position], color="#222222", linewidth=3, solid_capstyle="butt")
                    ax.plot([median], [position], marker="|", color="#222222", markersize=16, markeredgewidth=2)
                    ax.plot([values.mean()], [position], marker="o", color="white", markeredgecolor="#222222",
                            markersize=4)
            ax.axvline(theta, color="#222222", linestyle="--", linewidth=1)
            ax.set_yticks(range(len(names)), names)
            ax.set_ylim(len(names) - 0.4, -0.6)
            title = term if not cell else f"{term} ({cell_label(cell)})"
            ax.set_title(title)
            if r == len(shown) - 1:
                ax.set_xlabel(f"estimate of {term} (truth dashed)")
    if len(all_cells) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(all_cells)} grid cells")
    extra = [Line2D([], [], color="#222222", linestyle="--", label="truth"),
             Line2D([], [], color="#222222", linewidth=3, label="quartiles"),
             Line2D([], [], color="#222222", marker="|", markersize=12, markeredgewidth=2, linestyle="none",
                    label="median"),
             Line2D([], [], color="white", marker="o", markeredgecolor="#222222", linestyle="none", label="mean")]
    fig.legend(handles=extra, loc="outside right upper", frameon=False)
    return fig
