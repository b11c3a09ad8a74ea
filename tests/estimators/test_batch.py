"""The shared-design path (estimators/batch.py): a chunk's outcomes are stacked only when the
frames differ in the outcome alone, a cached design gives the bits of a fresh build, a changed
design is not reused, and the caches stay bounded (least recently used out)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import estimators
import sims
from estimators import base
from estimators.batch import DesignCache, plain_outcome, stack_outcomes
from estimators.design import InputError
from estimators.lmm import cache as lmm_cache

DGP = sims.build("clustered", n_subjects=6, n_trials=3)
FRAMES = [DGP.generate(np.random.default_rng(seed)) for seed in range(7)]
PRESETS = ["ols", "ols_hc2", "ols_cr1", "ols_cr2", "ols_cr3", "fe_cr1", "gee_ind", "gee_exch", "ols_wcb"]


def bits(results) -> bytes:
    """Every number a study keeps, as raw bytes (NaN payloads included)."""
    return b"".join(
        np.ascontiguousarray(np.broadcast_to(np.asarray(part, dtype=float), r.estimate.shape)).tobytes()
        for r in results for part in (r.estimate, r.std_error, r.df, r.ci_lower, r.ci_upper, r.p_value)
    )


def rngs(n: int) -> list[np.random.Generator]:
    return [np.random.default_rng([3, r]) for r in range(n)]


@pytest.fixture(autouse=True)
def empty_cache():
    base.designs.clear()
    yield
    base.designs.clear()


@pytest.mark.parametrize("preset", PRESETS)
def test_hit_gives_the_bits_of_a_miss(preset, monkeypatch):
    estimator = estimators.build(preset)
    params = estimator.get_params()
    miss = bits(estimator.fit_batch(FRAMES, rngs(7)))
    miss_one = bits([estimator.fit(frame, rng) for frame, rng in zip(FRAMES[:2], rngs(2))])
    assert len(base.designs) == 1

    def no_patsy(*args, **kwargs):
        raise AssertionError("a cached design was rebuilt")

    monkeypatch.setattr(base, "build_design", no_patsy)
    assert bits(estimator.fit_batch(FRAMES, rngs(7))) == miss
    assert bits([estimator.fit(frame, rng) for frame, rng in zip(FRAMES[:2], rngs(2))]) == miss_one
    chunked = [r for start in range(0, len(FRAMES), 3)
               for r in estimator.fit_batch(FRAMES[start:start + 3], rngs(7)[start:start + 3])]
    assert bits(chunked) == miss
    assert estimator.get_params() == params


def test_a_changed_design_is_not_reused():
    estimator = estimators.build("ols_cr2")
    estimator.fit_batch(FRAMES[:2])
    moved = [frame.assign(X=frame["X"] * 2.0) for frame in FRAMES[:2]]
    cached = bits(estimator.fit_batch(moved))
    base.designs.clear()
    assert bits(estimator.fit_batch(moved)) == cached
    assert len(base.designs) == 1
    assert cached != bits(estimator.fit_batch(FRAMES[:2]))


def test_missing_outcome_on_a_hit_names_the_column():
    estimator = estimators.build("ols_cr1")
    estimator.fit(FRAMES[0])
    broken = FRAMES[0].copy()
    broken.loc[3, "y"] = np.nan
    with pytest.raises(InputError, match="'y'"):
        estimator.fit(broken)


def test_transformed_outcome_is_not_cached():
    frame = FRAMES[0].assign(y=FRAMES[0]["y"].abs() + 1.0)
    log_fit = estimators.build("ols_cr1", formula="np.log(y) ~ X").fit(frame)
    assert len(base.designs) == 0
    np.testing.assert_allclose(log_fit.estimate, estimators.build("ols_cr1").fit(frame.assign(y=np.log(frame["y"]))).estimate)
    assert plain_outcome("y ~ X + y", frame.dtypes) is None
    assert plain_outcome("y ~ X", frame.dtypes, reads=("y",)) is None  # the cluster column
    assert plain_outcome("y ~ X", frame.assign(y=frame["y"].astype(str)).dtypes) is None
    assert plain_outcome("y ~ X + y_lag", frame.dtypes) == "y"


def test_cache_stays_bounded():
    estimator = estimators.build("ols_cr2")
    shifted = [[frame.assign(X=frame["X"] + shift) for frame in FRAMES[:2]]
               for shift in range(base.MAX_DESIGNS + 3)]
    for frames in shifted:
        estimator.fit_batch(frames)
        assert len(base.designs) <= base.MAX_DESIGNS
    assert len(base.designs) == base.MAX_DESIGNS


def test_least_recently_used_goes_first():
    cache = DesignCache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the least recently used
    cache.put("c", 3)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert len(cache) == 2
    assert cache.get_or_build("a", lambda: 0) == 1 and cache.get_or_build("d", lambda: 4) == 4
    assert "c" not in cache
    with pytest.raises(ValueError, match="max_entries"):
        DesignCache(max_entries=0)


def test_mixed_models_share_the_path():
    frames = FRAMES[:3]
    lmm_cache.models.clear()
    estimator = estimators.build("lmm")
    together = bits(estimator.fit_batch(frames))
    assert len(lmm_cache.models) == 1
    assert bits([estimator.fit(frame) for frame in frames]) == together
    assert len(lmm_cache.models) == 1


# --- stack_outcomes --------------------------------------------------------------------------

def test_stacks_the_outcome_column_of_each_frame():
    Y, fingerprint = stack_outcomes("y ~ X", FRAMES)
    np.testing.assert_array_equal(Y, np.column_stack([f["y"] for f in FRAMES]))
    assert stack_outcomes("y ~ X", FRAMES[2:4])[1] == fingerprint  # the design, not the outcomes


def test_refuses_frames_with_another_design():
    other = FRAMES[1].assign(X=1 - FRAMES[1]["X"])
    assert stack_outcomes("y ~ X", [FRAMES[0], other]) is None
    shorter = FRAMES[1].iloc[:-1]
    assert stack_outcomes("y ~ X", [FRAMES[0], shorter]) is None
    reordered = FRAMES[1][list(FRAMES[1].columns)[::-1]]
    assert stack_outcomes("y ~ X", [FRAMES[0], reordered]) is None


def test_missing_outcome_is_an_input_error():
    broken = FRAMES[2].copy()
    broken.loc[3, "y"] = np.nan
    with pytest.raises(InputError, match="'y'"):
        stack_outcomes("y ~ X", [FRAMES[0], broken])


def test_non_numeric_columns_and_missing_values_in_the_design():
    labelled = [frame.assign(subject=frame["subject"].map("s{}".format)) for frame in FRAMES]
    Y, _ = stack_outcomes("y ~ X", labelled, reads=("subject",))
    np.testing.assert_array_equal(Y, np.column_stack([f["y"] for f in FRAMES]))
    missing_together = [frame.assign(note=np.nan) for frame in FRAMES]  # NaN in the same places: equal
    assert stack_outcomes("y ~ X", missing_together) is not None


def test_frames_are_left_alone_even_when_to_numpy_could_be_a_view():
    floats = [frame.astype(float) for frame in FRAMES]
    before = [frame.copy() for frame in floats]
    Y, _ = stack_outcomes("y ~ X", floats)
    Y[:] = 0.0
    for frame, copy in zip(floats, before):
        pd.testing.assert_frame_equal(frame, copy, check_exact=True)
