"""The helpers added for vectorised fit_batch paths: stack_numeric_outcomes (design.py) and
wald_inference_batch (result.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sims
from estimators.design import InputError, stack_numeric_outcomes, stack_outcomes
from estimators.result import wald_inference, wald_inference_batch

DGP = sims.build("clustered", n_subjects=4, n_trials=3)
FRAMES = [DGP.generate(np.random.default_rng(seed)) for seed in range(4)]


def test_stacks_like_stack_outcomes():
    design, Y = stack_numeric_outcomes("y ~ X", FRAMES, "subject")
    reference_design, reference_Y = stack_outcomes("y ~ X", FRAMES, "subject")
    assert design.terms == reference_design.terms
    np.testing.assert_array_equal(design.X, reference_design.X)
    np.testing.assert_array_equal(design.clusters, reference_design.clusters)
    np.testing.assert_array_equal(Y, reference_Y)


def test_refuses_frames_with_another_design():
    other = FRAMES[1].assign(X=1 - FRAMES[1]["X"])
    assert stack_numeric_outcomes("y ~ X", [FRAMES[0], other], "subject") is None
    shorter = FRAMES[1].iloc[:-1]
    assert stack_numeric_outcomes("y ~ X", [FRAMES[0], shorter], "subject") is None


def test_missing_outcome_is_an_input_error():
    broken = FRAMES[2].copy()
    broken.loc[3, "y"] = np.nan
    with pytest.raises(InputError, match="'y'"):
        stack_numeric_outcomes("y ~ X", [FRAMES[0], broken], "subject")


def test_non_numeric_columns_take_the_general_path():
    labelled = [frame.assign(subject=frame["subject"].map("s{}".format)) for frame in FRAMES]
    design, Y = stack_numeric_outcomes("y ~ X", labelled, "subject")
    np.testing.assert_array_equal(Y, np.column_stack([f["y"] for f in FRAMES]))
    missing_together = [frame.assign(note=np.nan) for frame in FRAMES]  # NaN in the same places: equal
    assert stack_numeric_outcomes("y ~ X", missing_together, "subject") is not None


def test_wald_inference_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    estimate, std_error = rng.normal(size=(5, 2)), rng.uniform(0.5, 2, size=(5, 2))
    df = np.array([7.0, np.inf])
    batch = wald_inference_batch(("a", "b"), estimate, std_error, df, 0.1)
    for r, result in enumerate(batch):
        single = wald_inference(("a", "b"), estimate[r], std_error[r], df, 0.1)
        for column in ("estimate", "std_error", "df", "ci_lower", "ci_upper", "p_value"):
            np.testing.assert_array_equal(getattr(result, column), getattr(single, column))


def test_frames_are_left_alone_even_when_to_numpy_could_be_a_view():
    floats = [frame.astype(float) for frame in FRAMES]
    before = [frame.copy() for frame in floats]
    stack_numeric_outcomes("y ~ X", floats, "subject")
    for frame, copy in zip(floats, before):
        pd.testing.assert_frame_equal(frame, copy, check_exact=True)
