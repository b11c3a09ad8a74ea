"""The estimator conformance suite: small, separately named checks that every estimator must
pass, in the spirit of scikit-learn's ``check_estimator``.

``check_estimator(estimator, data)`` runs them all on one data frame and raises one
AssertionError naming every check that failed; otherwise it returns a :class:`CheckReport` of
the checks that passed and of those skipped, with the reason. ``CHECKS`` lists them, so that a
test can give each its own id::

    case = EstimatorCase(MyEstimator(), data, groups=("subject",))

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_my_estimator(check):
        check(case)

Each check takes an :class:`EstimatorCase` and raises AssertionError (or the exception that
escaped the estimator). A check that does not apply to the case (no replicates for the
``fit_batch`` check, no grouping column for the relabelling one, ...) raises
``unittest.SkipTest`` with the reason, which pytest reports as a skipped test and
:func:`run_checks` as a skipped check, never as a pass. What the checks assume of an estimator:

- The :class:`~estimators.base.Estimator` protocol: constructor parameters stored unchanged,
  ``get_params``/``clone``, ``fit(data, rng)`` returning a :class:`~estimators.result.FitResult`,
  ``fit_batch(frames, rngs)``.
- Randomness only from the ``rng`` passed to ``fit``. An estimator whose results change with
  that rng counts as resampling: results that depend on which cluster gets which draw (p-values,
  intervals) are then not compared across relabelled clusters. One that declares
  ``draws_from_rng = False`` (the runner then builds no generator for it) must give the same
  bits with ``rng=None``.
- Bad input raises :class:`~estimators.design.InputError` whose message names the column: a
  column the estimator reads is missing or has missing values, or a grouping column has a
  single cluster. A column whose removal (or collapse) changes nothing is one the estimator
  does not use, and passes.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import random
import unittest
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from estimators.base import Estimator, init_parameters
from estimators.design import InputError
from estimators.result import NUMERIC_COLUMNS, RESULT_COLUMNS, FitResult, Status

SEED = 20210415
OTHER_SEED = 253
# Rows in another order or clusters under other labels change sums only by rounding.
INVARIANCE_RTOL = 1e-7
# fit_batch must give the per-replicate numbers "to floating-point tolerance".
BATCH_RTOL = 1e-10
# On a large draw, every estimate lies within this many of its standard errors of the truth.
CONSISTENCY_SES = 4.5
# Parameters that, by this package's convention, name a column of cluster labels.
GROUPING_PARAMETERS = ("cluster", "groups", "group", "subject", "item")


@dataclasses.dataclass(frozen=True)
class EstimatorCase:
    """An estimator and the data the checks run it on.

    estimator : the estimator under test.
    data : a data frame it can fit.
    groups : columns holding cluster labels (subjects, items, ...), used by the relabelling and
        single-cluster checks; ``None`` takes the columns named by the estimator's parameters
        called like a grouping (GROUPING_PARAMETERS: ``cluster``, ``groups``, ``subject``, ...).
    replicates : frames sharing ``data``'s design (only the outcome differs), for the
        ``fit_batch`` check; empty skips it.
    large_data, truth : a large draw and the true values of its terms, for the consistency
        check; ``None`` skips it.
    tolerance : allowed |estimate - truth| on ``large_data`` for terms reported without a
        standard error (their consistency is not checked otherwise).
    """

    estimator: Estimator
    data: pd.DataFrame
    groups: tuple[str, ...] | None = None
    replicates: tuple[pd.DataFrame, ...] = ()
    large_data: pd.DataFrame | None = None
    truth: Mapping[str, float] | None = None
    tolerance: float | None = None

    def grouping_columns(self) -> tuple[str, ...]:
        if self.groups is not None:
            return tuple(self.groups)
        params = self.estimator.get_params()
        named = {params[p] for p in GROUPING_PARAMETERS if isinstance(params.get(p), str)}
        return tuple(c for c in self.data.columns if c in named)

    def fit(self, data: pd.DataFrame | None = None, seed: int = SEED) -> FitResult:
        """The estimator fitted to ``data`` (default: the case's) with a fresh rng from ``seed``."""
        return self.estimator.fit(self.data if data is None else data, np.random.default_rng(seed))


def _assert_same(a: FitResult, b: FitResult, what: str, rtol: float = 0.0, columns: Sequence[str] = NUMERIC_COLUMNS) -> None:
    """Bitwise equal (rtol 0), or equal to ``rtol`` relative to the column's scale: its largest
    magnitude (an interval bound near 0 carries the rounding of its estimate and SE, not its own)."""
    assert a.terms == b.terms, f"{what}: terms {a.terms} != {b.terms}"
    assert a.status == b.status, f"{what}: status {a.status.name} != {b.status.name}"
    for column in columns:
        x, y = getattr(a, column), getattr(b, column)
        if rtol == 0:
            same = np.array_equal(x, y, equal_nan=True)
        else:
            finite = np.abs(x[np.isfinite(x)])
            scale = float(finite.max()) if finite.size else 0.0
            same = np.allclose(x, y, rtol=rtol, atol=rtol * scale, equal_nan=True)
        assert same, f"{what}: {column} {x} != {y}"


def _resamples(case: EstimatorCase) -> bool:
    """True when the results depend on the rng passed to fit."""
    a, b = case.fit(), case.fit(seed=OTHER_SEED)
    return not all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=True) for c in NUMERIC_COLUMNS)


