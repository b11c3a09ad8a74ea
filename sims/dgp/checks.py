"""The DGP conformance suite: small, separately named checks that every data-generating process
must pass, in the spirit of scikit-learn's ``check_estimator``.

``check_dgp(dgp)`` runs them all and raises one AssertionError naming every check that failed;
``CHECKS`` lists them, so that a test can give each its own id::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_my_dgp(check):
        check(MyDGP())

Each check takes a DGP instance and raises AssertionError (or the exception that escaped the
DGP), or ``unittest.SkipTest`` with the reason when it does not apply to the DGP (pytest shows
it as skipped; ``check_dgp`` does not count it as a pass). Conventions the checks rely on, which every DGP in ``sims`` follows:

- ``columns`` lists the outcome first; the other columns are the design.
- A truth term is ``Intercept`` or a design column (the term names patsy gives them), a
  treatment-coded level of a design column as patsy names it (``condition[T.b]``), or one of
  those followed by ``_<qualifier>`` for a second estimand of the same term
  (``finishtime_marginal``).
- Parameters are dataclass fields with plain types (int, float, str, bool or a ``Literal`` of
  options). Every float must be finite, every ``Literal`` one of its options, every int an
  integer; ``n_*`` counts must be >= 1; ``var_*`` variances and ``sd_*`` / ``*_sd`` standard
  deviations >= 0; ``*correlation*`` parameters within [-1, 1]. Invalid values raise
  :class:`~sims.dgp.base.InvalidParameter` naming the parameter.
"""
from __future__ import annotations

import dataclasses
import math
import random
import typing
import unittest
from typing import Any, Callable, Iterator, Literal

import numpy as np
import pandas as pd
import yaml

from estimators.batch import SharedDesignFrames
from estimators.checks import CheckReport, run_checks
from sims.dgp.base import DGP, InvalidParameter
from estimators.presets import instantiate

SEED = 20210415
OTHER_SEED = 253


def _draw(dgp: DGP, seed: int = SEED) -> pd.DataFrame:
    return dgp.generate(np.random.default_rng(seed))


def _outcome(dgp: DGP) -> str:
    return next(iter(dgp.columns))


def check_generate_declared_columns(dgp: DGP) -> None:
    """generate returns a non-empty DataFrame with exactly the declared columns, in order, of
    the declared dtype kinds, a default RangeIndex and no missing values."""
    frame = _draw(dgp)
    assert isinstance(frame, pd.DataFrame), f"generate returned a {type(frame).__name__}, not a DataFrame"
    assert len(frame) > 0, "generate returned no rows"
    assert list(frame.columns) == list(dgp.columns), f"columns {list(frame.columns)} differ from the declared {list(dgp.columns)}"
    for column, kind in dgp.columns.items():
        actual = frame[column].dtype.kind
        assert actual == kind, f"column {column!r} has dtype kind {actual!r}, declared {kind!r}"
    assert frame.index.equals(pd.RangeIndex(len(frame))), "the index is not 0..n-1"
    missing = [c for c in frame.columns if frame[c].isna().any()]
    assert not missing, f"columns with missing values: {missing}"


def check_same_rng_same_frame(dgp: DGP) -> None:
    """Two generators seeded alike give identical frames."""
    pd.testing.assert_frame_equal(_draw(dgp), _draw(dgp), check_exact=True)


def check_different_rng_different_outcome(dgp: DGP) -> None:
    """Differently seeded generators give different outcomes: the DGP draws from the rng it gets."""
    outcome = _outcome(dgp)
    first, second = _draw(dgp)[outcome], _draw(dgp, OTHER_SEED)[outcome]
    assert len(first) != len(second) or not np.array_equal(first.to_numpy(), second.to_numpy()), \
        f"two seeds gave the same {outcome!r}"


