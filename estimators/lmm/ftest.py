"""F and t tests of linear hypotheses L beta = 0 of the fixed effects, with Satterthwaite's or
Kenward and Roger's denominator df, as lmerTest's ``contest1D``, ``contestMD`` and
``anova(type = 3)`` compute them.

Satterthwaite (Kuznetsova, Brockhoff & Christensen 2017, "lmerTest package: tests in linear
mixed effects models", J. Stat. Softw. 82(13), section 3.3; Fai & Cornelius 1996): with
C = Var(beta-hat), A the asymptotic covariance of phi = (theta, sigma) and J_k = dC/dphi_k
(:func:`~estimators.lmm.satterthwaite.satterthwaite_parts`),

- one row l:  t = l'beta / sqrt(l'Cl),  nu = 2 (l'Cl)^2 / (g'Ag),  g_k = l'J_k l;
- q rows:  L C L' = P D P' (eigenvalues d_1 >= d_2 >= ..., those above sqrt(eps) d_1 kept,
  their number the numerator df q), rows l_m = P_m'L, t_m^2 = (l_m'beta)^2 / d_m,
  F = sum_m t_m^2 / q, nu_m the Satterthwaite df of l_m, and with E = sum_m nu_m / (nu_m - 2),
  the denominator df 2E / (E - q) (2 when some nu_m <= 2; the mean of the nu_m when they agree
  within 1e-8; lmerTest's ``get_Fstat_ddf``). One kept eigenvalue gives the t test of l_1.

Kenward-Roger (REML fits): one row, t = l'beta / sqrt(l'Phi_A l) against t(m) with m pbkrtest's
``Lb_ddf`` (lmerTest's ``contest1D``); several rows, pbkrtest's ``KRmodcomp``: the scaled F of
:meth:`~estimators.lmm.kenward_roger.KenwardRoger.f_test` (lmerTest's ``contestMD``).

The anova table tests each term's type III hypothesis (:mod:`.hypotheses`) with either df.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from estimators.design import InputError
from estimators.lmm.hypotheses import columns_of, fixed_terms, split_column, type3_hypotheses
from estimators.lmm.kenward_roger import kenward_roger
from estimators.lmm.satterthwaite import satterthwaite_parts
from estimators.params import require, require_one_of

Ddf = Literal["satterthwaite", "kenward_roger"]
DDFS = ("satterthwaite", "kenward_roger")
# lmerTest's contestMD: eigenvalues of L C L' below sqrt(machine epsilon) times the largest are 0.
RANK_TOLERANCE = float(np.sqrt(np.finfo(float).eps))
# lmerTest's get_Fstat_ddf: nu_m within this of each other are averaged.
EQUAL_DF_TOLERANCE = 1e-8

ANOVA_COLUMNS = ("term", "num_df", "den_df", "F", "p_value")
T_COLUMNS = ("estimate", "std_error", "df", "t", "p_value")


@dataclass(frozen=True)
class SatterthwaiteParts:
    """What the Satterthwaite df of any contrast need at one fit (lmerTest's ``vcov_varpar``,
    ``vcov_beta``, ``Jac_list``)."""

    A: np.ndarray  # (m + 1, m + 1)
    C: np.ndarray  # (p, p)
    J: np.ndarray  # (m + 1, p, p)

    def df(self, l: np.ndarray) -> float:
        """nu = 2 (l'Cl)^2 / (g'Ag), g_k = l'J_k l."""
        g = np.einsum("a,kab,b->k", l, self.J, l)
        return float(2.0 * (l @ self.C @ l) ** 2 / (g @ self.A @ g))


def satterthwaite_t(l: np.ndarray, beta: np.ndarray, parts: SatterthwaiteParts) -> tuple[float, float, float]:
    """(estimate, SE, df) of l'beta with Satterthwaite's df."""
    return float(l @ beta), float(np.sqrt(l @ parts.C @ l)), parts.df(l)


def satterthwaite_f(L: np.ndarray, beta: np.ndarray, parts: SatterthwaiteParts) -> tuple[float, int, float]:
    """(F, numerator df, denominator df) of L beta = 0 (lmerTest's ``contestMD``)."""
    L = np.atleast_2d(L)
    if L.shape[0] == 1:
        estimate, se, df = satterthwaite_t(L[0], beta, parts)
        return (estimate / se) ** 2, 1, df
    values, vectors = np.linalg.eigh(L @ parts.C @ L.T)
    values, vectors = values[::-1], vectors[:, ::-1]  # decreasing, as R's eigen
    q = int(np.sum(values > max(RANK_TOLERANCE * values[0], 0.0)))
    if q == 0:
        return np.nan, 0, np.nan
    rows = vectors[:, :q].T @ L
    if q == 1:
        estimate, se, df = satterthwaite_t(rows[0], beta, parts)
        return (estimate / se) ** 2, 1, df
    F = float(np.sum((rows @ beta) ** 2 / values[:q]) / q)
    return F, q, f_denominator_df(np.array([parts.df(row) for row in rows]))


