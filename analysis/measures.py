"""The performance measures, each declared once, and :func:`summarise`, which computes them.

A :class:`Measure` holds everything the package knows about one measure: its estimate with its
Monte Carlo SE (a formula of :mod:`analysis.formulas`: Morris, White & Crowther 2019, Stat Med
38:2074, Table 6, as rsimsum computes them), its influence function (the paired MCSE of
:func:`analysis.compare`), its axis label and nominal value (figures, report) and whether it is
a rate. :data:`REGISTRY` holds the measures with a fixed name; the rejection rates form a
family with one member per threshold (:func:`rejection_measure`): ``rejection`` at the study's
alpha, ``rejection_<a>`` at a (``alphas`` of :func:`summarise`), and ``rejection_all`` /
``rejection_<a>_all`` with a failed fit counted as a non-rejection. :func:`lookup` finds a
measure by name; :func:`measure_names` lists the ones :func:`summarise` reports, in order.

Which replicates each measure uses is :mod:`analysis.replicates`; how a lazily opened store is
reduced, every mean over replicates first, is :mod:`analysis.reduction`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import xarray as xr

from analysis.formulas import (MeasureValue, bias, bias_eliminated_coverage, coverage, coverage_counting_failures,
                               empirical_se, every_replicate, failure_rate, influence_empse, influence_mean,
                               influence_proportion, influence_relative_error_model_se,
                               influence_relative_precision, influence_root_mean, mean_ci_width,
                               mean_squared_error, model_se, nonzero, rejection, rejection_counting_failures,
                               relative_bias, relative_error_model_se, relative_precision, root_mean_squared_error,
                               within)
from analysis.reduction import for_reduction, one_pass, quiet_arithmetic, rep_mean, with_means_first
from analysis.replicates import Replicates, require_estimator
from analysis.schema import grid_dims

DEFAULT_ALPHAS = (0.01, 0.05, 0.10)


@dataclass(frozen=True)
class Measure:
    """One performance measure.

    ``value(rep)``: the estimate, its Monte Carlo SE and the replicates it used, over
    (grid..., estimator, term), from :class:`~analysis.replicates.Replicates`.
    ``influence(rep)``: the influence value psi_i of each replicate, over
    (grid..., estimator, rep, term); sqrt(sum_i (psi_a,i - psi_b,i)^2 / (N (N-1))) is the
    MCSE of the difference of two estimators' values (:mod:`analysis.compare`).
    ``label``: axis label, with the unit.
    ``nominal(alpha)``: the value of a well-behaved estimator in a study at ``alpha`` (0 for a
    bias, 1 - alpha for coverage); None where there is none (an SE is on the study's own scale).
    ``rate``: a share of replicates, in [0, 1], with a binomial MCSE.
    """

    name: str
    label: str
    value: Callable[[Replicates], MeasureValue]
    influence: Callable[[Replicates], xr.DataArray]
    nominal: Callable[[float], float] | None = None
    rate: bool = False

    def nominal_at(self, alpha: float) -> float | None:
        """The nominal value in a study at ``alpha``, or None."""
        return None if self.nominal is None else self.nominal(alpha)


def none_expected(alpha: float) -> float:
    """Nominal of a bias, a relative error or a failure rate: 0."""
    return 0.0


def confidence_level(alpha: float) -> float:
    """Nominal coverage: 1 - alpha."""
    return 1 - alpha


REGISTRY: dict[str, Measure] = {measure.name: measure for measure in (
    Measure("bias", "Bias (units of the estimate)",
            value=lambda r: bias(r.estimate, r.truth),
            influence=lambda r: influence_mean(r.estimate),
            nominal=none_expected),
    Measure("relbias", "Relative bias (%)",
            value=lambda r: relative_bias(r.estimate, r.truth),
            influence=lambda r: 100 * influence_mean(r.estimate) / nonzero(r.truth),
            nominal=none_expected),
    Measure("empse", "Empirical SE (units of the estimate)",
            value=lambda r: empirical_se(r.estimate),
            influence=lambda r: influence_empse(r.estimate)),
    Measure("mse", "Mean squared error (squared units)",
            value=lambda r: mean_squared_error(r.estimate, r.truth),
            influence=lambda r: influence_mean((r.estimate - r.truth) ** 2)),
    Measure("rmse", "Root mean squared error (units of the estimate)",
            value=lambda r: root_mean_squared_error(r.estimate, r.truth),
            influence=lambda r: influence_root_mean((r.estimate - r.truth) ** 2)),
    Measure("modelse", "Model SE (units of the estimate)",
            value=lambda r: model_se(r.std_error),
            influence=lambda r: influence_root_mean(r.std_error**2)),
    Measure("relerror_modelse", "Relative error of the model SE (%)",
            value=lambda r: relative_error_model_se(r.estimate, r.std_error),
            influence=lambda r: influence_relative_error_model_se(r.estimate, r.std_error),
            nominal=none_expected),
    Measure("relprec", "Precision relative to the reference (%)",
            value=lambda r: relative_precision(r.estimate, r.estimate.sel(estimator=r.reference_name(), drop=True)),
            influence=lambda r: influence_relative_precision(r.estimate, r.reference_name()),
            nominal=none_expected),
    Measure("coverage", "Coverage (share of intervals)",
            value=lambda r: coverage(r.lower, r.upper, r.truth, r.ci_usable),
            influence=lambda r: influence_proportion(within(r.lower, r.upper, r.truth), r.ci_usable),
            nominal=confidence_level, rate=True),
    Measure("becoverage", "Bias-eliminated coverage (share)",
            value=lambda r: bias_eliminated_coverage(r.lower, r.upper, r.estimate, r.ci_usable),
            influence=lambda r: influence_proportion(within(r.lower, r.upper, rep_mean(r.estimate)), r.ci_usable),
            nominal=confidence_level, rate=True),
    Measure("ci_width", "Mean interval width (units of the estimate)",
            value=lambda r: mean_ci_width(r.lower, r.upper),
            influence=lambda r: influence_mean(r.upper - r.lower)),
    Measure("coverage_all", "Coverage, failures as misses (share)",
            value=lambda r: coverage_counting_failures(r.lower, r.upper, r.truth, r.ci_usable),
            influence=lambda r: influence_proportion(within(r.lower, r.upper, r.truth) & r.ci_usable,
                                                     every_replicate(r.ci_usable)),
            nominal=confidence_level, rate=True),
    Measure("failure_rate", "Failure rate (share of replicates)",
            value=lambda r: failure_rate(r.valid),
            influence=lambda r: influence_proportion(~r.valid, every_replicate(r.valid)),
            nominal=none_expected, rate=True),
)}


# ---------------------------------------------------------------------------------------------
# The rejection rates: one measure per threshold


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


def rejection_measure(name: str, alpha: float) -> Measure:
    """The rejection rate called ``name`` (a name :func:`parse_rejection` reads) in a study at
    ``alpha``, the threshold of ``rejection`` and ``rejection_all``: mean(p_i < a) over the
    valid replicates with a p-value, or over all N with a failure as a non-rejection (``_all``).
    Its nominal value is a, the Type I error where theta = 0."""
    parsed = parse_rejection(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not the name of a rejection rate")
    threshold, all_replicates = parsed
    threshold = alpha if threshold is None else threshold
    shown = name[len("rejection"):].removesuffix("_all").lstrip("_") or f"{alpha:g}"

    def nominal(study_alpha: float) -> float:
        return threshold

    if all_replicates:
        return Measure(name, f"Rejection rate, p < {shown} (share, failures as non-rejections)",
                       value=lambda r: rejection_counting_failures(r.p_value, threshold, r.p_usable),
                       influence=lambda r: influence_proportion((r.p_value < threshold) & r.p_usable,
                                                                every_replicate(r.p_usable)),
                       nominal=nominal, rate=True)
    return Measure(name, f"Rejection rate, p < {shown} (share)",
                   value=lambda r: rejection(r.p_value, threshold, r.p_usable),
                   influence=lambda r: influence_proportion(r.p_value < threshold, r.p_usable),
                   nominal=nominal, rate=True)


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


def lookup(name: str, alpha: float) -> Measure:
    """The measure called ``name`` in a study at ``alpha``: one of :data:`REGISTRY` or a
    rejection rate. ValueError for an unknown name."""
    if name in REGISTRY:
        return REGISTRY[name]
    if parse_rejection(name) is not None:
        return rejection_measure(name, alpha)
    raise ValueError(f"unknown measure {name!r} (known: {', '.join(MEASURES)})")


# ---------------------------------------------------------------------------------------------
# Summaries


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
    reference = require_estimator(ds, str(ds["estimator"].values[0]) if reference is None else reference, "reference")
    names = measure_names(alphas) if measures is None else tuple(measures)
    order = [*grid_dims(ds), "estimator", "term"]
    with quiet_arithmetic():
        inputs = for_reduction(ds)
        rep = Replicates.from_dataset(inputs, reference)
        chosen = [lookup(name, alpha) for name in names]
        out = with_means_first(lambda: {measure.name: measure.value(rep) for measure in chosen})
        out = {name: MeasureValue(*one_pass(*measure)) for name, measure in out.items()}
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
