"""The result helpers (estimators/result.py): wald_inference_batch gives the numbers of
wald_inference replicate by replicate."""
from __future__ import annotations

import numpy as np

from estimators.result import wald_inference, wald_inference_batch


def test_wald_inference_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    estimate, std_error = rng.normal(size=(5, 2)), rng.uniform(0.5, 2, size=(5, 2))
    df = np.array([7.0, np.inf])
    batch = wald_inference_batch(("a", "b"), estimate, std_error, df, 0.1)
    for r, result in enumerate(batch):
        single = wald_inference(("a", "b"), estimate[r], std_error[r], df, 0.1)
        for column in ("estimate", "std_error", "df", "ci_lower", "ci_upper", "p_value"):
            np.testing.assert_array_equal(getattr(result, column), getattr(single, column))