def f_denominator_df(nu: np.ndarray) -> float:
    """lmerTest's ``get_Fstat_ddf``: 2E / (E - q), E = sum nu_m / (nu_m - 2)."""
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < EQUAL_DF_TOLERANCE):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - len(nu))


def f_p_value(F: float, num_df: float, den_df: float) -> float:
    """P(F(num_df, den_df) > F); for den_df = inf, P(chi^2_num_df > num_df F)."""
    with np.errstate(invalid="ignore"):
        if np.isinf(den_df):
            return float(special.chdtrc(num_df, num_df * F))
        return float(special.fdtrc(num_df, den_df, F))


def t_p_value(t: float, df: float) -> float:
    with np.errstate(invalid="ignore"):
        return float(2.0 * special.stdtr(df, -abs(t)))


def f_test(L: np.ndarray, beta: np.ndarray, ddf: Ddf, parts: SatterthwaiteParts | None = None,
           kr=None) -> tuple[float, float, float, float]:
    """(F, numerator df, denominator df, p-value) of L beta = 0 with ``ddf``'s method."""
    if ddf == "kenward_roger":
        F, q, den = kr.f_test(L, beta)
    else:
        F, q, den = satterthwaite_f(L, beta, parts)
    return F, q, den, f_p_value(F, q, den)


def t_test_row(l: np.ndarray, beta: np.ndarray, ddf: Ddf, parts: SatterthwaiteParts | None = None,
               kr=None) -> tuple[float, float, float, float, float]:
    """(estimate, SE, df, t, p-value) of l'beta = 0 (Kenward-Roger: the adjusted SE)."""
    if ddf == "kenward_roger":
        estimate, se, df = float(l @ beta), float(np.sqrt(l @ kr.vcov_adjusted @ l)), kr.ddf(l)
    else:
        estimate, se, df = satterthwaite_t(l, beta, parts)
    return estimate, se, df, estimate / se, t_p_value(estimate / se, df)


def anova_frame(fixed_names, XtX: np.ndarray, beta: np.ndarray, ddf: Ddf, parts=None, kr=None) -> pd.DataFrame:
    """lmerTest's ``anova(type = 3)``: one row per term of the fixed part (the intercept aside)."""
    rows = []
    for term, L in type3_hypotheses(fixed_names, XtX).items():
        F, q, den, p = f_test(L, beta, ddf, parts, kr)
        rows.append((term, q, den, F, p))
    return pd.DataFrame(rows, columns=ANOVA_COLUMNS)


