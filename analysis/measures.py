"""Performance measures with Monte Carlo standard errors (Morris, White & Crowther 2019,
Stat Med 38:2074, Table 6; the formulas of rsimsum, Gasparini 2018, JOSS 3:739).

With n valid replicates, estimates t_i, their mean t_bar, the truth theta, model SEs s_i,
interval limits lo_i, hi_i and p-values p_i:

    bias              mean(t_i - theta)                  sqrt(sum (t_i - t_bar)^2 / (n (n-1)))
    relbias (%)       100 bias / theta                   100 mcse(bias) / |theta|
    empse             sqrt(sum (t_i - t_bar)^2 / (n-1))  empse / sqrt(2 (n-1))
    mse               mean((t_i - theta)^2)              sqrt(sum ((t_i - theta)^2 - mse)^2 / (n (n-1)))
    rmse              sqrt(mse)                          mcse(mse) / (2 rmse)          (delta method)
    modelse           sqrt(mean(s_i^2))                  sqrt(var(s_i^2) / (4 n modelse^2))
    relerror_modelse  100 (modelse/empse - 1)            100 (modelse/empse) sqrt(var(s_i^2)/(4 n modelse^4) + 1/(2(n-1)))
    relprec (%)       100 ((empse_ref/empse)^2 - 1)      200 (empse_ref/empse)^2 sqrt((1 - rho^2) / (n-1))
    coverage          mean(lo_i <= theta <= hi_i)        sqrt(C (1-C) / n)
    becoverage        mean(lo_i <= t_bar <= hi_i)        sqrt(B (1-B) / n)
    ci_width          mean(hi_i - lo_i)                  sd(hi_i - lo_i) / sqrt(n)
    rejection         mean(p_i < alpha)                  sqrt(P (1-P) / n)
    rejection_<a>     mean(p_i < a), a in ``alphas``     sqrt(P (1-P) / n)
    coverage_all      coverage with every replicate counted, a failed fit as a non-cover (n = N)
    rejection_all     rejection with a failed fit as a non-rejection (n = N); likewise rejection_<a>_all
    failure_rate      share of the N replicates not valid  sqrt(F (1-F) / N)

Failures. A replicate is *valid* for an estimator and term when its status is ``ok`` or
``singular`` and its estimate is finite; every other status (``not_converged``, ``failed``,
``not_estimable``, ``timeout``, and any code added later) is a failure. The measures without a
suffix use the valid replicates that have the quantity they need (``n`` is counted per measure:
coverage needs both interval limits, rejection a p-value). The ``_all`` measures count every one
of the N replicates and score a failure (or a valid fit with no interval or p-value) as a
non-cover or a non-rejection: the honest error rate of "fit it and report what comes out".
``failure_rate`` sits beside both. Bias, SEs and the other measures of a distribution of
estimates have no sensible value for a failed fit and exist only over valid replicates.

``relprec`` compares each estimator's empirical SE with a reference estimator's (rsimsum's
``relprec``); rho is the correlation between the two estimators' estimates over the replicates
where both are valid, and n is the number of those replicates. ``becoverage`` is rsimsum's
bias-eliminated coverage: coverage of the mean estimate t_bar instead of theta, which separates
intervals that are too narrow from intervals centred in the wrong place. Intervals and p-values
are each estimator's own (its reference distribution and its alpha).

Every function here uses only xarray operations, so a dataset opened lazily (dask-backed
``xarray.open_zarr``) is summarised chunk by chunk; :func:`summarise` computes the small result.
Sums of squares about a mean need the mean before they can start, which would make dask keep
every block of the store in memory until the mean is known. So every mean over replicates is
taken through :func:`rep_mean`, and :func:`summarise` first computes the means the measures
need, then the measures, each block reduced and let go as it is read. Each mean and each
measure is its own dask computation: in one graph holding many reductions of the same blocks,
dask's scheduler keeps blocks alive (1,000,000 replicates of 4 estimators: 290 MiB peak in one
graph, 244 MiB one by one, against 180 MiB for the opened store). The summary then reads the
store some 25 times, and its memory is bounded by a few blocks, whatever ``n_reps``.
"""
from __future__ import annotations

import contextlib
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import dask

import numpy as np
import pandas as pd
import xarray as xr

from analysis.schema import grid_dims
from estimators.result import Status

