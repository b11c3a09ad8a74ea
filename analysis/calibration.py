"""The calibration check: is each estimator's coverage, and its Type I error where the truth is 0,
consistent with nominal?

For every grid cell, estimator and term (a *check*):

- ``coverage``: k of n valid replicates' intervals cover the truth; nominal 1 - alpha_e, with
  alpha_e the alpha the estimator's intervals were built with (its own ``alpha`` in the stored
  config, else the study's).
- ``type1`` (only where the truth is 0): k of n valid replicates reject H0 at ``alpha``;
  nominal ``alpha`` (default: the study's).

Each check has two criteria:

1. Statistical: the exact two-sided binomial test of k ~ Binomial(n, nominal) (Clopper-Pearson
   style ``scipy.stats.binomtest``), with Holm's step-down correction over all checks in the
   table (``family="all"``) or within each estimator and term across cells
   (``family="estimator"``), at familywise level ``level``. Holm (1979), Scand J Stat 6:65.
2. Practical: the observed error rate lies in a band around nominal. For Type I error, Bradley's
   (1978, Br J Math Stat Psychol 31:144) liberal criterion 0.5 alpha .. 1.5 alpha
   (0.025 .. 0.075 at alpha = .05); for coverage the same band on the miss rate 1 - coverage,
   i.e. coverage in 1 - 1.5 alpha_e .. 1 - 0.5 alpha_e (0.925 .. 0.975 at 95%). The multipliers
   are ``band`` and ``coverage_band``.

``rule`` combines them into the verdict: ``"both"`` (default) fails a check only when the
binomial test rejects *and* the rate is outside the band, so that Monte Carlo noise in a short
study and a trivially small but significant deviation in a long one both pass; ``"test"`` and
``"band"`` use one criterion; ``"either"`` fails on any. A check with no usable replicate fails.
``failures="exclude"`` (default) uses valid replicates; ``failures="count"`` uses all replicates
with a failed fit as a non-cover / non-rejection (``coverage_all`` / ``rejection_all``).
``max_failure_rate`` additionally fails a check whose estimator fails more often than that.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from scipy import special

from analysis.measures import summarise
from analysis.replicates import valid_fits
from analysis.schema import grid_dims

Rule = Literal["both", "test", "band", "either"]
Family = Literal["all", "estimator"]
BRADLEY_LIBERAL = (0.5, 1.5)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: sort p ascending, p_adj(j) = max_{i<=j} min(1, (m-i+1) p_(i))
    (Holm 1979). NaNs stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def binomial_pmf(x: int, n: int, p: float) -> float:
    """P(X = x) for X ~ Binomial(n, p): exp(log C(n, x) + x log p + (n - x) log(1 - p))."""
    log_choose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    return float(np.exp(log_choose + special.xlogy(x, p) + special.xlog1py(n - x, -p)))


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test of k successes in n trials against probability p: the sum
    of P(X = x) over every x with P(X = x) <= P(X = k) (1 + 1e-7) (Zar 2010, section 24.5; the
    tolerance and the search of the other tail are ``scipy.stats.binomtest``'s). The pmf is
    unimodal, so the outcomes at least as extreme as k form k's tail (``bdtr``/``bdtrc`` of
    scipy.special) and the far tail beyond the first x, found by bisection, with
    P(X = x) <= P(X = k) (1 + 1e-7). NaN when n = 0. (scipy.stats itself is not imported: it
    takes longer to import than a small study takes to run.)"""
    if n <= 0:
        return float("nan")
    k, n, p = int(k), int(n), float(p)
    bound = binomial_pmf(k, n, p) * (1 + 1e-7)
    mode = p * n
    if k == mode:
        return 1.0
    if k < mode:  # the far tail: x >= first, where the pmf decreases from ceil(mode) to n
        low, high = int(np.ceil(mode)), n + 1
        while low < high:
            middle = (low + high) // 2
            if binomial_pmf(middle, n, p) <= bound:
                high = middle
            else:
                low = middle + 1
        far = float(special.bdtrc(low - 1, n, p)) if low <= n else 0.0
        return min(1.0, float(special.bdtr(k, n, p)) + far)
    low, high = -1, int(np.floor(mode))  # the far tail: x <= last, the pmf increasing up to floor(mode)
    while low < high:
        middle = (low + high + 1) // 2
        if binomial_pmf(middle, n, p) <= bound:
            low = middle
        else:
            high = middle - 1
    far = float(special.bdtr(low, n, p)) if low >= 0 else 0.0
    return min(1.0, far + (float(special.bdtrc(k - 1, n, p)) if k > 0 else 1.0))


