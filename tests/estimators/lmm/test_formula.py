"""lme4 formula syntax: parsing, expansion of '||' and '/', and errors that name the problem."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from estimators.design import InputError
from estimators.lmm.design import build_mixed_design
from estimators.lmm.formula import RandomTerm, parse_formula


@pytest.mark.parametrize("formula, fixed, random", [
    ("y ~ X + (1 | subject)", "X", [("1", ("subject",))]),
    ("y ~ X + (1 + X | subject)", "X", [("1 + X", ("subject",))]),
    ("y~X+(X|subject)", "X", [("X", ("subject",))]),
    ("y ~ c + (0 + c | s)", "c", [("0 + c", ("s",))]),
    ("y ~ c + (1 + c || s)", "c", [("1", ("s",)), ("0 + c", ("s",))]),
    ("y ~ c + (c || s)", "c", [("1", ("s",)), ("0 + c", ("s",))]),
    ("y ~ c + (0 + c + d || s)", "c", [("0 + c", ("s",)), ("0 + d", ("s",))]),
    ("y ~ c + (1 | s) + (1 + c | i)", "c", [("1", ("s",)), ("1 + c", ("i",))]),
    ("y ~ x + (1 | a:b)", "x", [("1", ("a", "b"))]),
    ("y ~ x + (1 | a/b)", "x", [("1", ("a",)), ("1", ("a", "b"))]),
    ("y ~ x + (x | a/b/c)", "x", [("x", ("a",)), ("x", ("a", "b")), ("x", ("a", "b", "c"))]),
    ("y ~ (1 | g)", "1", [("1", ("g",))]),
    ("y ~ (1 | g) + x", "x", [("1", ("g",))]),
    ("y ~ x * z + I(x**2) + (x | g) - 1", "x * z + I(x**2) - 1", [("x", ("g",))]),
    ("y ~ C(f) + (1 | g)", "C(f)", [("1", ("g",))]),
])
def test_parses(formula, fixed, random):
    parsed = parse_formula(formula)
    assert parsed.outcome == "y"
    assert parsed.fixed == fixed
    assert [(t.lhs, t.factors) for t in parsed.random] == random


def test_group_names():
    assert RandomTerm("1", ("a", "b")).group == "a:b"
    assert str(parse_formula("y ~ x + (1 + x || g)")) == "y ~ x + (1 | g) + (0 + x | g)"


@pytest.mark.parametrize("formula, message", [
    ("y ~ x + (1 | g", "unmatched '('"),
    ("y ~ x + 1 | g)", "unmatched ')'"),
    ("y ~ x + (1 | g | h)", "does not parse"),
    ("y ~ x + (| g)", "does not parse"),
    ("y ~ x + (1 + | g)", "does not parse"),
    ("y ~ x + (1 | 3g)", "not a column name"),
    ("y ~ x + (1 | g + h)", "not a column name"),
    ("y ~ x", "no random-effects term"),
    ("y ~ x - (1 | g)", "cannot be subtracted"),
    ("y ~ x (1 | g)", "joined with '+'"),
    ("x + (1 | g)", "exactly one '~'"),
    ("~ x + (1 | g)", "no outcome"),
    ("y ~ x + + (1 | g)", "ends with an operator"),
    ("y ~ x + (1 | g) z", "'z' must be joined with '+'"),
    ("y ~ x ** + (1 | g)", "fixed part does not parse"),
])
def test_unparseable_terms_are_named(formula, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+").replace("|", r"\|")):
        parse_formula(formula)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40),
                         "a": np.repeat([1, 2], 20), "b": np.tile(np.repeat([1, 2, 3, 4], 5), 2),
                         "f": np.tile(["u", "v"], 20)})


def test_missing_grouping_column_is_named(data):
    with pytest.raises(InputError, match=r"grouping column 'subject' of random term \(1 \| subject\) is not in the data"):
        build_mixed_design("y ~ x + (1 | subject)", data)
    with pytest.raises(InputError, match="grouping column 'c'"):
        build_mixed_design("y ~ x + (1 | a:c)", data)


def test_missing_random_covariate_is_named(data):
    with pytest.raises(InputError, match=r"column 'z' in random term \(1 \+ z \| a\)"):
        build_mixed_design("y ~ x + (1 + z | a)", data)


def test_missing_values_and_degenerate_factors(data):
    broken = data.assign(a=data["a"].astype(float))
    broken.loc[3, "a"] = np.nan
    with pytest.raises(InputError, match="grouping column 'a' .* has missing values"):
        build_mixed_design("y ~ x + (1 | a)", broken)
    with pytest.raises(InputError, match="has 1 level"):
        build_mixed_design("y ~ x + (1 | a)", data.assign(a=1))
    with pytest.raises(InputError, match="as many levels as observations"):
        build_mixed_design("y ~ x + (1 | i)", data.assign(i=np.arange(40)))


def test_design_blocks(data):
    design, y = build_mixed_design("y ~ x + (1 | a/b) + (0 + f | a)", data)
    # sorted by levels: a:b (8 levels) first, then the two terms of a (2 levels) in formula order
    assert [(b.group, b.n_levels, b.names) for b in design.blocks] == [
        ("a:b", 8, ("Intercept",)), ("a", 2, ("Intercept",)), ("a", 2, ("f[u]", "f[v]"))]
    assert design.fixed_names == ("Intercept", "x")
    np.testing.assert_array_equal(y, data["y"])
    codes = design.blocks[0].codes
    assert len(np.unique(codes)) == 8 and np.all(codes[:5] == codes[0])
