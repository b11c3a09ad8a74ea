"""Hypothesis matrices L of the fixed effects' terms: which columns a patsy term owns, and the type
III hypotheses of lmerTest's ``anova(type = 3)``, both read from the column names alone.

Patsy names a column by its factors joined with ``:``, a treatment-coded level as
``factor[T.level]`` and a numeric factor by its expression (``x``, ``condition[T.b]``,
``recipe[T.B]:temp``). The term of a column is its factors' names (``recipe:temp``).

Type III hypotheses (lmerTest 3.1's ``get_contrasts_type3`` for treatment contrasts; Goodnight
1976's rule that a term's hypothesis is orthogonal to every term containing it):

- with at most one term besides the intercept, lmerTest uses the type I hypotheses: the term's
  rows of U, where X'X = L D U is the Doolittle decomposition (U = L' unit upper triangular,
  entries below 1e-6 in modulus set to 0; ``get_contrasts_type1``);
- otherwise let rdX hold, for the intercept and each term, the term's columns with every level of
  its factors (R's ``model.matrix(~ 0 + term)``), and K (pp x p) the coefficients of rdX's columns
  in X's columns (rdX = X K'). A term F1 is contained in F2 when F1's factors are a proper subset
  of F2's with the same numeric factors. From the highest-order term down, the columns of K
  owned by a term are replaced by their residuals on the columns of the terms containing it
  (least squares over the pp rows). The hypothesis of a term is then the transpose of its
  columns of K, restricted to the rows of rdX that are X's own columns.

K is exact algebra here, not a regression on the data: a level indicator of a treatment-coded
factor is 1 - (sum of the other levels' indicators) for the reference level, so every column of
rdX is a polynomial in X's columns when the model is hierarchical and no cell is empty (lmerTest
warns about empty cells, where its least-squares K differs). A term whose hypothesis would need
a column that X lacks is refused.
"""
from __future__ import annotations

from itertools import product

import numpy as np

from estimators.design import InputError

INTERCEPT = "Intercept"
DOOLITTLE_EPS = 1e-6  # lmerTest's doolittle(): |entries| below this are set to 0


