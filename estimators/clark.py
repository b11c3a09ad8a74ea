"""By-subject and by-item analyses of a two-level condition effect (Clark 1973, "The
language-as-fixed-effect fallacy", J. Verbal Learning and Verbal Behavior 12:335).

The trials are first averaged into cell means, per subject and condition (F1) or per item and
condition (F2); for a 0/1 outcome these are the proportions correct, so the test is the ANOVA
on proportions. With ``transform: elogit`` each cell is instead its empirical logit,
log((k + 0.5) / (n - k + 0.5)) for k successes in n trials (Jaeger 2008, J. Mem. Lang. 59:434,
eq. 3; Cox 1970), which needs a 0/1 outcome. With two condition levels, the ANOVA of those means is a t-test, F = t^2:

- condition within units (every unit has both levels): d_u = mean_u(high) - mean_u(low),
  estimate = mean(d), SE = sd(d)/sqrt(m), df = m - 1 (repeated-measures ANOVA; afex ``aov_ez``
  with ``within``, base R ``aov(y ~ condition + Error(unit/condition))``);
- condition between units (every unit has one level): estimate = difference of the two groups'
  mean unit means, SE from the pooled variance, s^2 (1/m_high + 1/m_low), df = m - 2 (one-way
  ANOVA; ``aov_ez`` with ``between``).

Which of the two applies is read off the data, per analysis. The tests:

- ``F1``, ``F2``: the by-subject / by-item test, with its estimate, SE, t(df) interval and p.
- ``F1xF2``: rejects when both reject, i.e. p = max(p1, p2).
- ``minF``: min F' = F1 F2 / (F1 + F2) on (1, df') with df' = (F1 + F2)^2 / (F1^2/n2 + F2^2/n1),
  n1 and n2 the denominator df of F1 and F2; p from F(1, df'); df reports df'.

The estimate is high minus low (the coefficient of ``condition`` in ``y ~ condition`` for levels
one unit apart, e.g. -0.5/+0.5); ``F1xF2`` and ``minF`` report the by-subject one. They define no
standard error or interval: those are NaN and the message says so, while the status stays ``ok``
so that their p-values count in rejection rates.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
from scipy import stats

from estimators.base import Estimator
from estimators.design import InputError
from estimators.params import require_one_of, require_probability
from estimators.result import FitResult, Status, wald_inference

ClarkTestType = Literal["F1", "F2", "F1xF2", "minF"]
CLARK_TESTS = get_args(ClarkTestType)
CellTransform = Literal["none", "elogit"]
CELL_TRANSFORMS = get_args(CellTransform)


class UnitTest(NamedTuple):
    """A by-unit test of the condition effect: estimate, SE, denominator df, F = (estimate/SE)^2."""

    estimate: float
    std_error: float
    df: float

    @property
    def F(self) -> float:
        return (self.estimate / self.std_error) ** 2

    @property
    def p_value(self) -> float:
        return float(stats.f.sf(self.F, 1, self.df))


def cell_means(values: np.ndarray, units: np.ndarray, high: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, 2) means of ``values`` per unit and condition (column 1 = high level); NaN if empty."""
    cells = units * 2 + high
    sums = np.bincount(cells, weights=values, minlength=2 * n_units)
    counts = np.bincount(cells, minlength=2 * n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(n_units, 2)


def cell_empirical_logits(values: np.ndarray, units: np.ndarray, high: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, 2) empirical logits log((k + 0.5) / (n - k + 0.5)) of the 0/1 ``values`` per
    unit and condition, k the successes and n the trials of the cell; NaN if empty."""
    cells = units * 2 + high
    k = np.bincount(cells, weights=values, minlength=2 * n_units)
    n = np.bincount(cells, minlength=2 * n_units)
    return np.where(n > 0, np.log((k + 0.5) / (n - k + 0.5)), np.nan).reshape(n_units, 2)


def paired_test(means: np.ndarray) -> UnitTest:
    """Condition within units: one-sample t-test of d_u = high - low (= repeated-measures F)."""
    d = means[:, 1] - means[:, 0]
    return UnitTest(float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), float(len(d) - 1))


def two_group_test(unit_means: np.ndarray, is_high: np.ndarray) -> UnitTest:
    """Condition between units: pooled two-sample t-test of the unit means (= one-way ANOVA F)."""
    high, low = unit_means[is_high], unit_means[~is_high]
    df = len(unit_means) - 2
    pooled = (((high - high.mean()) ** 2).sum() + ((low - low.mean()) ** 2).sum()) / df
    return UnitTest(float(high.mean() - low.mean()), float(np.sqrt(pooled * (1 / len(high) + 1 / len(low)))), float(df))


def min_f_prime(F1: float, F2: float, n1: float, n2: float) -> tuple[float, float]:
    """min F' = F1 F2 / (F1 + F2) and its denominator df (F1 + F2)^2 / (F1^2/n2 + F2^2/n1) (Clark 1973)."""
    return F1 * F2 / (F1 + F2), (F1 + F2) ** 2 / (F1**2 / n2 + F2**2 / n1)


class ClarkTest(Estimator):
    """F1, F2, F1xF2 or min F' for the effect of a two-level ``condition`` on ``dv``.

    Parameters
    ----------
    test : ``F1``, ``F2``, ``F1xF2`` or ``minF``.
    dv, condition, subject, item : column names of the outcome, the two-level condition, and
        the subject and item labels. All four must be present without missing values.
    transform : ``none`` (cell means; proportions for a 0/1 outcome) or ``elogit`` (empirical
        logits of the cells' 0/1 outcomes).
    alpha : 1 - confidence level of the F1 / F2 intervals.
    """

    draws_from_rng = False  # closed-form ANOVA: the runner builds it no generator

    def __init__(self, test: ClarkTestType = "F1", dv: str = "y", condition: str = "condition",
                 subject: str = "subject", item: str = "item", alpha: float = 0.05, transform: CellTransform = "none"):
        self.test = test
        self.transform = transform
        self.dv = dv
        self.condition = condition
        self.subject = subject
        self.item = item
        self.alpha = alpha
        require_one_of(test, "test", CLARK_TESTS)
        require_one_of(transform, "transform", CELL_TRANSFORMS)
        require_probability(alpha, "alpha")

    def fit(self, data: pd.DataFrame, rng: np.random.Generator | None = None) -> FitResult:
        self._check_columns(data)
        values = data[self.dv].to_numpy(dtype=float)
        if self.transform == "elogit" and not np.isin(values, (0.0, 1.0)).all():
            raise InputError(f"dv column {self.dv!r} has values other than 0 and 1; transform 'elogit' needs a binary outcome")
        high = self._at_high_level(data)
        terms = (self.condition,)
        if self.test in ("F1", "F2"):
            unit = self.subject if self.test == "F1" else self.item
            result = self._unit_test(data, unit, values, high)
            return wald_inference(terms, [result.estimate], [result.std_error], result.df, self.alpha)
        by_subject = self._unit_test(data, self.subject, values, high)
        by_item = self._unit_test(data, self.item, values, high)
        nan = np.array([np.nan])
        if self.test == "F1xF2":
            p_value, df = max(by_subject.p_value, by_item.p_value), np.nan
            message = "F1xF2 is a decision rule (p = max(p1, p2)): no standard error or interval"
        else:
            F, df = min_f_prime(by_subject.F, by_item.F, by_subject.df, by_item.df)
            p_value = float(stats.f.sf(F, 1, df))
            message = "min F' defines no standard error or interval"
        return FitResult(terms, np.array([by_subject.estimate]), nan, np.array([df]), nan, nan,
                         np.array([p_value]), Status.ok, message)

    def _check_columns(self, data: pd.DataFrame) -> None:
        for role in ("dv", "condition", "subject", "item"):
            column = getattr(self, role)
            if column not in data.columns:
                raise InputError(f"{role} column {column!r} is not in the data (columns: {', '.join(map(str, data.columns))})")
            if data[column].isna().any():
                raise InputError(f"{role} column {column!r} has missing values")

    def _at_high_level(self, data: pd.DataFrame) -> np.ndarray:
        """Per row, whether the condition is at the higher of its two (sorted) levels."""
        codes, levels = pd.factorize(data[self.condition], sort=True)
        if len(levels) != 2:
            raise InputError(f"condition column {self.condition!r} has {len(levels)} level(s); these tests need exactly 2")
        return codes == 1

    def _unit_test(self, data: pd.DataFrame, unit: str, values: np.ndarray, high: np.ndarray) -> UnitTest:
        codes, labels = pd.factorize(data[unit], sort=True)
        cells = cell_means if self.transform == "none" else cell_empirical_logits
        means = cells(values, codes, high.astype(np.intp), len(labels))
        observed = np.isfinite(means)
        if observed.all():
            if len(labels) < 2:
                raise InputError(f"column {unit!r} has {len(labels)} level(s); the by-{unit} test needs at least 2")
            return paired_test(means)
        if (observed.sum(axis=1) == 1).all():
            is_high = observed[:, 1]
            if is_high.sum() < 1 or (~is_high).sum() < 1 or len(labels) < 3:
                raise InputError(f"column {unit!r} has too few levels per condition for a between-{unit} test "
                                 f"({int(is_high.sum())} and {int((~is_high).sum())}; need 1 each and 3 in all)")
            return two_group_test(np.where(is_high, means[:, 1], means[:, 0]), is_high)
        raise InputError(f"column {unit!r}: condition {self.condition!r} is neither within every {unit} "
                         f"nor between {unit}s (some see both levels, some one)")
