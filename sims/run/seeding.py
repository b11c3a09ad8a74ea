"""Seed streams: a replicate's random numbers depend only on (seed, grid cell, replicate).

The root ``SeedSequence(seed)`` has one child per grid cell and each cell one child per
replicate, i.e. the replicate's sequence is ``SeedSequence(seed, spawn_key=(cell, rep))``,
the same as ``SeedSequence(seed).spawn(...)[cell].spawn(...)[rep]`` but computable directly,
so a replicate can be replayed alone and ``n_reps`` can grow without changing earlier
replicates. The data are drawn from that sequence; an estimator that resamples draws from a
child keyed by a CRC-32 of its name (stable across processes, unlike ``hash()``).
"""
from __future__ import annotations

import zlib

import numpy as np


def replicate_sequence(seed: int, cell: int, rep: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(cell, rep))


def data_rng(seed: int, cell: int, rep: int) -> np.random.Generator:
    """The generator a DGP draws replicate ``rep`` of cell ``cell`` from."""
    return np.random.default_rng(replicate_sequence(seed, cell, rep))


def estimator_rng(seed: int, cell: int, rep: int, estimator: str) -> np.random.Generator:
    """The generator estimator ``estimator`` resamples replicate ``rep`` of cell ``cell`` with."""
    key = zlib.crc32(estimator.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(cell, rep, key)))