VALID_STATUSES = (Status.ok, Status.singular)
DEFAULT_ALPHAS = (0.01, 0.05, 0.10)


def alpha_label(alpha: float) -> str:
    """``0.05`` -> ``"0.05"``, ``0.1`` -> ``"0.10"``, ``0.001`` -> ``"0.001"`` (at least two decimals)."""
    text = f"{alpha:.10f}".rstrip("0")
    decimals = len(text.split(".")[1])
    return f"{alpha:.{max(decimals, 2)}f}"


def rejection_name(alpha: float | None = None, all_replicates: bool = False) -> str:
    """Measure name of a rejection rate: ``rejection`` (the study's alpha), ``rejection_0.01``,
    and the same with ``_all`` appended for the failures-as-events version."""
    name = "rejection" if alpha is None else f"rejection_{alpha_label(alpha)}"
    return f"{name}_all" if all_replicates else name


def measure_names(alphas: Iterable[float] = DEFAULT_ALPHAS) -> tuple[str, ...]:
    """The measures :func:`summarise` reports, in order, for the given extra alphas."""
    alphas = tuple(alphas)
    return (
        "bias", "relbias", "empse", "mse", "rmse", "modelse", "relerror_modelse", "relprec",
        "coverage", "becoverage", "ci_width",
        "rejection", *(rejection_name(a) for a in alphas),
        "coverage_all", "rejection_all", *(rejection_name(a, True) for a in alphas),
        "failure_rate",
    )


MEASURES = measure_names()


class Measure(NamedTuple):
    """A performance measure over (grid..., estimator, term): estimate, Monte Carlo SE and the
    number of replicates it used."""

    value: xr.DataArray
    mcse: xr.DataArray
    n: xr.DataArray


@dataclass(frozen=True)
class Replicates:
    """The per-replicate quantities of a results dataset, masked for the measures.

    Arrays over (grid..., estimator, rep, term) are NaN where the replicate is not valid
    (see the module docstring); the boolean masks say which replicates each kind of measure
    can use. Building one is lazy: nothing is computed until a measure is.
    """

    estimate: xr.DataArray
    std_error: xr.DataArray
    lower: xr.DataArray
    upper: xr.DataArray
    p_value: xr.DataArray
    truth: xr.DataArray
    valid: xr.DataArray  # status ok/singular and a finite estimate
    se_usable: xr.DataArray
    ci_usable: xr.DataArray
    p_usable: xr.DataArray

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "Replicates":
        valid = valid_mask(ds)
        se_usable = valid & np.isfinite(ds["std_error"])
        ci_usable = valid & np.isfinite(ds["ci_lower"]) & np.isfinite(ds["ci_upper"])
        p_usable = valid & np.isfinite(ds["p_value"])
        return cls(
            estimate=ds["estimate"].where(valid),
            std_error=ds["std_error"].where(se_usable),
            lower=ds["ci_lower"].where(ci_usable),
            upper=ds["ci_upper"].where(ci_usable),
            p_value=ds["p_value"].where(p_usable),
            truth=ds["truth"],
            valid=valid,
            se_usable=se_usable,
            ci_usable=ci_usable,
            p_usable=p_usable,
        )


INPUTS = ("estimate", "std_error", "ci_lower", "ci_upper", "p_value", "status", "truth")
CHUNK_BYTES = 2 * 2**20  # per input variable; the reductions hold a few dozen such blocks at once


