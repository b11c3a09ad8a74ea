"""A chunk drawn as one design frame and an outcome matrix (estimators/batch.py) is fitted to the
same bits as the same replicates handed over as a list of frames, by every estimator with a
batched path, and behaves as a sequence of ordinary frames for the others."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators.batch import SharedDesignFrames, frame_fingerprint, stack_outcomes
from estimators.design import InputError

CLUSTERED = sims.build("clustered", n_subjects=8, n_trials=4)
CROSSED = sims.build("crossed", n_subjects=8, n_items=6)
# A batched path (OLS family, fixed effects, GEE, wild bootstrap, LMM engine, selection), and
# two that fit replicate by replicate (statsmodels MixedLM, Clark's F1).
PRESETS = {
    "ols": CLUSTERED, "ols_cr2": CLUSTERED, "ols_cr3": CLUSTERED, "ols_hc2": CLUSTERED,
    "fe_cr1": CLUSTERED, "gee_exch": CLUSTERED, "ols_wcb": CLUSTERED, "lmm": CLUSTERED,
    "mixedlm_ri": CLUSTERED, "lmm_ri_crossed": CROSSED, "lmm_select_lrt": CROSSED, "f1": CROSSED,
}


def rngs(n: int, seed: int = 5) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, r]) for r in range(n)]


def result_arrays(results) -> list[tuple]:
    return [(r.terms, r.estimate, r.std_error, r.df, r.ci_lower, r.ci_upper, r.p_value, int(r.status), r.extras)
            for r in results]


@pytest.mark.parametrize("preset", PRESETS)
def test_matrix_chunk_fits_like_its_frames(preset):
    dgp = PRESETS[preset]
    chunk = dgp.generate_chunk(rngs(5))
    assert isinstance(chunk, SharedDesignFrames)
    frames = [chunk[r] for r in range(len(chunk))]
    estimator = estimators.build(preset)
    from_matrix = estimator.fit_batch(chunk, rngs(5, seed=9))
    from_frames = estimator.fit_batch(frames, rngs(5, seed=9))
    for a, b in zip(result_arrays(from_matrix), result_arrays(from_frames)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_frames_are_the_design_with_the_outcome_first():
    chunk = CLUSTERED.generate_chunk(rngs(3))
    frame = chunk[1]
    assert list(frame.columns) == ["y", *chunk.columns]
    np.testing.assert_array_equal(frame["y"].to_numpy(), chunk.outcomes[:, 1])
    frame.loc[0, "y"] = np.inf  # a frame is a copy: changing it leaves the chunk alone
    assert np.isfinite(chunk.outcomes).all()
    part = chunk[1:]
    assert isinstance(part, SharedDesignFrames) and len(part) == 2
    pd.testing.assert_frame_equal(part[0], chunk[1])


def test_the_matrix_is_handed_over_for_the_varying_column_only():
    chunk = CLUSTERED.generate_chunk(rngs(2))
    Y, fingerprint = stack_outcomes("y ~ X", chunk)
    assert Y is chunk.outcomes and fingerprint == frame_fingerprint(chunk[0], "y")
    assert stack_outcomes("X ~ y", chunk) is None  # the frames differ in a design column
    Y, _ = stack_outcomes("y ~ X", [chunk[0], chunk[1]])
    assert Y is not chunk.outcomes
    np.testing.assert_array_equal(Y, chunk.outcomes)


def test_invalid_chunks_are_refused():
    design = {"x": np.array([1.0, 2.0, 3.0])}
    with pytest.raises(ValueError, match="outcome"):
        SharedDesignFrames(design, "x", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="outcomes"):
        SharedDesignFrames(design, "y", np.zeros((4, 2)))


def test_missing_outcome_in_the_matrix_is_an_input_error():
    chunk = CLUSTERED.generate_chunk(rngs(3))
    chunk.outcomes[2, 1] = np.nan
    for preset in ("ols_cr1", "lmm"):
        with pytest.raises(InputError, match="'y'"):
            estimators.build(preset).fit_batch(chunk)


def test_fingerprints_tell_label_columns_apart():
    def fingerprint(values):
        return frame_fingerprint(pd.DataFrame({"g": pd.Series(values, dtype=object)}))
    labels = ["ab", "c", "d"]
    assert fingerprint(labels) == fingerprint(list(labels))
    different = [["a", "bc", "d"], ["ab", "c", "e"], ["c", "ab", "d"], ["ab", "c", 4], ["ab", "c", None]]
    prints = {fingerprint(values) for values in different} | {fingerprint(labels)}
    assert len(prints) == len(different) + 1
