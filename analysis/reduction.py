"""How a summary reduces a results store over ``rep``: block by block, every mean first.

The measures (:mod:`analysis.formulas`) use only xarray operations, so a dataset opened lazily
(dask-backed ``xarray.open_zarr``) is summarised chunk by chunk and only the small result is
computed. Sums of squares about a mean need the mean before they can start, which would make
dask keep every block of the store in memory until the mean is known. So every mean over
replicates is taken through :func:`rep_mean`, and :func:`with_means_first` first computes the
means the measures need, then the measures, each block reduced and let go as it is read. Each
mean and each measure is its own dask computation (:func:`one_pass`): in one graph holding many
reductions of the same blocks, dask's scheduler keeps blocks alive (1,000,000 replicates of 4
estimators: 290 MiB peak in one graph, 244 MiB one by one, against 180 MiB for the opened
store). A summary then reads the blocks some 25 times, and its memory is bounded by a few
blocks, whatever ``n_reps``; inputs small enough (``IN_MEMORY_BYTES``) are read from the
store once and the passes read memory (:func:`for_reduction`).

Nothing here knows a measure's formula; the formulas know nothing of dask beyond taking their
means through :func:`rep_mean`.
"""
from __future__ import annotations

import contextlib
import warnings
from contextvars import ContextVar

import dask
import dask.local
import numpy as np
import xarray as xr

INPUTS = ("estimate", "std_error", "ci_lower", "ci_upper", "p_value", "status", "truth")
CHUNK_BYTES = 2 * 2**20  # per input variable; the reductions hold a few dozen such blocks at once
# Inputs up to this size are read from the store once, into memory, before the passes.
IN_MEMORY_BYTES = 128 * 2**20
MEAN_ROUNDS = 3  # the deepest nesting of means over replicates in a measure or an influence function
# dask's synchronous scheduler, passed as the function itself: named ("synchronous"), dask
# first imports dask.distributed to look for a client, which costs more than a small summary.
IN_THIS_THREAD = dask.local.get_sync


def for_reduction(ds: xr.Dataset) -> xr.Dataset:
    """The variables the measures read; when dask-backed, rechunked for reductions over ``rep``.

    A store is chunked for writing (one grid cell and a few replicates per chunk), which makes
    thousands of tiny tasks for a summary. Here every chunk spans all grid cells, estimators and
    terms and as many replicates as fit in about ``CHUNK_BYTES`` (at least the store's own rep
    chunk), so memory stays bounded whatever ``n_reps`` is and the task graph stays small.

    Inputs of at most ``IN_MEMORY_BYTES`` are read once into memory and then cut into the same
    blocks: each of the passes then reads memory instead of the store's files, and, as every
    block and every operation on it is the same, gives the same bits as reading the store. When
    they make one block, they stay numpy arrays (no passes at all): a reduction of one block
    is numpy's reduction of the whole array either way.
    """
    ds = ds[[name for name in INPUTS if name in ds]]
    if ds["estimate"].chunks is None:
        return ds
    per_rep = 8 * ds["estimate"].size // ds.sizes["rep"]
    stored = max(ds["estimate"].chunksizes["rep"])
    rep_chunk = int(min(ds.sizes["rep"], max(stored, CHUNK_BYTES // max(per_rep, 1))))
    if ds.nbytes <= IN_MEMORY_BYTES:
        ds = ds.compute(scheduler=IN_THIS_THREAD)
        if rep_chunk >= ds.sizes["rep"]:
            return ds
    return ds.chunk({**{dim: -1 for dim in ds.dims if dim != "rep"}, "rep": rep_chunk})


@contextlib.contextmanager
def quiet_arithmetic():
    """Silence numpy's warnings for 0/0 and the like while measures are computed: a cell where
    no replicate is valid, or a relative bias where theta = 0, is NaN by design. (``np.errstate``
    would not reach dask's worker threads; the warning filters do.) Means are numpy's, never
    bottleneck's or numbagg's, so that data in memory give the bits of the same data read lazily."""
    with warnings.catch_warnings(), np.errstate(all="ignore"), xr.set_options(use_bottleneck=False, use_numbagg=False):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def rep_sum(x: xr.DataArray) -> xr.DataArray:
    """sum(x_i) over replicates, NaN skipped (a replicate that does not count is NaN)."""
    return x.sum("rep", skipna=True)


class RepMeans:
    """The means over replicates of one summary's dask-backed arrays: collected while the
    measures' lazy graph is built, then computed, each in its own pass over the store."""

    def __init__(self):
        self.pending: dict[str, xr.DataArray] = {}
        self.known: dict[str, xr.DataArray] = {}

    def mean(self, x: xr.DataArray) -> xr.DataArray:
        known = self.known.get(x.data.name)
        if known is not None:
            return known
        self.pending[x.data.name] = x
        return x.mean("rep")

    def compute_pending(self) -> None:
        for name, x in self.pending.items():
            self.known[name], = one_pass(x.mean("rep"))
        self.pending.clear()


def one_pass(*arrays):
    """``dask.compute(*arrays)`` in this thread: one pass over the blocks the arrays read, each
    reduced and let go in turn (dask's threaded scheduler would keep a block per worker thread
    and spread the allocations over per-thread malloc arenas, which a summary of a few
    dozen small reductions gains little from)."""
    return dask.compute(*arrays, scheduler=IN_THIS_THREAD)


_rep_means: ContextVar[RepMeans | None] = ContextVar("rep_means", default=None)


def rep_mean(x: xr.DataArray) -> xr.DataArray:
    """mean(x_i) over replicates (NaN skipped); for a dask-backed ``x`` inside
    :func:`with_means_first`, the value computed in its first pass."""
    means = _rep_means.get()
    if means is None or x.chunks is None:
        return x.mean("rep")
    return means.mean(x)


def with_means_first(build):
    """``build()`` (lazy measures) after passes over the store have computed every mean over
    replicates that ``build`` takes, so that what it returns reads each block once. Building
    collects the means; a mean of something centred on another mean (a mean squared deviation)
    appears once that one is known, hence the rounds (any mean still pending after them is left
    lazy in the result: the same numbers, with more blocks held)."""
    means = RepMeans()
    token = _rep_means.set(means)
    try:
        result = build()
        for _ in range(MEAN_ROUNDS):
            if not means.pending:
                break
            means.compute_pending()
            result = build()
        return result
    finally:
        _rep_means.reset(token)