def _compared_columns(case: EstimatorCase, relabelled: bool) -> Sequence[str]:
    if relabelled and _resamples(case):
        return ("estimate", "std_error")
    return NUMERIC_COLUMNS


def _grouping_columns_or_skip(case: EstimatorCase) -> tuple[str, ...]:
    groups = case.grouping_columns()
    if not groups:
        raise unittest.SkipTest("no grouping column (EstimatorCase.groups, or a parameter named like "
                                f"{', '.join(GROUPING_PARAMETERS)} naming a column of the data)")
    return groups


def _names_column(error: InputError, column: str) -> bool:
    return repr(column) in str(error) or f'"{column}"' in str(error)


def check_params_round_trip(case: EstimatorCase) -> None:
    """get_params returns the __init__ parameters as plain YAML values; an estimator rebuilt from
    them (by clone or by the class) equals it; the class is importable by its dotted name, so a
    config can name it by ``_target_``."""
    estimator = case.estimator
    try:
        params = estimator.get_params()
    except AttributeError as error:
        raise AssertionError(f"get_params() failed ({error}): store each __init__ parameter under its own name") from None
    signature = init_parameters(type(estimator))
    assert list(params) == signature, f"get_params keys {list(params)} differ from __init__'s {signature}"
    assert yaml.safe_load(yaml.safe_dump(params)) == params, "get_params() does not survive a YAML round trip"
    clone = estimator.clone()
    assert clone == estimator and clone is not estimator, "clone() is not an equal, new estimator"
    assert type(estimator)(**params) == estimator, "the class called with get_params() gives another estimator"
    module, name = type(estimator).__module__, type(estimator).__qualname__
    assert getattr(importlib.import_module(module), name, None) is type(estimator), \
        f"the class is not importable as {module}.{name}, so no config can name it by _target_"


def check_fit_leaves_params_and_data_alone(case: EstimatorCase) -> None:
    """fit changes neither the estimator's parameters nor the data frame."""
    params = copy.deepcopy(case.estimator.get_params())
    data = case.data.copy(deep=True)
    case.fit()
    assert case.estimator.get_params() == params, f"fit changed the parameters: {case.estimator.get_params()} != {params}"
    pd.testing.assert_frame_equal(case.data, data, check_exact=True, obj="the data after fit")


def check_fit_idempotent(case: EstimatorCase) -> None:
    """Two fits of the same data with identically seeded rngs give identical results."""
    _assert_same(case.fit(), case.fit(), "second fit")


