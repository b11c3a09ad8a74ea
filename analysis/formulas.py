"""The formulas of the performance measures: one function per estimate with its Monte Carlo SE,
and one per influence function (for paired comparisons, :mod:`analysis.compare`).

Estimates and MCSEs follow Morris, White & Crowther (2019, Stat Med 38:2074, Table 6) as
rsimsum computes them (Gasparini 2018, JOSS 3:739). With n replicates that count, estimates
t_i, their mean t_bar, the truth theta, model SEs s_i, interval limits lo_i, hi_i and p-values
p_i:

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
    coverage_all      coverage with every replicate counted, a failed fit as a non-cover (n = N)
    rejection_all     rejection with a failed fit as a non-rejection (n = N)
    failure_rate      share of the N replicates not valid  sqrt(F (1-F) / N)

``relprec`` compares each estimator's empirical SE with a reference estimator's (rsimsum's
``relprec``); rho is the correlation between the two estimators' estimates over the replicates
where both are valid, and n is the number of those replicates. ``becoverage`` is rsimsum's
bias-eliminated coverage: coverage of the mean estimate t_bar instead of theta, which separates
intervals that are too narrow from intervals centred in the wrong place. Intervals and p-values
are each estimator's own (its reference distribution and its alpha).

Influence functions. Each measure T is a smooth function of means over replicates, so
T - E[T] ~ (1/N) sum_i psi_i over the N replicates of a cell, with psi_i the influence of
replicate i (0 for a replicate the measure does not use). With v_i = 1 when replicate i counts
for the measure (n = sum v_i), f_i its per-replicate quantity and
m2 = sum v_i (t_i - t_bar)^2 / n:

    mean-type (bias, mse, ci_width, and all      psi_i = (N/n) v_i (f_i - T)
      proportions: coverage, rejection..., failure_rate)
    relbias                                      100 psi_bias / theta
    empse                                        psi_i = (N/n) v_i ((t_i - t_bar)^2 - m2) / (2 empse)
    rmse                                         psi_mse / (2 rmse)
    modelse                                      psi_i = (N/n) v_i (s_i^2 - modelse^2) / (2 modelse)
    relerror_modelse (R = modelse/empse)         100 R (psi_modelse/modelse - psi_empse/empse)
    relprec (Q = (empse_ref/empse)^2)            100 Q (2 psi_empse_ref/empse_ref - 2 psi_empse/empse)

For one estimator alone sqrt(sum psi_i^2 / (N (N-1))) gives rsimsum's MCSEs up to factors
n/(n-1), except that the influence version of empse's MCSE (and so of relerror_modelse's and
relprec's) does not assume normal estimates. Bias-eliminated coverage treats t_bar as fixed, as
its binomial MCSE does. The influence functions here use the empirical SE with divisor n
(sqrt(m2)), the estimate of the delta method.

Every argument is NaN where a replicate does not count; every mean over replicates goes through
:func:`analysis.reduction.rep_mean`, so that a lazily opened store is read block by block.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from analysis.reduction import rep_mean, rep_sum


class MeasureValue(NamedTuple):
    """A performance measure over (grid..., estimator, term): estimate, Monte Carlo SE and the
    number of replicates it used."""

    value: xr.DataArray
    mcse: xr.DataArray
    n: xr.DataArray


def within(lower: xr.DataArray, upper: xr.DataArray, point: xr.DataArray) -> xr.DataArray:
    """lo_i <= point <= hi_i (False where an interval limit is NaN)."""
    return (lower <= point) & (point <= upper)


def nonzero(truth: xr.DataArray) -> xr.DataArray:
    """theta, NaN where it is 0 (a relative measure is undefined there)."""
    return truth.where(truth != 0)


def every_replicate(usable: xr.DataArray) -> xr.DataArray:
    """All N replicates, for the measures that count failures as events (n = N)."""
    return xr.ones_like(usable, dtype=bool)


# ---------------------------------------------------------------------------------------------
# Estimates with their Monte Carlo SEs


def mean_with_mcse(x: xr.DataArray) -> MeasureValue:
    """Mean over replicates with MCSE sqrt(sum (x_i - x_bar)^2 / (n (n-1))) (the MCSE of bias
    and of mse in Morris et al. 2019, Table 6: the SE of a sample mean)."""
    n = x.count("rep")
    mean = rep_mean(x)
    return MeasureValue(mean, np.sqrt(rep_sum((x - mean) ** 2) / (n * (n - 1))), n)


def proportion(events: xr.DataArray, usable: xr.DataArray) -> MeasureValue:
    """Share of ``usable`` replicates with an event: P = k/n, MCSE sqrt(P (1-P) / n)
    (coverage and power in Morris et al. 2019, Table 6)."""
    n = usable.sum("rep")
    share = rep_sum(events & usable) / n
    return MeasureValue(share, np.sqrt(share * (1 - share) / n), n)


def bias(estimate: xr.DataArray, truth: xr.DataArray) -> MeasureValue:
    """bias = mean(t_i) - theta, MCSE sqrt(sum (t_i - t_bar)^2 / (n (n-1))) (Morris et al. 2019)."""
    mean = mean_with_mcse(estimate)
    return MeasureValue(mean.value - truth, mean.mcse, mean.n)


def relative_bias(estimate: xr.DataArray, truth: xr.DataArray) -> MeasureValue:
    """Relative bias in percent: 100 (t_bar - theta) / theta, MCSE 100 mcse(bias) / |theta|
    (rsimsum's ``rbias`` times 100; undefined, NaN, where theta = 0)."""
    theta = nonzero(truth)
    b = bias(estimate, truth)
    return MeasureValue(100 * b.value / theta, 100 * b.mcse / np.abs(theta), b.n)


def empirical_se(estimate: xr.DataArray) -> MeasureValue:
    """empse = sqrt(sum (t_i - t_bar)^2 / (n-1)), MCSE empse / sqrt(2 (n-1)) (Morris et al. 2019)."""
    n = estimate.count("rep")
    empse = np.sqrt(rep_sum((estimate - rep_mean(estimate)) ** 2) / (n - 1))
    return MeasureValue(empse, empse / np.sqrt(2 * (n - 1)), n)


def mean_squared_error(estimate: xr.DataArray, truth: xr.DataArray) -> MeasureValue:
    """mse = mean((t_i - theta)^2), MCSE sqrt(sum ((t_i - theta)^2 - mse)^2 / (n (n-1)))
    (Morris et al. 2019)."""
    return mean_with_mcse((estimate - truth) ** 2)


def root_mean_squared_error(estimate: xr.DataArray, truth: xr.DataArray) -> MeasureValue:
    """rmse = sqrt(mse), MCSE mcse(mse) / (2 rmse) (delta method)."""
    mse = mean_squared_error(estimate, truth)
    rmse = np.sqrt(mse.value)
    return MeasureValue(rmse, mse.mcse / (2 * rmse), mse.n)


def model_se(std_error: xr.DataArray) -> MeasureValue:
    """modelse = sqrt(mean(s_i^2)), MCSE sqrt(var(s_i^2) / (4 n modelse^2)) (Morris et al. 2019;
    rsimsum's default root mean squared model SE)."""
    variance = std_error**2
    n = variance.count("rep")
    modelse = np.sqrt(variance.mean("rep"))
    return MeasureValue(modelse, np.sqrt(variance.var("rep", ddof=1) / (4 * n * modelse**2)), n)


def relative_error_model_se(estimate: xr.DataArray, std_error: xr.DataArray) -> MeasureValue:
    """Relative error of the model SE in percent: 100 (modelse/empse - 1), MCSE
    100 (modelse/empse) sqrt(var(s_i^2)/(4 n modelse^4) + 1/(2(n-1))) (Morris et al. 2019)."""
    empse = empirical_se(estimate)
    variance = std_error**2
    n_se = variance.count("rep")
    modelse = np.sqrt(variance.mean("rep"))
    ratio = modelse / empse.value
    mcse = 100 * ratio * np.sqrt(variance.var("rep", ddof=1) / (4 * n_se * modelse**4) + 1 / (2 * (n_se - 1)))
    return MeasureValue(100 * (ratio - 1), mcse, np.minimum(empse.n, n_se))


def relative_precision(estimate: xr.DataArray, reference: xr.DataArray) -> MeasureValue:
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
    return MeasureValue(100 * (ratio2 - 1), 200 * ratio2 * np.sqrt(one_minus_rho2 / (n - 1)), n)


def correlation(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Pearson's correlation over replicates of ``a`` and ``b`` (NaN in the same places):
    sum (a_i - a_bar)(b_i - b_bar) / sqrt(sum (a_i - a_bar)^2 sum (b_i - b_bar)^2)."""
    da, db = a - rep_mean(a), b - rep_mean(b)
    return rep_sum(da * db) / np.sqrt(rep_sum(da**2) * rep_sum(db**2))


def coverage(lower: xr.DataArray, upper: xr.DataArray, truth: xr.DataArray, usable: xr.DataArray) -> MeasureValue:
    """coverage = mean(lo_i <= theta <= hi_i), MCSE sqrt(C (1-C) / n) (Morris et al. 2019)."""
    return proportion(within(lower, upper, truth), usable)


def bias_eliminated_coverage(lower: xr.DataArray, upper: xr.DataArray, estimate: xr.DataArray,
                             usable: xr.DataArray) -> MeasureValue:
    """Bias-eliminated coverage: mean(lo_i <= t_bar <= hi_i) with t_bar the mean estimate over
    valid replicates, MCSE sqrt(B (1-B) / n) (rsimsum's ``becover``; Morris et al. 2019, sec. 5.2)."""
    return proportion(within(lower, upper, rep_mean(estimate)), usable)


def mean_ci_width(lower: xr.DataArray, upper: xr.DataArray) -> MeasureValue:
    """Mean width of the intervals, mean(hi_i - lo_i), MCSE sd(hi_i - lo_i) / sqrt(n)."""
    return mean_with_mcse(upper - lower)


def rejection(p_value: xr.DataArray, alpha: float, usable: xr.DataArray) -> MeasureValue:
    """Rejection rate mean(p_i < alpha), MCSE sqrt(P (1-P) / n): the Type I error where
    theta = 0, the power elsewhere (Morris et al. 2019)."""
    return proportion(p_value < alpha, usable)


def coverage_counting_failures(lower: xr.DataArray, upper: xr.DataArray, truth: xr.DataArray,
                               usable: xr.DataArray) -> MeasureValue:
    """Coverage over all N replicates, a replicate without a usable interval (a failed fit)
    counted as a non-cover: C_all = #{usable and lo_i <= theta <= hi_i} / N, MCSE sqrt(C_all (1-C_all) / N)."""
    return proportion(within(lower, upper, truth) & usable, every_replicate(usable))


def rejection_counting_failures(p_value: xr.DataArray, alpha: float, usable: xr.DataArray) -> MeasureValue:
    """Rejection rate over all N replicates, a replicate without a usable p-value (a failed fit)
    counted as a non-rejection: P_all = #{usable and p_i < alpha} / N, MCSE sqrt(P_all (1-P_all) / N)."""
    return proportion((p_value < alpha) & usable, every_replicate(usable))


def failure_rate(valid: xr.DataArray) -> MeasureValue:
    """Share of all N replicates that are not valid, MCSE sqrt(F (1-F) / N)."""
    return proportion(~valid, every_replicate(valid))


# ---------------------------------------------------------------------------------------------
# Influence functions (see the module docstring): psi_i over (grid..., estimator, rep, term)


def _scaled(values: xr.DataArray, usable: xr.DataArray, total: xr.DataArray) -> xr.DataArray:
    """(N/n) v_i values_i with zeros where a replicate does not count."""
    n = usable.sum("rep")
    return (total / n) * values.where(usable, 0.0)


def influence_mean(x: xr.DataArray) -> xr.DataArray:
    """Influence on a mean over the replicates where ``x`` is finite: (N/n) v_i (x_i - x_bar)."""
    usable = np.isfinite(x)
    return _scaled(x - rep_mean(x), usable, every_replicate(x).sum("rep"))


def influence_proportion(events: xr.DataArray, usable: xr.DataArray) -> xr.DataArray:
    """Influence on a share of events among ``usable`` replicates: (N/n) v_i (e_i - P)."""
    share = (events & usable).sum("rep") / usable.sum("rep")
    return _scaled(events.astype(float) - share, usable, every_replicate(usable).sum("rep"))


def influence_root_mean(x: xr.DataArray) -> xr.DataArray:
    """Influence on sqrt(mean(x_i)): psi(mean x) / (2 sqrt(mean x)) (chain rule). For
    x_i = s_i^2 that of modelse; for x_i = (t_i - theta)^2 that of rmse; for
    x_i = (t_i - t_bar)^2 that of empse."""
    return influence_mean(x) / (2 * np.sqrt(rep_mean(x)))


def influence_empse(estimate: xr.DataArray) -> xr.DataArray:
    """Influence on empse: (N/n) v_i ((t_i - t_bar)^2 - m2) / (2 sqrt(m2))."""
    return influence_root_mean((estimate - rep_mean(estimate)) ** 2)


def root_mean_squared_deviation(estimate: xr.DataArray) -> xr.DataArray:
    """sqrt(m2) = sqrt(mean((t_i - t_bar)^2)): the empirical SE with divisor n."""
    return np.sqrt(rep_mean((estimate - rep_mean(estimate)) ** 2))


def influence_relative_error_model_se(estimate: xr.DataArray, std_error: xr.DataArray) -> xr.DataArray:
    """Influence on 100 (R - 1), R = modelse / empse: 100 R (psi_modelse/modelse - psi_empse/empse)."""
    empse = root_mean_squared_deviation(estimate)
    modelse = np.sqrt(rep_mean(std_error**2))
    ratio = modelse / empse
    return 100 * ratio * (influence_root_mean(std_error**2).fillna(0) / modelse
                          - influence_empse(estimate).fillna(0) / empse)


def influence_relative_precision(estimate: xr.DataArray, reference: str) -> xr.DataArray:
    """Influence on 100 (Q - 1), Q = (empse_ref / empse)^2:
    100 Q (2 psi_empse_ref/empse_ref - 2 psi_empse/empse), with ``reference`` the name of the
    reference estimator along ``estimator``."""
    empse = root_mean_squared_deviation(estimate)
    psi = influence_empse(estimate).fillna(0)
    psi_ref = psi.sel(estimator=reference, drop=True)
    empse_ref = empse.sel(estimator=reference, drop=True)
    ratio2 = (empse_ref / empse) ** 2
    return 100 * ratio2 * (2 * psi_ref / empse_ref - 2 * psi / empse)