def for_reduction(ds: xr.Dataset) -> xr.Dataset:
    """The variables the measures read; when dask-backed, rechunked for reductions over ``rep``.

    A store is chunked for writing (one grid cell and a few replicates per chunk), which makes
    thousands of tiny tasks for a summary. Here every chunk spans all grid cells, estimators and
    terms and as many replicates as fit in about ``CHUNK_BYTES`` (at least the store's own rep
    chunk), so memory stays bounded whatever ``n_reps`` is and the task graph stays small.
    """
    ds = ds[[name for name in INPUTS if name in ds]]
    if ds["estimate"].chunks is None:
        return ds
    per_rep = 8 * ds["estimate"].size // ds.sizes["rep"]
    stored = max(ds["estimate"].chunksizes["rep"])
    rep_chunk = int(min(ds.sizes["rep"], max(stored, CHUNK_BYTES // max(per_rep, 1))))
    return ds.chunk({**{dim: -1 for dim in ds.dims if dim != "rep"}, "rep": rep_chunk})


def valid_mask(ds: xr.Dataset) -> xr.DataArray:
    """Replicates whose fit counts: status ok or singular, with a finite estimate."""
    ok = ds["status"].isin([int(s) for s in VALID_STATUSES])
    return ok & np.isfinite(ds["estimate"])


@contextlib.contextmanager
def quiet_arithmetic():
    """Silence numpy's warnings for 0/0 and the like while measures are computed: a cell where
    no replicate is valid, or a relative bias where theta = 0, is NaN by design. (``np.errstate``
    would not reach dask's worker threads; the warning filters do.)"""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _sum(x: xr.DataArray) -> xr.DataArray:
    return x.sum("rep", skipna=True)


class RepMeans:
    """The means over replicates of one summary's dask-backed arrays: collected while the
    measures' lazy graph is built, then computed, each in its own pass over the store."""

    def __init__(self):
        self.pending: dict[str, xr.DataArray] = {}
        self.known: dict[str, xr.DataArray] = {}

    def mean(self, x: xr.DataArray) -> xr.DataArray:
        known = self.known.get(x.data.name)
        if known is not None:
            return known
        self.pending[x.data.name] = x
        return x.mean("rep")

    def compute_pending(self) -> None:
        for name, x in self.pending.items():
            self.known[name], = one_pass(x.mean("rep"))
        self.pending.clear()


def one_pass(*arrays):
    """``dask.compute(*arrays)`` in this thread: one pass over the blocks the arrays read, each
    reduced and let go in turn (dask's threaded scheduler would keep a block per worker thread
    and spread the allocations over per-thread malloc arenas, which a summary of a few
    dozen small reductions gains little from)."""
    return dask.compute(*arrays, scheduler="synchronous")


MEAN_ROUNDS = 3  # the deepest nesting of means over replicates in a measure (compare's rmse: 2)
_rep_means: ContextVar[RepMeans | None] = ContextVar("rep_means", default=None)


def rep_mean(x: xr.DataArray) -> xr.DataArray:
    """mean(x_i) over replicates (NaN skipped); for a dask-backed ``x`` inside :func:`summarise`,
    the value computed in its first pass (see the module docstring)."""
    means = _rep_means.get()
    if means is None or x.chunks is None:
        return x.mean("rep")
    return means.mean(x)


def with_means_first(build):
    """``build()`` (lazy measures) after passes over the store have computed every mean over
    replicates that ``build`` takes, so that what it returns reads each block once. Building
    collects the means; a mean of something centred on another mean (a mean squared deviation)
    appears once that one is known, hence the rounds (any mean still pending after them is left
    lazy in the result: the same numbers, with more blocks held)."""
    means = RepMeans()
    token = _rep_means.set(means)
    try:
        result = build()
        for _ in range(MEAN_ROUNDS):
            if not means.pending:
                break
            means.compute_pending()
            result = build()
        return result
    finally:
        _rep_means.reset(token)


# ---------------------------------------------------------------------------------------------
# One function per formula. Arguments are NaN where a replicate does not count.


def mean_with_mcse(x: xr.DataArray) -> Measure:
    """Mean over replicates with MCSE sqrt(sum (x_i - x_bar)^2 / (n (n-1))) (the MCSE of bias
    and of mse in Morris et al. 2019, Table 6: the SE of a sample mean)."""
    n = x.count("rep")
    mean = rep_mean(x)
    return Measure(mean, np.sqrt(_sum((x - mean) ** 2) / (n * (n - 1))), n)


def proportion(events: xr.DataArray, usable: xr.DataArray) -> Measure:
    """Share of ``usable`` replicates with an event: P = k/n, MCSE sqrt(P (1-P) / n)
    (coverage and power in Morris et al. 2019, Table 6)."""
    n = usable.sum("rep")
    share = _sum(events & usable) / n
    return Measure(share, np.sqrt(share * (1 - share) / n), n)


def bias(estimate: xr.DataArray, truth: xr.DataArray) -> Measure:
    """bias = mean(t_i) - theta, MCSE sqrt(sum (t_i - t_bar)^2 / (n (n-1))) (Morris et al. 2019)."""
    mean = mean_with_mcse(estimate)
    return Measure(mean.value - truth, mean.mcse, mean.n)


def relative_bias(estimate: xr.DataArray, truth: xr.DataArray) -> Measure:
    """Relative bias in percent: 100 (t_bar - theta) / theta, MCSE 100 mcse(bias) / |theta|
    (rsimsum's ``rbias`` times 100; undefined, NaN, where theta = 0)."""
    theta = truth.where(truth != 0)
    b = bias(estimate, truth)
    return Measure(100 * b.value / theta, 100 * b.mcse / np.abs(theta), b.n)


def empirical_se(estimate: xr.DataArray) -> Measure:
    """empse = sqrt(sum (t_i - t_bar)^2 / (n-1)), MCSE empse / sqrt(2 (n-1)) (Morris et al. 2019)."""
    n = estimate.count("rep")
    empse = np.sqrt(_sum((estimate - rep_mean(estimate)) ** 2) / (n - 1))
    return Measure(empse, empse / np.sqrt(2 * (n - 1)), n)


def mean_squared_error(estimate: xr.DataArray, truth: xr.DataArray) -> Measure:
    """mse = mean((t_i - theta)^2), MCSE sqrt(sum ((t_i - theta)^2 - mse)^2 / (n (n-1)))
    (Morris et al. 2019)."""
    return mean_with_mcse((estimate - truth) ** 2)


def root_mean_squared_error(estimate: xr.DataArray, truth: xr.DataArray) -> Measure:
    """rmse = sqrt(mse), MCSE mcse(mse) / (2 rmse) (delta method)."""
    mse = mean_squared_error(estimate, truth)
    rmse = np.sqrt(mse.value)
    return Measure(rmse, mse.mcse / (2 * rmse), mse.n)


def model_se(std_error: xr.DataArray) -> Measure:
    """modelse = sqrt(mean(s_i^2)), MCSE sqrt(var(s_i^2) / (4 n modelse^2)) (Morris et al. 2019;
    rsimsum's default root mean squared model SE)."""
    variance = std_error**2
    n = variance.count("rep")
    modelse = np.sqrt(variance.mean("rep"))
    return Measure(modelse, np.sqrt(variance.var("rep", ddof=1) / (4 * n * modelse**2)), n)


def relative_error_model_se(estimate: xr.DataArray, std_error: xr.DataArray) -> Measure:
    """Relative error of the model SE in percent: 100 (modelse/empse - 1), MCSE
    100 (modelse/empse) sqrt(var(s_i^2)/(4 n modelse^4) + 1/(2(n-1))) (Morris et al. 2019)."""
    empse = empirical_se(estimate)
    variance = std_error**2
    n_se = variance.count("rep")
    modelse = np.sqrt(variance.mean("rep"))
    ratio = modelse / empse.value
    mcse = 100 * ratio * np.sqrt(variance.var("rep", ddof=1) / (4 * n_se * modelse**4) + 1 / (2 * (n_se - 1)))
    return Measure(100 * (ratio - 1), mcse, np.minimum(empse.n, n_se))


def relative_precision(estimate: xr.DataArray, reference: xr.DataArray) -> Measure:
    """Precision relative to a reference estimator in percent:
    relprec = 100 ((empse_ref / empse)^2 - 1), MCSE 200 (empse_ref / empse)^2 sqrt((1 - rho^2) / (n - 1)),
    rho the correlation of the two estimators' estimates over the n replicates where both are
    valid (rsimsum's ``relprec``; White 2010, Stata Journal 10:369). ``reference`` has no
    estimator dimension; the reference compared with itself gives 0 with MCSE 0.
    """
    ratio2 = (empirical_se(reference).value / empirical_se(estimate).value) ** 2
    both = np.isfinite(estimate) & np.isfinite(reference)
    n = both.sum("rep")
    rho = correlation(estimate.where(both), reference.where(both))
    one_minus_rho2 = np.maximum(1 - rho**2, 0.0)  # rho can round to just above 1 for the reference
    return Measure(100 * (ratio2 - 1), 200 * ratio2 * np.sqrt(one_minus_rho2 / (n - 1)), n)


def correlation(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Pearson's correlation over replicates of ``a`` and ``b`` (NaN in the same places):
    sum (a_i - a_bar)(b_i - b_bar) / sqrt(sum (a_i - a_bar)^2 sum (b_i - b_bar)^2)."""
    da, db = a - rep_mean(a), b - rep_mean(b)
    return _sum(da * db) / np.sqrt(_sum(da**2) * _sum(db**2))


def coverage(lower: xr.DataArray, upper: xr.DataArray, truth: xr.DataArray, usable: xr.DataArray) -> Measure:
    """coverage = mean(lo_i <= theta <= hi_i), MCSE sqrt(C (1-C) / n) (Morris et al. 2019)."""
    return proportion((lower <= truth) & (truth <= upper), usable)


def bias_eliminated_coverage(lower: xr.DataArray, upper: xr.DataArray, estimate: xr.DataArray,
                             usable: xr.DataArray) -> Measure:
    """Bias-eliminated coverage: mean(lo_i <= t_bar <= hi_i) with t_bar the mean estimate over
    valid replicates, MCSE sqrt(B (1-B) / n) (rsimsum's ``becover``; Morris et al. 2019, sec. 5.2)."""
    center = rep_mean(estimate)
    return proportion((lower <= center) & (center <= upper), usable)


def mean_ci_width(lower: xr.DataArray, upper: xr.DataArray) -> Measure:
    """Mean width of the intervals, mean(hi_i - lo_i), MCSE sd(hi_i - lo_i) / sqrt(n)."""
    return mean_with_mcse(upper - lower)


def rejection(p_value: xr.DataArray, alpha: float, usable: xr.DataArray) -> Measure:
    """Rejection rate mean(p_i < alpha), MCSE sqrt(P (1-P) / n): the Type I error where
    theta = 0, the power elsewhere (Morris et al. 2019)."""
    return proportion(p_value < alpha, usable)


def coverage_counting_failures(lower: xr.DataArray, upper: xr.DataArray, truth: xr.DataArray,
                               usable: xr.DataArray) -> Measure:
    """Coverage over all N replicates, a replicate without a usable interval (a failed fit)
    counted as a non-cover: C_all = #{usable and lo_i <= theta <= hi_i} / N, MCSE sqrt(C_all (1-C_all) / N)."""
    return proportion((lower <= truth) & (truth <= upper) & usable, xr.ones_like(usable, dtype=bool))


def rejection_counting_failures(p_value: xr.DataArray, alpha: float, usable: xr.DataArray) -> Measure:
    """Rejection rate over all N replicates, a replicate without a usable p-value (a failed fit)
    counted as a non-rejection: P_all = #{usable and p_i < alpha} / N, MCSE sqrt(P_all (1-P_all) / N)."""
    return proportion((p_value < alpha) & usable, xr.ones_like(usable, dtype=bool))


def failure_rate(valid: xr.DataArray) -> Measure:
    """Share of all N replicates that are not valid, MCSE sqrt(F (1-F) / N)."""
    return proportion(~valid, xr.ones_like(valid, dtype=bool))


# ---------------------------------------------------------------------------------------------


def parse_rejection(measure: str) -> tuple[float | None, bool] | None:
    """``rejection_0.05_all`` -> (0.05, True); ``rejection`` -> (None, False); others -> None."""
    if not measure.startswith("rejection"):
        return None
    rest = measure[len("rejection"):]
    all_replicates = rest.endswith("_all")
    if all_replicates:
        rest = rest[: -len("_all")]
    if rest == "":
        return None, all_replicates
    try:
        return float(rest.lstrip("_")), all_replicates
    except ValueError:
        return None


def compute_measure(rep: Replicates, measure: str, alpha: float, reference: str | None = None) -> Measure:
    """One measure by name (see the module docstring) from prepared replicates.

    ``alpha`` is the threshold of ``rejection``; ``reference`` names the estimator ``relprec``
    compares with.
    """
    if measure == "bias":
        return bias(rep.estimate, rep.truth)
    if measure == "relbias":
        return relative_bias(rep.estimate, rep.truth)
    if measure == "empse":
        return empirical_se(rep.estimate)
    if measure == "mse":
        return mean_squared_error(rep.estimate, rep.truth)
    if measure == "rmse":
        return root_mean_squared_error(rep.estimate, rep.truth)
    if measure == "modelse":
        return model_se(rep.std_error)
    if measure == "relerror_modelse":
        return relative_error_model_se(rep.estimate, rep.std_error)
    if measure == "relprec":
        if reference is None:
            raise ValueError("relprec needs a reference estimator")
        return relative_precision(rep.estimate, rep.estimate.sel(estimator=reference, drop=True))
    if measure == "coverage":
        return coverage(rep.lower, rep.upper, rep.truth, rep.ci_usable)
    if measure == "coverage_all":
        return coverage_counting_failures(rep.lower, rep.upper, rep.truth, rep.ci_usable)
    if measure == "becoverage":
        return bias_eliminated_coverage(rep.lower, rep.upper, rep.estimate, rep.ci_usable)
    if measure == "ci_width":
        return mean_ci_width(rep.lower, rep.upper)
    if measure == "failure_rate":
        return failure_rate(rep.valid)
    parsed = parse_rejection(measure)
    if parsed is not None:
        threshold, all_replicates = parsed
        threshold = alpha if threshold is None else threshold
        if all_replicates:
            return rejection_counting_failures(rep.p_value, threshold, rep.p_usable)
        return rejection(rep.p_value, threshold, rep.p_usable)
    raise ValueError(f"unknown measure {measure!r} (known: {', '.join(MEASURES)})")


def _check_estimator(ds: xr.Dataset, name: str, role: str) -> str:
    names = [str(e) for e in ds["estimator"].values]
    if name not in names:
        raise ValueError(f"{role}: no estimator {name!r} in the results (estimators: {', '.join(names)})")
    return name


def summarise(ds: xr.Dataset, alpha: float | None = None, *, alphas: Iterable[float] = DEFAULT_ALPHAS,
              reference: str | None = None, measures: Iterable[str] | None = None) -> xr.Dataset:
    """Measures over (grid..., estimator, term, measure) with variables ``value``, ``mcse``, ``n``.

    ``alpha``: threshold of ``rejection`` (default: the study's, ``ds.attrs["alpha"]``).
    ``alphas``: further thresholds, reported as ``rejection_<alpha>`` and ``rejection_<alpha>_all``.
    ``reference``: the estimator ``relprec`` compares with (default: the first).
    ``measures``: a subset of the measures to compute (default: all, see :func:`measure_names`).

    Works on lazily opened (dask-backed) datasets; the result is small and in memory.
    """
    alpha = float(ds.attrs.get("alpha", 0.05) if alpha is None else alpha)
    alphas = tuple(float(a) for a in alphas)
    reference = _check_estimator(ds, str(ds["estimator"].values[0]) if reference is None else reference, "reference")
    names = measure_names(alphas) if measures is None else tuple(measures)
    order = [*grid_dims(ds), "estimator", "term"]
    with quiet_arithmetic():
        inputs = for_reduction(ds)
        rep = Replicates.from_dataset(inputs)
        out = with_means_first(lambda: {name: compute_measure(rep, name, alpha, reference) for name in names})
        out = {name: Measure(*one_pass(*measure)) for name, measure in out.items()}
        measure_coord = xr.DataArray(list(out), dims="measure", name="measure")

        def stacked(k: int) -> xr.DataArray:
            parts = [out[m][k].astype(float).broadcast_like(out[names[0]][0]).transpose(*order) for m in out]
            return xr.concat(parts, dim=measure_coord, coords="minimal", compat="override", join="override")

        result = xr.Dataset({name: stacked(k) for k, name in enumerate(("value", "mcse", "n"))})
        # A term an estimator never reports (the truth's marginal estimand, a predictor left out
        # of its formula) has no measures, rather than a failure rate of 1; an estimator whose
        # every fit failed keeps its rows, which say so.
        finite = np.isfinite(inputs["estimate"]).any("rep")
        reported = finite | ~finite.any("term")
        result, = one_pass(xr.merge([result, reported.rename("reported")]))
    keep = result["reported"]
    result = result.drop_vars("reported")
    result["value"] = result["value"].where(keep)
    result["mcse"] = result["mcse"].where(keep)
    result["n"] = result["n"].where(keep, 0).astype(np.int64)
    result.attrs.update(alpha=alpha, alphas=" ".join(alpha_label(a) for a in alphas), reference=reference)
    return result.transpose(*order, "measure")


def to_tidy(summary: xr.Dataset) -> pd.DataFrame:
    """Long table: grid factors..., estimator, term, measure, value, mcse, n."""
    frame = summary.to_dataframe().reset_index()
    dims = [d for d in summary["value"].dims]
    return frame[[*dims, "value", "mcse", "n"]]