def contrast_frame(L: np.ndarray, beta: np.ndarray, ddf: Ddf, parts=None, kr=None) -> pd.DataFrame:
    """One row: the t test of a one-row L, or the F test of a several-row L."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[0] == 1:
        return pd.DataFrame([t_test_row(L[0], beta, ddf, parts, kr)], columns=T_COLUMNS)
    F, q, den, p = f_test(L, beta, ddf, parts, kr)
    return pd.DataFrame([(q, den, F, p)], columns=ANOVA_COLUMNS[1:])


def fit_parts(fit, ddf: Ddf):
    """(SatterthwaiteParts, None) or (None, KenwardRoger) of one :class:`~estimators.lmm.fit.MixedFit`."""
    require_one_of(ddf, "ddf", DDFS)
    if fit.model is None:
        raise ValueError("ddf: this fit carries no model to test with (fit it with MixedModel.fit or LMM.fit_model)")
    theta, sigma = fit.theta[None], np.array([fit.sigma])
    if ddf == "kenward_roger":
        require(fit.reml, "ddf", "kenward_roger needs a REML fit (reml: true)")
        kr = kenward_roger(fit.model, theta, sigma)[0]
        if kr is None:
            raise ValueError("ddf: the Kenward-Roger adjustment could not be computed for this fit")
        return None, kr
    A, C, J = satterthwaite_parts(fit.model, fit.outcomes, theta, sigma)
    return SatterthwaiteParts(A[0], C[0], J[0]), None


def fit_anova(fit, ddf: Ddf = "satterthwaite") -> pd.DataFrame:
    parts, kr = fit_parts(fit, ddf)
    X = fit.model.design.X
    return anova_frame(fit.fixed_names, X.T @ X, fit.beta, ddf, parts, kr)


def fit_contrast(fit, L, ddf: Ddf = "satterthwaite") -> pd.DataFrame:
    L = np.atleast_2d(np.asarray(L, dtype=float))
    require(L.ndim == 2 and L.shape[1] == len(fit.beta), "L",
            f"must have one column per fixed effect ({len(fit.beta)}), got shape {L.shape}")
    parts, kr = fit_parts(fit, ddf)
    return contrast_frame(L, fit.beta, ddf, parts, kr)


# --- F tests as result rows of a study (LMM's ``test`` option) ---------------------------------

TEST_PREFIX = "F:"


def check_test_option(test) -> None:
    """``test`` is None or a non-empty mapping of names to a term of the formula (a string), a
    list of coefficient names, or a contrast matrix (a list of equally long rows of numbers).
    Whether the terms and coefficients exist is checked on the data (:func:`hypothesis_of`)."""
    if test is None:
        return
    require(isinstance(test, Mapping) and len(test) > 0, "test",
            f"must be a mapping of test names to a term, a list of coefficient names or a contrast matrix, got {test!r}")
    for name, spec in test.items():
        require(isinstance(name, str) and name != "", "test", f"test names must be non-empty strings, got {name!r}")
        require(_is_term(spec) or _is_names(spec) or _is_matrix(spec), "test",
                f"{name}: must be a term of the formula, a list of coefficient names or a contrast matrix "
                f"(a list of rows of numbers), got {spec!r}")


def _is_term(spec) -> bool:
    return isinstance(spec, str) and spec != ""


def _is_names(spec) -> bool:
    return isinstance(spec, (list, tuple)) and len(spec) > 0 and all(_is_term(s) for s in spec)


def _is_matrix(spec) -> bool:
    def is_row(row):
        return (isinstance(row, (list, tuple)) and len(row) > 0
                and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in row))
    return (isinstance(spec, (list, tuple)) and len(spec) > 0 and all(is_row(r) for r in spec)
            and len({len(r) for r in spec}) == 1)


def test_terms(test) -> tuple[str, ...]:
    """The result rows of the tests: ``F:<name>`` each."""
    return tuple(TEST_PREFIX + name for name in test) if test else ()


def hypothesis_of(name: str, spec, fixed_names, XtX: np.ndarray, drop_columns: bool = False) -> np.ndarray:
    """L of one test on a design: a term's type III hypothesis (its own columns when
    ``drop_columns``, for likelihood-ratio tests), a named coefficient, coefficient names, or
    the matrix itself. Raises :class:`InputError` for names the design lacks or a matrix of the
    wrong width."""
    names = list(fixed_names)
    if isinstance(spec, str):
        terms = fixed_terms(names)
        wanted = {factor for factor, _ in split_column(spec)}
        match = [t for t in terms if {factor for factor, _ in split_column(t)} == wanted]
        if match:
            if drop_columns:
                return columns_of(names, [names[j] for j in terms[match[0]]])
            return type3_hypotheses(names, XtX)[match[0]]
        if spec in names:
            return columns_of(names, [spec])
        raise InputError(f"test {name!r}: {spec!r} is neither a term nor a coefficient of the fixed part "
                         f"(terms: {', '.join(terms)}; coefficients: {', '.join(names)})")
    if all(isinstance(s, str) for s in spec):
        try:
            return columns_of(names, list(spec))
        except InputError as error:
            raise InputError(f"test {name!r}: {error}") from None
    L = np.array(spec, dtype=float)
    if L.shape[1] != len(names):
        raise InputError(f"test {name!r}: the contrast matrix has {L.shape[1]} columns; the fixed effects are "
                         f"{len(names)} ({', '.join(names)})")
    return L


def wald_f(L: np.ndarray, beta: np.ndarray, C: np.ndarray) -> tuple[float, int]:
    """(W / q, q) with W = (L beta)'(L C L')^-1 (L beta), q = rank(L): F(q, inf) = chi^2_q / q."""
    q = int(np.linalg.matrix_rank(L))
    d = L @ beta
    return float(d @ np.linalg.lstsq(L @ C @ L.T, d, rcond=None)[0]) / q, q
