"""Paired comparisons of two estimators on the same replicates.

Every estimator of a study is fitted to the same simulated data sets, so two estimators'
measures are correlated: the Monte Carlo SE of their *difference* is usually far smaller than
sqrt(mcse_a^2 + mcse_b^2). :func:`compare` returns the difference with its paired MCSE.

Method: the delta method, written with per-replicate influence values. Each measure T is a
smooth function of means over replicates, so T - E[T] ~ (1/N) sum_i psi_i over the N replicates
of a cell, with psi_i the influence of replicate i (0 for a replicate the measure does not use;
each measure's psi is its ``influence`` in :mod:`analysis.measures`, the formulas are listed in
:mod:`analysis.formulas`). For the difference D = T_a - T_b on the same replicates,

    Var(D) ~ sum_i (psi_a,i - psi_b,i)^2 / (N (N - 1)),

which carries the covariance of a and b through the pairing of psi_a,i with psi_b,i.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.measures import lookup
from analysis.reduction import IN_THIS_THREAD, for_reduction, quiet_arithmetic, with_means_first
from analysis.replicates import Replicates, require_estimator
from analysis.schema import grid_dims

METHOD = "delta method (influence values per replicate)"


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
    (:func:`~analysis.reduction.with_means_first`), then the sums in one pass.
    """
    alpha = float(ds.attrs.get("alpha", 0.05) if alpha is None else alpha)
    a = require_estimator(ds, a, "a")
    b = require_estimator(ds, b, "b")
    reference = require_estimator(ds, str(ds["estimator"].values[0]) if reference is None else reference,
                                  "reference")
    chosen = lookup(measure, alpha)
    names = list(dict.fromkeys([a, b, reference] if measure == "relprec" else [a, b]))
    with quiet_arithmetic():
        rep = Replicates.from_dataset(for_reduction(ds.sel(estimator=names)), reference)
        total = rep.valid.sizes["rep"]
        denominator = total * (total - 1)

        def build() -> xr.Dataset:
            measured = chosen.value(rep)
            psi = chosen.influence(rep).fillna(0.0)
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

        # Dataset.compute rather than reduction.one_pass: dask.compute on this Dataset fails with
        # "Missing dependency" (dask 2026.x) although every variable computes on its own.
        result = with_means_first(build).compute(scheduler=IN_THIS_THREAD)
    for name in ("n_a", "n_b"):
        result[name] = result[name].astype(np.int64)
    result.attrs.update(a=a, b=b, measure=measure, alpha=alpha, reference=reference, method=METHOD)
    return result.transpose(*grid_dims(ds), "term")
