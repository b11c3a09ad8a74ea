"""Model matrices built without patsy for plain numeric formulas (estimators/design.py) equal
patsy's, and every other formula still goes through patsy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from estimators.design import numeric_matrix, outcome_and_matrix


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "days": rng.integers(0, 10, n),
        "u8": rng.integers(0, 5, n).astype(np.uint8), "f32": rng.normal(size=n).astype(np.float32),
        "g": rng.choice(["a", "b", "c"], n), "flag": rng.random(n) > 0.5, "x_2": rng.normal(size=n),
    })


@pytest.mark.parametrize("rhs", ["x", "1", "1 + x", "x + 1", "0 + x", "x - 1", "x + days + u8", "f32 + x_2", "0 + days + x"])
def test_numeric_formulas_give_patsys_matrix(rhs, data):
    fast = numeric_matrix(rhs, data)
    assert fast is not None
    expected = patsy.dmatrix(rhs, data, NA_action="raise", return_type="matrix", eval_env=0)
    np.testing.assert_array_equal(fast[0], np.asarray(expected, dtype=float))
    assert fast[1] == tuple(expected.design_info.column_names)
    y, X, names, outcome = outcome_and_matrix(f"y ~ {rhs}", data)
    y_p, X_p = patsy.dmatrices(f"y ~ {rhs}", data, NA_action="raise", return_type="matrix", eval_env=0)
    np.testing.assert_array_equal(y, np.asarray(y_p)[:, 0])
    np.testing.assert_array_equal(X, np.asarray(X_p))
    assert names == tuple(X_p.design_info.column_names) and outcome == "y"


@pytest.mark.parametrize("rhs", ["g", "flag", "x:days", "x * days", "C(days)", "np.log(days + 1)", "x + x",
                                 "-1 + x", "1 + 0 + x", "missing", "I(x ** 2)", "center(x)"])
def test_other_formulas_are_left_to_patsy(rhs, data):
    assert numeric_matrix(rhs, data) is None


def test_missing_values_are_left_to_patsy(data):
    data.loc[3, "x"] = np.nan
    assert numeric_matrix("x", data) is None
    with pytest.raises(ValueError, match="missing values"):
        outcome_and_matrix("y ~ x", data)