def check_global_random_state_untouched(case: EstimatorCase) -> None:
    """fit draws only from its rng, never from numpy's or Python's global generators."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    case.fit()
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(numpy_state, after)), "fit used numpy's global random state"
    assert random.getstate() == python_state, "fit used Python's global random state"


def check_declared_deterministic(case: EstimatorCase) -> None:
    """An estimator that declares ``draws_from_rng = False`` (the runner then passes it no
    generator, ``rng=None``) gives with ``rng=None`` the bits of a fit with a generator."""
    if getattr(case.estimator, "draws_from_rng", True):
        raise unittest.SkipTest("draws from its rng (draws_from_rng is not False)")
    _assert_same(case.estimator.fit(case.data, None), case.fit(), "fit with rng=None")


def check_result_schema(case: EstimatorCase) -> None:
    """fit returns a FitResult: unique string terms, float arrays of one value per term,
    to_frame() with the contract's columns, SEs >= 0, p-values in [0, 1], ci_lower <= estimate
    <= ci_upper where finite; an ``ok`` fit has at least one finite estimate."""
    result = case.fit()
    assert isinstance(result, FitResult), f"fit returned a {type(result).__name__}, not a FitResult"
    assert isinstance(result.status, Status), f"status {result.status!r} is not a Status"
    terms = result.terms
    assert isinstance(terms, tuple) and terms and all(isinstance(t, str) for t in terms), f"terms {terms!r} are not a tuple of strings"
    assert len(set(terms)) == len(terms), f"terms repeat: {terms}"
    for column in NUMERIC_COLUMNS:
        values = getattr(result, column)
        assert isinstance(values, np.ndarray) and values.shape == (len(terms),), \
            f"{column} is not an array of {len(terms)} values: {values!r}"
        assert values.dtype.kind == "f", f"{column} has dtype {values.dtype}, not float"
    frame = result.to_frame()
    assert tuple(frame.columns) == RESULT_COLUMNS and len(frame) == len(terms), \
        f"to_frame() has columns {list(frame.columns)} and {len(frame)} rows"
    with np.errstate(invalid="ignore"):
        assert not np.any(result.std_error < 0), f"negative std_error {result.std_error}"
        assert not np.any((result.p_value < 0) | (result.p_value > 1)), f"p_value outside [0, 1]: {result.p_value}"
        assert not np.any(result.ci_lower > result.estimate) and not np.any(result.estimate > result.ci_upper), \
            f"estimate {result.estimate} outside [{result.ci_lower}, {result.ci_upper}]"
    if result.status == Status.ok:
        assert np.isfinite(result.estimate).any(), "an ok fit without a finite estimate"


def check_row_order_invariance(case: EstimatorCase) -> None:
    """Shuffling the rows (index labels travel with them) changes nothing beyond rounding."""
    shuffled = case.data.sample(frac=1.0, random_state=np.random.RandomState(SEED))
    _assert_same(case.fit(), case.fit(shuffled), "rows shuffled", INVARIANCE_RTOL, _compared_columns(case, relabelled=False))


def _relabelled(column: pd.Series, seed: int) -> pd.Series:
    """The same partition under other labels, in another order (ints stay ints, others become strings)."""
    labels = column.unique()
    order = np.random.default_rng(seed).permutation(len(labels))
    if column.dtype.kind in "iu":
        new = {label: int(1000 + 7 * k) for label, k in zip(labels, order)}
    else:
        new = {label: f"cluster-{k}" for label, k in zip(labels, order)}
    return column.map(new)


def check_cluster_relabelling_invariance(case: EstimatorCase) -> None:
    """Renaming the clusters of each grouping column (same partition, new labels in another
    order) changes nothing beyond rounding; for a resampling estimator, which cluster gets which
    draw changes, so only estimates and standard errors are compared."""
    groups = _grouping_columns_or_skip(case)
    columns = _compared_columns(case, relabelled=True)
    for k, group in enumerate(groups):
        data = case.data.copy()
        data[group] = _relabelled(data[group], SEED + k)
        _assert_same(case.fit(), case.fit(data), f"{group!r} relabelled", INVARIANCE_RTOL, columns)


def _used_columns(case: EstimatorCase) -> list[str]:
    used = []
    for column in case.data.columns:
        try:
            case.fit(case.data.drop(columns=column))
        except InputError:
            used.append(column)
    return used


def check_missing_column(case: EstimatorCase) -> None:
    """Without one of its columns the estimator raises InputError naming that column; a column
    whose removal changes nothing is one it does not use."""
    reference = case.fit()
    for column in case.data.columns:
        try:
            result = case.fit(case.data.drop(columns=column))
        except InputError as error:
            assert _names_column(error, column), f"dropping {column!r} raised InputError without naming it: {error}"
        else:
            _assert_same(reference, result, f"without column {column!r} (neither an InputError nor unused)")


def check_missing_values(case: EstimatorCase) -> None:
    """A missing value in a column the estimator reads raises InputError naming that column."""
    used = _used_columns(case)
    if not used:
        raise unittest.SkipTest("the estimator reads none of the data's columns (dropping any changes nothing)")
    for column in used:
        data = case.data.copy()
        if data[column].dtype.kind in "biu":
            data[column] = data[column].astype(float)
        data.loc[data.index[len(data) // 2], column] = np.nan
        try:
            case.fit(data)
        except InputError as error:
            assert _names_column(error, column), f"a NaN in {column!r} raised InputError without naming it: {error}"
        else:
            raise AssertionError(f"a NaN in column {column!r} was accepted")


def check_single_cluster(case: EstimatorCase) -> None:
    """With all rows in one cluster of a grouping column, the estimator raises InputError naming
    the column (or, if it does not group by that column, gives the same result)."""
    groups = _grouping_columns_or_skip(case)
    reference = case.fit()
    for group in groups:
        data = case.data.copy()
        data[group] = data[group].iloc[0]
        try:
            result = case.fit(data)
        except InputError as error:
            assert _names_column(error, group), f"a single {group!r} cluster raised InputError without naming it: {error}"
        else:
            _assert_same(reference, result, f"a single {group!r} cluster (neither an InputError nor unused)")


def check_fit_batch_matches_fit(case: EstimatorCase) -> None:
    """fit_batch over frames of one design gives each frame's fit, to floating-point tolerance."""
    if not case.replicates:
        raise unittest.SkipTest("no replicates sharing the design (EstimatorCase.replicates is empty)")
    frames = list(case.replicates)
    seeds = [SEED + r for r in range(len(frames))]
    batch = case.estimator.fit_batch(frames, [np.random.default_rng(s) for s in seeds])
    assert len(batch) == len(frames), f"fit_batch returned {len(batch)} results for {len(frames)} frames"
    for r, (frame, seed) in enumerate(zip(frames, seeds)):
        _assert_same(case.fit(frame, seed), batch[r], f"fit_batch replicate {r}", BATCH_RTOL)


