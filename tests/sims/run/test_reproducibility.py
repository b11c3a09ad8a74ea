"""A study's numbers depend only on its config and seed: not on n_jobs or chunking."""
from __future__ import annotations

import numpy as np
import xarray as xr

from sims.run.dataset import build_dataset
from sims.run import runner
from sims.run.seeding import data_rng

OVERRIDES = ("n_reps=30", "estimators={ols: ols, ols_cr2: ols_cr2, lmm_ri: lmm_ri}",
             "grid.dgp.n_subjects=[6,12]")


def run(small_study, *extra):
    study = small_study(*OVERRIDES, *extra)
    return build_dataset(study, runner.run(study))


def numbers(ds: xr.Dataset) -> xr.Dataset:
    """Everything but timings and the runner settings recorded in the config attribute."""
    return ds.drop_vars(["elapsed_s"]).drop_attrs()


def test_identical_across_n_jobs_and_chunk_sizes(small_study):
    reference = run(small_study, "runner.n_jobs=1", "runner.chunk_size=30")
    for extra in (("runner.n_jobs=2", "runner.chunk_size=7"), ("runner.n_jobs=1", "runner.chunk_size=1"),
                  ("runner.n_jobs=2", "runner.chunk_size=30"), ("runner.n_jobs=2", "runner.chunk_size=auto")):
        other = run(small_study, *extra)
        xr.testing.assert_identical(numbers(reference), numbers(other))


def test_seed_changes_the_numbers(small_study):
    a = run(small_study, "runner.n_jobs=1")
    b = run(small_study, "runner.n_jobs=1", "seed=7")
    assert not np.array_equal(a["estimate"].values, b["estimate"].values)


def test_replicate_depends_only_on_seed_cell_and_rep(small_study):
    """Replicate 4 of cell 1 refitted alone equals its value inside the study."""
    ds = run(small_study, "runner.n_jobs=1")
    study = small_study(*OVERRIDES)
    cell = study.cells[1]
    frame = cell.dgp.generate(data_rng(study.seed, cell.index, 4))
    alone = cell.estimators["ols_cr2"].fit(frame).estimate
    inside = ds["estimate"].sel(n_subjects=12, estimator="ols_cr2", rep=4).values
    np.testing.assert_array_equal(alone, inside)


def test_more_replicates_keep_the_first_ones(small_study):
    short = run(small_study, "runner.n_jobs=1")
    longer = run(small_study, "runner.n_jobs=1", "n_reps=45")
    xr.testing.assert_identical(numbers(short)["estimate"], numbers(longer)["estimate"].isel(rep=slice(0, 30)))