def split_column(name: str) -> list[tuple[str, str | None]]:
    """The factors of a patsy column name as (factor, level) pairs: level is the treatment level
    (``"b"`` for ``condition[T.b]``), None for a numeric factor, or the bracket's text prefixed
    with ``"?"`` for other codings. Colons inside parentheses or brackets do not split."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    out = []
    for part in parts:
        if part.endswith("]") and "[" in part:
            cut = _bracket_start(part)
            factor, inside = part[:cut], part[cut + 1:-1]
            out.append((factor, inside[2:] if inside.startswith("T.") else "?" + inside))
        else:
            out.append((part, None))
    return out


def _bracket_start(part: str) -> int:
    """Index of the '[' that opens the trailing bracket of ``part``."""
    depth = 0
    for i in range(len(part) - 1, -1, -1):
        if part[i] == "]":
            depth += 1
        elif part[i] == "[":
            depth -= 1
            if depth == 0:
                return i
    return -1


def term_of(name: str) -> str:
    """The patsy term of a column: its factors' names joined by ':' (``recipe[T.B]:temp`` ->
    ``recipe:temp``)."""
    return ":".join(factor for factor, _ in split_column(name))


def fixed_terms(names) -> dict[str, list[int]]:
    """Term -> indices of its columns, in the order of the columns (the intercept excluded)."""
    out: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if name == INTERCEPT:
            continue
        out.setdefault(term_of(name), []).append(j)
    return out


def columns_of(names, coefficients) -> np.ndarray:
    """L selecting the named coefficients (one row each)."""
    names = list(names)
    missing = [c for c in coefficients if c not in names]
    if missing:
        raise InputError(f"coefficient {missing[0]!r} is not a fixed effect (fixed effects: {', '.join(names)})")
    L = np.zeros((len(coefficients), len(names)))
    for row, c in enumerate(coefficients):
        L[row, names.index(c)] = 1.0
    return L


def doolittle_upper(XtX: np.ndarray) -> np.ndarray:
    """U = L' of the Doolittle decomposition X'X = L D L' (L unit lower triangular), as lmerTest's
    ``doolittle`` computes it (entries below 1e-6 in modulus set to 0)."""
    n = XtX.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i] = XtX[i] - L[i, :i] @ U[:i]
        for j in range(i + 1, n):
            value = XtX[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < DOOLITTLE_EPS else value / U[i, i]
    L[np.abs(L) < DOOLITTLE_EPS] = 0.0
    return L.T


def type3_hypotheses(names, XtX: np.ndarray) -> dict[str, np.ndarray]:
    """Term -> its type III hypothesis matrix (rows over the coefficients), as lmerTest's
    ``anova(type = 3)`` with treatment contrasts (module docstring)."""
    names = list(names)
    terms = fixed_terms(names)
    if len(names) <= 1 or len(terms) <= 1:
        U = doolittle_upper(XtX)
        return {term: U[columns] for term, columns in terms.items()}
    factors = {term: [f for f, _ in split_column(names[cols[0]])] for term, cols in terms.items()}
    numerics = {term: {f for f, level in split_column(names[cols[0]]) if level is None} for term, cols in terms.items()}
    containers = {
        term: [other for other in terms
               if set(factors[term]) < set(factors[other]) and numerics[term] == numerics[other]]
        for term in terms
    }
    K, row_of = _coefficients_of_full_design(names, terms, containers)
    for term in sorted(terms, key=lambda t: -len(factors[t])):  # stable: ties keep formula order
        if not containers[term]:
            continue
        y = K[:, terms[term]]
        x = K[:, [c for other in containers[term] for c in terms[other]]]
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        K[:, terms[term]] = y - x @ coef
    K = K[row_of]  # row j: the column of rdX that is X's column j
    out = {}
    for term, columns in terms.items():
        L = K[:, columns].T
        out[term] = L[np.abs(L).sum(axis=1) > 1e-8]
    return out


def _coefficients_of_full_design(names, terms, containers) -> tuple[np.ndarray, list[int]]:
    """K (pp x p): the columns of rdX (intercept, then each term with all levels of its factors)
    as combinations of X's columns; and, for each column of X, the row of K that is that column.

    Only the terms that contain others or are contained in others are expanded level by level;
    another term's rows are its own columns (its reference-level columns of rdX are zero in the
    columns that the residuals involve, and their rows are dropped in the end)."""
    index = {_monomial(split_column(n)): j for j, n in enumerate(names)}
    levels: dict[str, list[str]] = {}
    for n in names:
        for factor, level in split_column(n):
            if level is not None:
                if level.startswith("?"):
                    raise InputError(
                        f"type III hypotheses need treatment-coded factors; column {n!r} has another coding")
                levels.setdefault(factor, []).append(level)
    levels = {f: list(dict.fromkeys(v)) for f, v in levels.items()}
    involved = {t for t, c in containers.items() if c} | {o for c in containers.values() for o in c}
    p = len(names)
    rows: list[np.ndarray] = []
    row_of = [-1] * p
    if INTERCEPT in names:
        row_of[names.index(INTERCEPT)] = len(rows)
        rows.append(_unit(p, names.index(INTERCEPT)))
    for term, columns in terms.items():
        if term not in involved:
            for c in columns:
                row_of[c] = len(rows)
                rows.append(_unit(p, c))
            continue
        parts = split_column(names[columns[0]])
        choices = [[(factor, None)] if level is None else [(factor, REFERENCE)] + [(factor, l) for l in levels[factor]]
                   for factor, level in parts]
        for cell in product(*choices):
            if all(level is not REFERENCE for _, level in cell):
                row_of[index[_monomial(cell)]] = len(rows)
            rows.append(_expand(cell, levels, index, p, term))
    return np.array(rows), row_of


REFERENCE = object()  # the reference level of a treatment-coded factor


def _monomial(parts) -> frozenset:
    return frozenset(parts)


def _unit(p: int, j: int) -> np.ndarray:
    row = np.zeros(p)
    row[j] = 1.0
    return row


def _expand(cell, levels, index, p: int, term: str) -> np.ndarray:
    """Coefficients in X's columns of the product over ``cell`` of numeric factors and level
    indicators, with I(f = reference) = 1 - (sum of f's other indicators)."""
    expansion = [((), 1.0)]  # (monomial parts, coefficient)
    for factor, level in cell:
        if level is REFERENCE:
            options = [(None, 1.0)] + [((factor, other), -1.0) for other in levels[factor]]
        else:
            options = [((factor, level), 1.0)]
        expansion = [(parts + ((part,) if part is not None else ()), coef * c)
                     for parts, coef in expansion for part, c in options]
    row = np.zeros(p)
    for parts, coef in expansion:
        key = _monomial(parts) if parts else _monomial([(INTERCEPT, None)])
        if key not in index:
            missing = ":".join(f if l is None else f"{f}[T.{l}]" for f, l in parts) or INTERCEPT
            raise InputError(f"type III hypothesis of {term!r} needs column {missing!r}, which the model lacks "
                             "(a term without its marginal terms)")
        row[index[key]] += coef
    return row
