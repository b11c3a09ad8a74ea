"""A small cache of prepared models, keyed by the content of the design columns.

In a Monte Carlo study every chunk of replicates (and, when fitting one replicate at a time,
every replicate) of a fixed design has the same predictor columns. Building the model matrices
with patsy and the cross-products Z'Z, Z'X, X'X then costs more than the fits themselves
(about 5 ms against 0.3 ms per fit on the seed design), so they are kept per design.

The key is the formula, REML flag and a hash of every column except the outcome (names, dtypes
and bytes), so a cached model is used only for data with exactly the same design, and the
results are bitwise those of a fresh build. The cache is per process and holds the last
``MAX_ENTRIES`` designs.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import pandas as pd

from estimators.lmm.design import build_mixed_design
from estimators.lmm.fit import MixedModel
from estimators.lmm.formula import parse_formula

MAX_ENTRIES = 16
_models: "OrderedDict[tuple, MixedModel]" = OrderedDict()


def design_fingerprint(data: pd.DataFrame, outcome: str) -> str:
    """A hash of every column but ``outcome``: names, dtypes and values."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(len(data)).encode())
    for name in data.columns:
        if name == outcome:
            continue
        values = data[name].to_numpy()
        digest.update(f"{name}\x00{values.dtype.str}\x00".encode())
        if values.dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(values).tobytes())
        else:
            digest.update(pd.util.hash_pandas_object(data[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def model_and_outcome(formula: str, data: pd.DataFrame, reml: bool) -> tuple[MixedModel, np.ndarray]:
    """The prepared :class:`MixedModel` of ``formula`` on ``data`` (cached by design) and y."""
    outcome = parse_formula(formula).outcome
    if outcome not in data.columns:  # a transformed outcome such as log(y): no cache
        design, y = build_mixed_design(formula, data)
        return MixedModel.from_design(design, reml), y
    key = (formula, reml, design_fingerprint(data, outcome))
    model = _models.get(key)
    if model is None:
        design, y = build_mixed_design(formula, data)
        model = MixedModel.from_design(design, reml)
        _models[key] = model
        while len(_models) > MAX_ENTRIES:
            _models.popitem(last=False)
    else:
        _models.move_to_end(key)
        y = data[outcome].to_numpy(dtype=float)
        if np.isnan(y).any():
            build_mixed_design(formula, data)  # raises the usual InputError naming the column
    return model, y
