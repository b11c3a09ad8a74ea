"""The per-process design cache (estimators/design_cache.py): a hit gives the bits of a miss,
a changed design is not reused, and the cache stays bounded (least recently used out)."""
from __future__ import annotations

import numpy as np
import pytest

import estimators
import sims
from estimators import design_cache
from estimators.design_cache import DesignCache, design_and_outcome

DGP = sims.build("clustered", n_subjects=6, n_trials=3)
FRAMES = [DGP.generate(np.random.default_rng(seed)) for seed in range(7)]
PRESETS = ["ols", "ols_hc2", "ols_cr1", "ols_cr2", "ols_cr3", "fe_cr1", "gee_ind", "gee_exch"]


def bits(results) -> bytes:
    """Every number a study keeps, as raw bytes (NaN payloads included)."""
    return b"".join(
        np.ascontiguousarray(np.broadcast_to(np.asarray(part, dtype=float), r.estimate.shape)).tobytes()
        for r in results for part in (r.estimate, r.std_error, r.df, r.ci_lower, r.ci_upper, r.p_value)
    )


@pytest.fixture(autouse=True)
def empty_cache():
    design_cache.designs.clear()
    yield
    design_cache.designs.clear()


@pytest.mark.parametrize("preset", PRESETS)
def test_hit_gives_the_bits_of_a_miss(preset, monkeypatch):
    estimator = estimators.build(preset)
    params = estimator.get_params()
    miss = bits(estimator.fit_batch(FRAMES))
    miss_one = bits([estimator.fit(frame) for frame in FRAMES[:2]])
    assert len(design_cache.designs) == 1

    def no_patsy(*args, **kwargs):
        raise AssertionError("a cached design was rebuilt")

    monkeypatch.setattr(design_cache, "build_design", no_patsy)
    assert bits(estimator.fit_batch(FRAMES)) == miss
    assert bits([estimator.fit(frame) for frame in FRAMES[:2]]) == miss_one
    chunked = [r for start in range(0, len(FRAMES), 3) for r in estimator.fit_batch(FRAMES[start:start + 3])]
    assert bits(chunked) == miss
    assert estimator.get_params() == params


def test_a_changed_design_is_not_reused():
    estimator = estimators.build("ols_cr2")
    estimator.fit_batch(FRAMES[:2])
    moved = [frame.assign(X=frame["X"] * 2.0) for frame in FRAMES[:2]]
    cached = bits(estimator.fit_batch(moved))
    design_cache.designs.clear()
    assert bits(estimator.fit_batch(moved)) == cached
    assert len(design_cache.designs) == 1
    assert cached != bits(estimator.fit_batch(FRAMES[:2]))


def test_missing_outcome_on_a_hit_names_the_column():
    design_and_outcome("y ~ X", FRAMES[0], "subject")
    broken = FRAMES[0].copy()
    broken.loc[3, "y"] = np.nan
    with pytest.raises(estimators.design.InputError, match="'y'"):
        design_and_outcome("y ~ X", broken, "subject")


def test_transformed_outcome_is_not_cached():
    frame = FRAMES[0].assign(y=FRAMES[0]["y"].abs() + 1.0)
    design_and_outcome("np.log(y) ~ X", frame, "subject")
    design_and_outcome("y ~ X + y", frame, "subject")
    assert len(design_cache.designs) == 0


def test_cache_stays_bounded():
    estimator = estimators.build("ols_cr2")
    shifted = [[frame.assign(X=frame["X"] + shift) for frame in FRAMES[:2]]
               for shift in range(design_cache.MAX_DESIGNS + 3)]
    for frames in shifted:
        estimator.fit_batch(frames)
        assert len(design_cache.designs) <= design_cache.MAX_DESIGNS
    assert len(design_cache.designs) == design_cache.MAX_DESIGNS


def test_least_recently_used_goes_first():
    cache = DesignCache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the least recently used
    cache.put("c", 3)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert len(cache) == 2
    with pytest.raises(ValueError, match="max_entries"):
        DesignCache(max_entries=0)
