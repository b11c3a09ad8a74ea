"""lme4's formula syntax: a patsy fixed part plus random-effects terms in parentheses.

    y ~ fixed + (lhs | g) + (lhs || g) + ...

Each random term ``(lhs | g)`` has a model matrix given by the patsy formula ``lhs`` (an
intercept unless ``0 +`` or ``- 1`` removes it) and one correlated block of effects per level of
the grouping factor ``g`` (Bates, Mächler, Bolker & Walker 2015, sections 2.1-2.2, table 2):

- ``(1 | g)``            random intercept;
- ``(x | g)``, ``(1 + x | g)``  correlated random intercept and slope;
- ``(0 + x | g)``        random slope only;
- ``(1 + x || g)``       uncorrelated: split into ``(1 | g) + (0 + x | g)``, one term per patsy
  term of ``lhs`` (lme4's ``expandDoubleVerts``);
- ``(1 | a:b)``          grouping by the combinations of ``a`` and ``b``;
- ``(1 | a/b)``          nested: ``(1 | a) + (1 | a:b)``;
- several terms          crossed or nested factors, each its own block.

Parsing is purely syntactic; columns are checked against the data in :mod:`.design`.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import patsy

from estimators.design import InputError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(lhs | group)``: patsy ``lhs`` for the effects' model matrix,
    ``factors`` the columns whose combinations define the levels of the grouping factor."""

    lhs: str
    factors: tuple[str, ...]

    @property
    def group(self) -> str:
        """The grouping factor's name as lme4 prints it: ``subject`` or ``a:b``."""
        return ":".join(self.factors)

    def __str__(self) -> str:
        return f"({self.lhs} | {self.group})"


@dataclass(frozen=True)
class MixedFormula:
    """A parsed lme4 formula: ``outcome ~ fixed`` for patsy and the random terms in order."""

    outcome: str
    fixed: str
    random: tuple[RandomTerm, ...]

    @property
    def fixed_formula(self) -> str:
        return f"{self.outcome} ~ {self.fixed}"

    def __str__(self) -> str:
        return " + ".join([self.fixed_formula, *map(str, self.random)])


@functools.lru_cache(maxsize=256)
def parse_formula(formula: str) -> MixedFormula:
    """Split an lme4 formula into its fixed part and expanded random terms.

    Raises :class:`InputError` naming the offending piece when a term does not parse. (Cached:
    the result is immutable and estimators parse their formula on every fit.)
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise InputError(f"formula {formula!r} must have exactly one '~' separating outcome and predictors")
    outcome, rhs = (part.strip() for part in formula.split("~"))
    if not outcome:
        raise InputError(f"formula {formula!r} has no outcome left of '~'")
    fixed_pieces, random_texts = _split_random_terms(rhs, formula)
    if not random_texts:
        raise InputError(f"formula {formula!r} has no random-effects term such as (1 | subject)")
    fixed = " ".join(fixed_pieces).strip()
    fixed = re.sub(r"^\+\s*", "", fixed) or "1"
    if fixed.rstrip().endswith(("+", "-")):
        raise InputError(f"formula {formula!r}: the fixed part {fixed!r} ends with an operator")
    _check_patsy(f"{outcome} ~ {fixed}", formula, "fixed part")
    terms: list[RandomTerm] = []
    for text in random_texts:
        terms.extend(_expand_term(text, formula))
    return MixedFormula(outcome, fixed, tuple(terms))


def _split_random_terms(rhs: str, formula: str) -> tuple[list[str], list[str]]:
    """Top-level parenthesised pieces containing '|' are random terms; the rest is fixed."""
    fixed: list[str] = []
    random: list[str] = []
    depth, start, i = 0, None, 0
    pending = []  # characters of the fixed part since the last random term
    while i < len(rhs):
        char = rhs[i]
        if char == "(":
            # "name(" is a function call such as I(x**2) or C(f); "x (" is a term missing its '+'.
            opens_term = depth == 0 and not re.search(r"[A-Za-z0-9_.]$", "".join(pending))
            if opens_term:
                start = i
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InputError(f"formula {formula!r} has an unmatched ')'")
            if depth == 0 and start is not None:
                inner = rhs[start + 1:i]
                if "|" in inner:
                    before = "".join(pending).rstrip()
                    if before.endswith("-"):
                        raise InputError(f"formula {formula!r}: a random term cannot be subtracted: ({inner.strip()})")
                    if before and not before.endswith("+"):
                        raise InputError(f"formula {formula!r}: random term ({inner.strip()}) must be joined with '+'")
                    fixed.append(before.rstrip("+").rstrip())
                    pending = []
                    random.append(inner)
                else:
                    pending.append(rhs[start:i + 1])
                start = None
                i += 1
                continue
        if start is None:
            pending.append(char)
        i += 1
    if depth != 0:
        raise InputError(f"formula {formula!r} has an unmatched '('")
    rest = "".join(pending).strip()
    if rest:
        if fixed and not rest.startswith(("+", "-")):
            raise InputError(f"formula {formula!r}: {rest!r} must be joined with '+'")
        fixed.append(rest)
    return [piece for piece in fixed if piece], random


def _expand_term(text: str, formula: str) -> list[RandomTerm]:
    """``lhs | g`` or ``lhs || g`` to one or more :class:`RandomTerm` (nesting and '||' expanded)."""
    uncorrelated = "||" in text
    lhs, bar, group = text.partition("||" if uncorrelated else "|")
    lhs, group = lhs.strip(), group.strip()
    if "|" in group or not lhs or not group:
        raise InputError(f"formula {formula!r}: random term ({text.strip()}) does not parse; expected (lhs | group)")
    _check_patsy(f"~ {lhs}", formula, f"random term ({text.strip()})")
    groupings = _expand_grouping(group, text, formula)
    pieces = _uncorrelated_pieces(lhs) if uncorrelated else [lhs]
    return [RandomTerm(piece, factors) for factors in groupings for piece in pieces]


def _expand_grouping(group: str, text: str, formula: str) -> list[tuple[str, ...]]:
    """``a`` -> [(a,)]; ``a:b`` -> [(a, b)]; ``a/b`` -> [(a,), (a, b)] (lme4's nesting operator)."""
    nested = [part.strip() for part in group.split("/")]
    groupings: list[tuple[str, ...]] = []
    prefix: tuple[str, ...] = ()
    for part in nested:
        names = tuple(name.strip().strip("`") for name in part.split(":"))
        for name in names:
            if not _NAME.match(name):
                raise InputError(
                    f"formula {formula!r}: grouping factor {name!r} in ({text.strip()}) is not a column name")
        prefix = prefix + names
        groupings.append(prefix)
    return groupings


def _uncorrelated_pieces(lhs: str) -> list[str]:
    """``1 + x + z`` -> ``["1", "0 + x", "0 + z"]``: one uncorrelated term per patsy term."""
    description = patsy.ModelDesc.from_formula(f"~ {lhs}")
    pieces = []
    for term in description.rhs_termlist:
        if not term.factors:
            pieces.append("1")
        else:
            pieces.append(f"0 + {term.name()}")
    return pieces


def _check_patsy(text: str, formula: str, where: str) -> None:
    try:
        patsy.ModelDesc.from_formula(text)
    except patsy.PatsyError as error:
        raise InputError(f"formula {formula!r}: {where} does not parse: {str(error).splitlines()[0]}") from None