def check_consistency_on_large_draw(case: EstimatorCase) -> None:
    """On a large draw, every term with a known truth lies within CONSISTENCY_SES standard
    errors of it (or within ``tolerance`` when the term has no standard error)."""
    if case.large_data is None or case.truth is None:
        raise unittest.SkipTest("no large draw with its truth (EstimatorCase.large_data, truth)")
    result = case.fit(case.large_data)
    checked = []
    for term, estimate, std_error in zip(result.terms, result.estimate, result.std_error):
        if term not in case.truth or not np.isfinite(estimate):
            continue
        bound = CONSISTENCY_SES * std_error if np.isfinite(std_error) else case.tolerance
        if bound is None:
            continue
        assert abs(estimate - case.truth[term]) <= bound, \
            f"{term}: estimate {estimate:.6g} is {abs(estimate - case.truth[term]):.3g} from the truth {case.truth[term]:.6g} (allowed {bound:.3g})"
        checked.append(term)
    assert checked, f"no term of {result.terms} could be compared with the truth {dict(case.truth)} (pass tolerance= for terms without SE)"


CHECKS: tuple[Callable[[EstimatorCase], None], ...] = (
    check_params_round_trip,
    check_fit_leaves_params_and_data_alone,
    check_fit_idempotent,
    check_global_random_state_untouched,
    check_declared_deterministic,
    check_result_schema,
    check_row_order_invariance,
    check_cluster_relabelling_invariance,
    check_missing_column,
    check_missing_values,
    check_single_cluster,
    check_fit_batch_matches_fit,
    check_consistency_on_large_draw,
)


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What a run of a conformance suite found: the checks that passed, those skipped (name ->
    reason) and those that failed (name -> the error)."""

    label: str
    passed: tuple[str, ...] = ()
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)
    failed: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.label}: {len(self.passed)} check(s) passed, {len(self.skipped)} skipped, "
                 f"{len(self.failed)} failed"]
        lines += [f"failed {name}: {error}" for name, error in self.failed.items()]
        lines += [f"skipped {name}: {reason}" for name, reason in self.skipped.items()]
        return "\n".join(lines)


class ChecksFailed(AssertionError):
    """Some checks of a suite failed; ``report`` is the :class:`CheckReport`."""

    def __init__(self, report: CheckReport):
        super().__init__(f"{report.label} fails {len(report.failed)} check(s):\n"
                         + "\n".join(f"{name}: {error}" for name, error in report.failed.items())
                         + "".join(f"\n(skipped {name}: {reason})" for name, reason in report.skipped.items()))
        self.report = report


def run_checks(checks: Sequence[Callable], subject: object, label: str) -> CheckReport:
    """Run every check on ``subject`` and return the :class:`CheckReport`; raise
    :class:`ChecksFailed` (an AssertionError) listing each failing check, and the skipped ones
    apart, when any fails. A check that raises ``unittest.SkipTest`` is skipped, neither passed
    nor failed. (Shared by this suite and :func:`sims.dgp.checks.check_dgp`.)"""
    passed, skipped, failed = [], {}, {}
    for check in checks:
        try:
            check(subject)
        except unittest.SkipTest as skip:
            skipped[check.__name__] = str(skip)
        except Exception as error:  # report every failing check, not just the first
            failed[check.__name__] = f"{type(error).__name__}: {error}"
        else:
            passed.append(check.__name__)
    report = CheckReport(label, tuple(passed), skipped, failed)
    if failed:
        raise ChecksFailed(report)
    return report


def check_estimator(estimator: Estimator, data: pd.DataFrame, **case: object) -> CheckReport:
    """Run every check on ``estimator`` with ``data`` (further :class:`EstimatorCase` fields as
    keywords) and return the :class:`CheckReport`; raise one AssertionError listing each
    failing check."""
    return run_checks(CHECKS, EstimatorCase(estimator, data, **case), repr(estimator))