def check_global_random_state_untouched(dgp: DGP) -> None:
    """generate draws only from its rng, never from numpy's or Python's global generators, so
    that a replicate depends on its seed alone."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    _draw(dgp)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(numpy_state, after)), "generate used numpy's global random state"
    assert random.getstate() == python_state, "generate used Python's global random state"


def check_fixed_design_is_fixed(dgp: DGP) -> None:
    """A DGP declaring ``fixed_design`` gives the same design columns in every replicate."""
    if not dgp.fixed_design:
        raise unittest.SkipTest(f"{type(dgp).__name__} does not declare fixed_design")
    outcome = _outcome(dgp)
    pd.testing.assert_frame_equal(
        _draw(dgp).drop(columns=outcome), _draw(dgp, OTHER_SEED).drop(columns=outcome), check_exact=True,
        obj=f"design columns (fixed_design is True, only {outcome!r} may change)",
    )


def check_chunk_equals_replicates(dgp: DGP) -> None:
    """generate_chunk gives, replicate for replicate, the frames generate gives from the same
    generators; a fixed design with an ``outcome`` gives them as one design and an outcome
    matrix (:class:`~estimators.batch.SharedDesignFrames`, see :mod:`sims.dgp.base`)."""
    matrix_path = dgp.fixed_design and dgp.outcome is not None
    if not matrix_path and type(dgp).generate_chunk is DGP.generate_chunk:
        raise unittest.SkipTest(f"{type(dgp).__name__} draws chunks with the base class's one generate per replicate")
    seeds = (SEED, OTHER_SEED, SEED + 1)
    chunk = dgp.generate_chunk([np.random.default_rng(seed) for seed in seeds])
    assert len(chunk) == len(seeds), f"generate_chunk returned {len(chunk)} replicates for {len(seeds)} generators"
    if matrix_path:
        assert isinstance(chunk, SharedDesignFrames), \
            f"a fixed design with outcome {dgp.outcome!r} gave a {type(chunk).__name__}, not SharedDesignFrames"
    for r, seed in enumerate(seeds):
        pd.testing.assert_frame_equal(chunk[r], _draw(dgp, seed), check_exact=True,
                                      obj=f"replicate {r} of generate_chunk against generate")


def check_truth_terms(dgp: DGP) -> None:
    """truth() maps term names that exist (see the module docstring) to finite numbers, the
    same on every call."""
    truth = dgp.truth()
    assert isinstance(truth, dict) and truth, "truth() must be a non-empty dict"
    assert dgp.truth() == truth, "truth() changed between calls"
    design = [c for c in dgp.columns if c != _outcome(dgp)]
    bases = ["Intercept", *design]
    for term, value in truth.items():
        assert isinstance(term, str), f"term {term!r} is not a string"
        root = term.split("[T.", 1)[0] if term.endswith("]") and "[T." in term else term
        known = root in design or any(
            term.startswith(f"{base}_") and len(term) > len(base) + 1 for base in bases) or term in bases
        assert known, (f"truth term {term!r} is neither Intercept nor a design column ({', '.join(design)}), "
                       "nor a level of one (column[T.level]), nor one of them with a _qualifier")
        assert isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)), \
            f"truth of {term!r} is a {type(value).__name__}, not a number"
        assert math.isfinite(value), f"truth of {term!r} is {value}"


def check_params_round_trip(dgp: DGP) -> None:
    """params() holds plain YAML values from which the same DGP is rebuilt (as a config file
    would rebuild it), and the rebuilt DGP draws the same data."""
    params = dgp.params()
    assert set(params) == {f.name for f in dataclasses.fields(dgp)}, "params() keys differ from the dataclass fields"
    from_yaml = yaml.safe_load(yaml.safe_dump(params))  # raises on numpy scalars and other non-YAML values
    assert from_yaml == params, "params() does not survive a YAML round trip"
    target = f"{type(dgp).__module__}.{type(dgp).__qualname__}"
    # The class is imported already (a user's plug-in lives outside the project's packages).
    rebuilt = instantiate({"_target_": target, **from_yaml}, key="dgp", allowed=(type(dgp).__module__,))
    assert rebuilt == dgp, f"rebuilding from params() gave {rebuilt!r}, not {dgp!r}"
    pd.testing.assert_frame_equal(_draw(rebuilt), _draw(dgp), check_exact=True)


def _is_literal(kind: Any) -> bool:
    return typing.get_origin(kind) is Literal


def invalid_values(dgp: DGP) -> Iterator[tuple[str, Any]]:
    """(parameter, value) pairs that the conventions in the module docstring make invalid."""
    hints = typing.get_type_hints(type(dgp))
    for field in dataclasses.fields(dgp):
        name, kind = field.name, hints[field.name]
        if kind is float:
            yield name, math.nan
        if kind is int:
            yield name, 1.5
        if kind is bool:
            yield name, "yes"
        if _is_literal(kind):
            yield name, "no-such-option"
        if name.startswith("n_"):
            yield name, 0
        if name.startswith(("var_", "sd_")) or name.endswith("_sd"):
            yield name, -1.0
        if "correlation" in name:
            yield name, 1.5


def assert_rejects(dgp: DGP, name: str, value: Any) -> None:
    """Rebuilding ``dgp`` with ``name=value`` raises InvalidParameter naming ``name``."""
    try:
        type(dgp)(**{**dgp.params(), name: value})
    except InvalidParameter as error:
        assert error.parameter == name and str(error).startswith(f"{name}:"), \
            f"{name}={value!r} raised an error about {error.parameter!r}: {error}"
    else:
        raise AssertionError(f"{name}={value!r} was accepted")


def check_invalid_parameters_rejected(dgp: DGP) -> None:
    """Every invalid value the conventions predict raises InvalidParameter naming its parameter."""
    for name, value in invalid_values(dgp):
        assert_rejects(dgp, name, value)


CHECKS: tuple[Callable[[DGP], None], ...] = (
    check_generate_declared_columns,
    check_same_rng_same_frame,
    check_different_rng_different_outcome,
    check_global_random_state_untouched,
    check_fixed_design_is_fixed,
    check_chunk_equals_replicates,
    check_truth_terms,
    check_params_round_trip,
    check_invalid_parameters_rejected,
)


def check_dgp(dgp: DGP) -> CheckReport:
    """Run every check on ``dgp`` and return the report (passed, skipped with reasons); raise
    one AssertionError listing each failing check."""
    return run_checks(CHECKS, dgp, type(dgp).__name__)
