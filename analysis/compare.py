"""Paired comparisons of two estimators on the same replicates.

Every estimator of a study is fitted to the same simulated data sets, so two estimators'
measures are correlated: the Monte Carlo SE of their *difference* is usually far smaller than
sqrt(mcse_a^2 + mcse_b^2). :func:`compare` returns the difference with its paired MCSE.

Method: the delta method, written with per-replicate influence values. Each measure T is a
smooth function of means over replicates, so T - E[T] ~ (1/N) sum_i psi_i over the N replicates
of a cell, with psi_i the influence of replicate i (0 for a replicate the measure does not use).
For the difference D = T_a - T_b on the same replicates,

    Var(D) ~ sum_i (psi_a,i - psi_b,i)^2 / (N (N - 1)),

which carries the covariance of a and b through the pairing of psi_a,i with psi_b,i. With
v_i = 1 when replicate i counts for the measure (n = sum v_i), f_i its per-replicate quantity and
m2 = sum v_i (t_i - t_bar)^2 / n:

    mean-type (bias, mse, ci_width, and all      psi_i = (N/n) v_i (f_i - T)
      proportions: coverage, rejection..., failure_rate)
    relbias                                      100 psi_bias / theta
    empse                                        psi_i = (N/n) v_i ((t_i - t_bar)^2 - m2) / (2 empse)
    rmse                                         psi_mse / (2 rmse)
    modelse                                      psi_i = (N/n) v_i (s_i^2 - modelse^2) / (2 modelse)
    relerror_modelse (R = modelse/empse)         100 R (psi_modelse/modelse - psi_empse/empse)
    relprec (Q = (empse_ref/empse)^2)            100 Q (2 psi_empse_ref/empse_ref - 2 psi_empse/empse)

For one estimator alone these give rsimsum's MCSEs up to factors n/(n-1), except that the
influence version of empse's and modelse's MCSE does not assume normal estimates. Bias-
eliminated coverage treats t_bar as fixed, as its binomial MCSE does.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.measures import (Measure, Replicates, _check_estimator, compute_measure, for_reduction,
                               measure_names, parse_rejection, quiet_arithmetic, rep_mean,
                               with_means_first)
from analysis.schema import grid_dims

METHOD = "delta method (influence values per replicate)"


def _scaled(values: xr.DataArray, usable: xr.DataArray, total: xr.DataArray) -> xr.DataArray:
    """(N/n) v_i values_i with zeros where a replicate does not count."""
    n = usable.sum("rep")
    return (total / n) * values.where(usable, 0.0)


def influence_mean(x: xr.DataArray) -> xr.DataArray:
    """Influence of each replicate on a mean over the replicates where ``x`` is finite."""
    usable = np.isfinite(x)
    return _scaled(x - rep_mean(x), usable, xr.ones_like(x, dtype=bool).sum("rep"))


def influence_proportion(events: xr.DataArray, usable: xr.DataArray) -> xr.DataArray:
    """Influence of each replicate on a share of events among ``usable`` replicates."""
    share = (events & usable).sum("rep") / usable.sum("rep")
    return _scaled(events.astype(float) - share, usable, xr.ones_like(usable, dtype=bool).sum("rep"))


def influence_empse(estimate: xr.DataArray) -> xr.DataArray:
    """Influence on empse: (N/n) v_i ((t_i - t_bar)^2 - m2) / (2 empse)."""
    deviation2 = (estimate - rep_mean(estimate)) ** 2
    return influence_mean(deviation2) / (2 * np.sqrt(rep_mean(deviation2)))


def influence_modelse(std_error: xr.DataArray) -> xr.DataArray:
    """Influence on modelse = sqrt(mean s_i^2): psi(mean s^2) / (2 modelse)."""
    variance = std_error**2
    return influence_mean(variance) / (2 * np.sqrt(rep_mean(variance)))


def influence(rep: Replicates, measure: str, alpha: float, reference: str | None = None) -> xr.DataArray:
    """Per-replicate influence values psi_i of ``measure``, over (grid..., estimator, rep, term)."""
    if measure == "bias":
        return influence_mean(rep.estimate)
    if measure == "relbias":
        theta = rep.truth.where(rep.truth != 0)
        return 100 * influence_mean(rep.estimate) / theta
    if measure == "mse":
        return influence_mean((rep.estimate - rep.truth) ** 2)
    if measure == "rmse":
        error2 = (rep.estimate - rep.truth) ** 2
        return influence_mean(error2) / (2 * np.sqrt(rep_mean(error2)))
    if measure == "empse":
        return influence_empse(rep.estimate)
    if measure == "modelse":
        return influence_modelse(rep.std_error)
    if measure == "relerror_modelse":
        empse = np.sqrt(rep_mean((rep.estimate - rep_mean(rep.estimate)) ** 2))
        modelse = np.sqrt(rep_mean(rep.std_error**2))
        ratio = modelse / empse
        return 100 * ratio * (influence_modelse(rep.std_error).fillna(0) / modelse
                              - influence_empse(rep.estimate).fillna(0) / empse)
    if measure == "relprec":
        if reference is None:
            raise ValueError("relprec needs a reference estimator")
        empse = np.sqrt(rep_mean((rep.estimate - rep_mean(rep.estimate)) ** 2))
        psi = influence_empse(rep.estimate).fillna(0)
        psi_ref = psi.sel(estimator=reference, drop=True)
        empse_ref = empse.sel(estimator=reference, drop=True)
        ratio2 = (empse_ref / empse) ** 2
        return 100 * ratio2 * (2 * psi_ref / empse_ref - 2 * psi / empse)
    if measure == "coverage":
        return influence_proportion((rep.lower <= rep.truth) & (rep.truth <= rep.upper), rep.ci_usable)
    if measure == "coverage_all":
        covered = (rep.lower <= rep.truth) & (rep.truth <= rep.upper) & rep.ci_usable
        return influence_proportion(covered, xr.ones_like(rep.ci_usable, dtype=bool))
    if measure == "becoverage":
        center = rep_mean(rep.estimate)
        return influence_proportion((rep.lower <= center) & (center <= rep.upper), rep.ci_usable)
    if measure == "ci_width":
        return influence_mean(rep.upper - rep.lower)
    if measure == "failure_rate":
        return influence_proportion(~rep.valid, xr.ones_like(rep.valid, dtype=bool))
    parsed = parse_rejection(measure)
    if parsed is not None:
        threshold, all_replicates = parsed
        threshold = alpha if threshold is None else threshold
        if all_replicates:
            rejected = (rep.p_value < threshold) & rep.p_usable
            return influence_proportion(rejected, xr.ones_like(rep.p_usable, dtype=bool))
        return influence_proportion(rep.p_value < threshold, rep.p_usable)
    raise ValueError(f"unknown measure {measure!r} (known: {', '.join(measure_names())})")


def compare(ds: xr.Dataset, a: str, b: str, measure: str, *, alpha: float | None = None,
            reference: str | None = None) -> xr.Dataset:
    """Difference ``measure(a) - measure(b)`` with its paired Monte Carlo SE, per grid cell and term.

    Returns a small in-memory Dataset over (grid..., term) with variables ``value`` (the
    difference, equal to the difference of :func:`~analysis.measures.summarise`'s values),
    ``mcse`` (paired, by the delta method over replicates: see the module docstring),
    ``mcse_unpaired`` (sqrt(mcse_a^2 + mcse_b^2) from the same influence values, what the
    pairing saves), and ``n_a``, ``n_b`` (replicates each measure used). ``alpha`` and
    ``reference`` mean what they mean in ``summarise``. Works on lazily opened datasets: as in
    ``summarise``, every mean over replicates the influence values centre on is computed first
    (:func:`~analysis.measures.with_means_first`), then the sums in one pass.
    """
    alpha = float(ds.attrs.get("alpha", 0.05) if alpha is None else alpha)
    a = _check_estimator(ds, a, "a")
    b = _check_estimator(ds, b, "b")
    reference = _check_estimator(ds, str(ds["estimator"].values[0]) if reference is None else reference,
                                 "reference")
    names = list(dict.fromkeys([a, b, reference] if measure == "relprec" else [a, b]))
    with quiet_arithmetic():
        rep = Replicates.from_dataset(for_reduction(ds.sel(estimator=names)))
        total = rep.valid.sizes["rep"]
        denominator = total * (total - 1)

        def build() -> xr.Dataset:
            measured: Measure = compute_measure(rep, measure, alpha, reference)
            psi = influence(rep, measure, alpha, reference).fillna(0.0)
            psi_a, psi_b = psi.sel(estimator=a, drop=True), psi.sel(estimator=b, drop=True)
            value = measured.value.sel(estimator=a, drop=True) - measured.value.sel(estimator=b, drop=True)
            return xr.Dataset({
                "value": value,
                "mcse": np.sqrt(((psi_a - psi_b) ** 2).sum("rep") / denominator).where(value.notnull()),
                "mcse_unpaired": np.sqrt(((psi_a**2).sum("rep") + (psi_b**2).sum("rep")) / denominator).where(
                    value.notnull()),
                "n_a": measured.n.sel(estimator=a, drop=True),
                "n_b": measured.n.sel(estimator=b, drop=True),
            })

        # Dataset.compute rather than measures.one_pass: dask.compute on this Dataset fails with
        # "Missing dependency" (dask 2026.x) although every variable computes on its own.
        result = with_means_first(build).compute(scheduler="synchronous")
    for name in ("n_a", "n_b"):
        result[name] = result[name].astype(np.int64)
    result.attrs.update(a=a, b=b, measure=measure, alpha=alpha, reference=reference, method=METHOD)
    return result.transpose(*grid_dims(ds), "term")