def interval_alphas(ds: xr.Dataset) -> dict[str, float]:
    """The alpha each estimator's intervals were built with: its ``alpha`` in the config stored
    in ``ds.attrs["config"]``, else the study's ``alpha``."""
    study_alpha = float(ds.attrs.get("alpha", 0.05))
    try:
        config = yaml.safe_load(ds.attrs.get("config", "")) or {}
    except yaml.YAMLError:
        config = {}
    estimators = config.get("estimators") or {}
    out = {}
    for name in (str(e) for e in ds["estimator"].values):
        entry = estimators.get(name)
        value = entry.get("alpha") if isinstance(entry, dict) else None
        out[name] = float(value) if value is not None else study_alpha
    return out


@dataclass
class CalibrationResult:
    """The checks, one row each, and the settings they used."""

    table: pd.DataFrame
    settings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check passes (and there is at least one)."""
        return len(self.table) > 0 and bool((self.table["verdict"] == "PASS").all())

    @property
    def failures(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] != "PASS"]

    def to_string(self) -> str:
        return format_calibration(self)

    def __str__(self) -> str:
        return self.to_string()


def _band(nominal_error: float, multipliers: tuple[float, float]) -> tuple[float, float]:
    low, high = multipliers
    return low * nominal_error, high * nominal_error


def check_calibration(
    ds: xr.Dataset,
    *,
    alpha: float | None = None,
    level: float = 0.05,
    band: tuple[float, float] = BRADLEY_LIBERAL,
    coverage_band: tuple[float, float] | None = None,
    rule: Rule = "both",
    family: Family = "all",
    failures: Literal["exclude", "count"] = "exclude",
    max_failure_rate: float | None = None,
    estimators: Iterable[str] | None = None,
    terms: Iterable[str] | None = None,
    checks: Iterable[str] = ("coverage", "type1"),
    summary: xr.Dataset | None = None,
) -> CalibrationResult:
    """Check coverage (every term) and Type I error (terms whose truth is 0) per grid cell and
    estimator against nominal; see the module docstring for the criteria.

    ``alpha``: the Type I error level tested (default: the study's ``alpha``).
    ``level``: familywise level of the Holm-corrected binomial tests.
    ``band``, ``coverage_band``: multipliers (low, high) of the nominal error rate that make the
    practical band for Type I error and for non-coverage (default: Bradley's 0.5, 1.5; the
    coverage band defaults to ``band``).
    ``summary``: a precomputed ``summarise(ds, alpha)`` to reuse (computed here when it lacks a
    measure or used another alpha).
    A term that an estimator's fits never report (no interval, or no p-value, although fits
    succeeded: the intercept under fixed effects, min F's interval) is not checked; a term
    whose fits all failed is, and fails.
    Returns a :class:`CalibrationResult`; ``.passed`` is what a test asserts.
    """
    if rule not in ("both", "test", "band", "either"):
        raise ValueError(f"rule: must be one of both, test, band, either; got {rule!r}")
    if family not in ("all", "estimator"):
        raise ValueError(f"family: must be 'all' or 'estimator', got {family!r}")
    if failures not in ("exclude", "count"):
        raise ValueError(f"failures: must be 'exclude' or 'count', got {failures!r}")
    alpha = float(ds.attrs.get("alpha", 0.05) if alpha is None else alpha)
    coverage_band = band if coverage_band is None else coverage_band
    checks = tuple(checks)
    for check in checks:
        if check not in ("coverage", "type1"):
            raise ValueError(f"checks: unknown check {check!r} (coverage, type1)")
    count = failures == "count"
    # The valid-replicate measures are always needed: they tell a term the estimator does not
    # report (no interval, no p-value) from one whose fits failed.
    needed = ("coverage", "rejection", "failure_rate") + (("coverage_all", "rejection_all") if count else ())
    if summary is not None and (not np.isclose(float(summary.attrs.get("alpha", alpha)), alpha)
                                or not set(needed) <= {str(m) for m in summary["measure"].values}):
        summary = None  # its rejection rates use another alpha, or it lacks a measure
    if summary is None:
        summary = summarise(ds, alpha, alphas=(), measures=needed)
    alphas_e = interval_alphas(ds)
    grid = grid_dims(ds)
    truth = ds["truth"].load()
    fits_ok = valid_fits(ds["status"]).sum("rep").compute()

    names = [str(e) for e in ds["estimator"].values]
    term_list = [str(t) for t in ds["term"].values]
    for name, wanted, known in (("estimators", estimators, names), ("terms", terms, term_list)):
        unknown = sorted(set(wanted or ()) - set(known))
        if unknown:
            raise ValueError(f"{name}: not in the results: {', '.join(unknown)} (available: {', '.join(known)})")
    names = [e for e in names if estimators is None or e in set(estimators)]
    term_list = [t for t in term_list if terms is None or t in set(terms)]
    small = summary.sel(measure=list(needed)).load()

    rows = []
    levels = [[v.item() if hasattr(v, "item") else v for v in ds[d].values] for d in grid]
    for combo in itertools.product(*levels):
        cell = dict(zip(grid, combo))
        for estimator in names:
            here = small.sel(estimator=estimator, **cell)
            any_fit_ok = int(fits_ok.sel(estimator=estimator, **cell)) > 0
            for term in term_list:
                values = here.sel(term=term)
                theta = float(truth.sel(term=term, **cell))
                failure = float(values["value"].sel(measure="failure_rate"))
                for check in checks:
                    if check == "coverage":
                        base, error = "coverage", alphas_e[estimator]
                        nominal, (low, high) = 1 - error, _band(error, coverage_band)
                        low, high = 1 - high, 1 - low
                    else:
                        if theta != 0:
                            continue
                        base, nominal = "rejection", alpha
                        low, high = _band(alpha, band)
                    if int(values["n"].sel(measure=base)) == 0 and any_fit_ok:
                        continue  # fits ran but never report this (an intercept under fixed effects, min F')
                    measure = f"{base}_all" if count else base
                    observed, n = float(values["value"].sel(measure=measure)), int(values["n"].sel(measure=measure))
                    k = int(round(observed * n)) if n > 0 else 0
                    rows.append({
                        **cell, "estimator": estimator, "term": term, "check": check,
                        "nominal": nominal, "observed": observed if n > 0 else np.nan,
                        "mcse": float(values["mcse"].sel(measure=measure)) if n > 0 else np.nan,
                        "k": k, "n": n, "band_low": low, "band_high": high,
                        "p_value": binomial_p_value(k, n, nominal), "failure_rate": failure,
                    })
    table = pd.DataFrame(rows, columns=[*grid, "estimator", "term", "check", "nominal", "observed", "mcse", "k",
                                        "n", "band_low", "band_high", "p_value", "failure_rate"])
    settings = dict(alpha=alpha, level=level, band=tuple(band), coverage_band=tuple(coverage_band), rule=rule,
                    family=family, failures=failures, max_failure_rate=max_failure_rate,
                    interval_alphas=alphas_e)
    return CalibrationResult(apply_verdicts(table, settings), settings)


def apply_verdicts(table: pd.DataFrame, settings: dict, groups: Sequence[str] = ()) -> pd.DataFrame:
    """Add ``p_holm``, ``in_band``, ``consistent`` and ``verdict`` to a table of checks.

    Holm's correction runs over the whole table (``family="all"``) or within each estimator,
    term and check (``family="estimator"``), in both cases also within each of ``groups``.
    """
    table = table.copy()
    family = list(groups) + (["estimator", "term", "check"] if settings["family"] == "estimator" else [])
    if family and not table.empty:
        table["p_holm"] = np.nan
        for _, index in table.groupby(family, sort=False, dropna=False).groups.items():
            table.loc[index, "p_holm"] = holm(table.loc[index, "p_value"].to_numpy())
    else:
        table["p_holm"] = holm(table["p_value"].to_numpy())
    # Rounding guard: a rate that equals a band edge up to float noise is inside the band.
    tolerance = 1e-12
    table["in_band"] = (table["observed"] >= table["band_low"] - tolerance) & (
        table["observed"] <= table["band_high"] + tolerance)
    table["consistent"] = ~(table["p_holm"] < settings["level"])
    fail = {
        "both": ~table["in_band"] & ~table["consistent"],
        "test": ~table["consistent"],
        "band": ~table["in_band"],
        "either": ~table["in_band"] | ~table["consistent"],
    }[settings["rule"]]
    fail = fail | (table["n"] == 0)
    if settings.get("max_failure_rate") is not None:
        fail = fail | (table["failure_rate"] > settings["max_failure_rate"])
    table["verdict"] = np.where(fail, "FAIL", "PASS")
    return table


def describe_settings(settings: dict) -> str:
    """One paragraph saying what was tested, for the table's header."""
    alpha = settings["alpha"]
    low, high = settings["band"]
    c_low, c_high = settings["coverage_band"]
    interval = sorted(set(settings["interval_alphas"].values())) or [alpha]
    coverage_text = "; ".join(
        f"coverage {1 - a:.3g} (band {1 - c_high * a:.4g}..{1 - c_low * a:.4g})" for a in interval)
    rule = {"both": "FAIL when the test rejects and the rate is outside the band",
            "test": "FAIL when the test rejects", "band": "FAIL when the rate is outside the band",
            "either": "FAIL when the test rejects or the rate is outside the band"}[settings["rule"]]
    family = "all checks" if settings["family"] == "all" else "each estimator and term across cells"
    failures = ("valid replicates" if settings["failures"] == "exclude"
                else "all replicates, a failed fit as a non-cover / non-rejection")
    text = (f"nominal {coverage_text}; Type I error {alpha:g} where the truth is 0 "
            f"(band {low * alpha:.4g}..{high * alpha:.4g}); exact binomial tests, Holm over {family} "
            f"at {settings['level']:g}; {rule}; over {failures}")
    if settings.get("max_failure_rate") is not None:
        text += f"; FAIL when the failure rate exceeds {settings['max_failure_rate']:g}"
    return text


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return "-"
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def display_table(result: CalibrationResult) -> pd.DataFrame:
    """The checks as text columns for people: ``observed (MCSE)``, ``band``, ``k/n``, ``p_holm``."""
    table = result.table
    leading = [c for c in table.columns if c not in (
        "estimator", "term", "check", "nominal", "observed", "mcse", "k", "n", "band_low", "band_high", "p_value",
        "p_holm", "failure_rate", "in_band", "consistent", "verdict")]
    shown = table[leading + ["estimator", "term", "check"]].copy()
    shown["nominal"] = table["nominal"].map(lambda v: f"{v:.3f}")
    shown["observed (MCSE)"] = [f"{o:.3f} ({m:.3f})" if np.isfinite(o) else "-"
                                for o, m in zip(table["observed"], table["mcse"])]
    shown["band"] = [f"{lo:.3f}..{hi:.3f}" for lo, hi in zip(table["band_low"], table["band_high"])]
    shown["k/n"] = [f"{k}/{n}" for k, n in zip(table["k"], table["n"])]
    shown["p_holm"] = table["p_holm"].map(_p_text)
    shown["failures"] = table["failure_rate"].map(lambda v: f"{v:.3f}")
    shown["verdict"] = table["verdict"]
    return shown


def format_calibration(result: CalibrationResult) -> str:
    """The settings, the PASS/FAIL table with the numbers, and a closing count."""
    table = result.table
    if table.empty:
        return "no checks (no results)"
    n_fail = int((table["verdict"] != "PASS").sum())
    closing = (f"all {len(table)} checks PASS" if n_fail == 0
               else f"{n_fail} of {len(table)} checks FAIL")
    return "\n".join([describe_settings(result.settings), display_table(result).to_string(index=False), closing])
