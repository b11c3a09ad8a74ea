"""The model matrices of a linear mixed model, y = X beta + Z b + e, from a parsed formula.

Z is never formed. Each random term contributes a block Z_t whose row i holds the term's model
matrix row x_ti in the k_t columns of level g_t(i) (Bates et al. 2015, eq. 6: Z_t is the
Khatri-Rao product of the level indicators and the model matrix); the block is stored as the
pair (level codes, n x k_t matrix). Within a term, effects are ordered level-major
(level j, column a -> index j * k_t + a), as in lme4.

Terms are sorted by decreasing number of levels (stable), as lme4's ``mkReTrms`` and
MixedModels.jl do: the first term's Z_1'Z_1 is then the largest block and it is block-diagonal,
so the blocked Cholesky factors it level by level and fill-in is confined to later, smaller
blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import patsy

from estimators.design import InputError, numeric_matrix, outcome_and_matrix
from estimators.lmm.formula import MixedFormula, RandomTerm, parse_formula


@dataclass(frozen=True)
class RandomBlock:
    """One random-effects term on the data: level codes 0..l-1 and the n x k model matrix."""

    term: RandomTerm
    codes: np.ndarray
    n_levels: int
    matrix: np.ndarray
    names: tuple[str, ...]

    @property
    def k(self) -> int:
        return self.matrix.shape[1]

    @property
    def group(self) -> str:
        return self.term.group

    @property
    def size(self) -> int:
        """Number of random effects of the term, q_t = l_t * k_t."""
        return self.n_levels * self.k


@dataclass(frozen=True)
class MixedDesign:
    """Fixed-effects matrix X with its column names, and the random blocks sorted by levels."""

    formula: MixedFormula
    X: np.ndarray
    fixed_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def without_fixed(self, column: int) -> "MixedDesign":
        """The same design with one fixed-effect column removed (the null model of an LRT)."""
        keep = [j for j in range(self.p) if j != column]
        return MixedDesign(self.formula, self.X[:, keep], tuple(self.fixed_names[j] for j in keep), self.blocks)


def build_mixed_design(formula: str | MixedFormula, data: pd.DataFrame, observation_levels: bool = False
                       ) -> tuple[MixedDesign, np.ndarray]:
    """The design of an lme4 formula on ``data``, and the outcome vector.

    Missing values, missing columns and grouping factors with fewer than 2 levels are refused
    with an :class:`InputError` naming the column; so is a factor with as many levels as
    observations, unless ``observation_levels`` (a GLMM's observation-level random effect,
    which no residual confounds).
    """
    parsed = parse_formula(formula) if isinstance(formula, str) else formula
    y, X, fixed_names, _ = outcome_and_matrix(parsed.fixed_formula, data)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise InputError(f"fixed-effects model matrix of {parsed.fixed_formula!r} is rank deficient")
    blocks = [_random_block(term, data, parsed, observation_levels) for term in parsed.random]
    order = sorted(range(len(blocks)), key=lambda t: -blocks[t].n_levels)  # stable: ties keep formula order
    design = MixedDesign(parsed, X, fixed_names, tuple(blocks[t] for t in order))
    return design, y


def _random_block(term: RandomTerm, data: pd.DataFrame, parsed: MixedFormula, observation_levels: bool = False
                  ) -> RandomBlock:
    for name in term.factors:
        if name not in data.columns:
            raise InputError(
                f"grouping column {name!r} of random term {term} is not in the data "
                f"(columns: {', '.join(map(str, data.columns))})")
        if data[name].isna().any():
            raise InputError(f"grouping column {name!r} of random term {term} has missing values")
    codes, n_levels = _level_codes(data, term.factors)
    if n_levels < 2:
        raise InputError(f"grouping factor {term.group!r} of random term {term} has {n_levels} level; at least 2 are needed")
    if n_levels >= len(data) and not observation_levels:
        raise InputError(
            f"grouping factor {term.group!r} of random term {term} has as many levels as observations "
            f"({n_levels}): its effects are confounded with the residual")
    simple = numeric_matrix(term.lhs, data)
    if simple is not None:
        return RandomBlock(term, codes, n_levels, simple[0], simple[1])
    del simple  # patsy reads names from this frame (eval_env=0): no new local may shadow a column
    try:
        matrix = patsy.dmatrix(term.lhs, data, NA_action="raise", return_type="matrix", eval_env=0)
    except patsy.PatsyError as error:
        text = str(error).splitlines()[0]
        if "is not defined" in text:
            name = text.split("'")[1] if "'" in text else text
            raise InputError(f"column {name!r} in random term {term} is not in the data") from None
        raise InputError(f"random term {term} cannot be evaluated: {text}") from None
    if matrix.shape[1] == 0:
        raise InputError(f"random term {term} has no columns")
    return RandomBlock(term, codes, n_levels, np.asarray(matrix, dtype=float), tuple(matrix.design_info.column_names))


def _level_codes(data: pd.DataFrame, factors: Sequence[str]) -> tuple[np.ndarray, int]:
    """Codes 0..l-1 of the observed combinations of ``factors`` (sorted), and l."""
    if len(factors) == 1:
        codes, uniques = pd.factorize(data[factors[0]], sort=True)
        return codes.astype(np.intp), len(uniques)
    # The combinations in lexicographic order of the factors' sorted levels: the same codes as
    # factorizing the tuples, without building them.
    combined, n_levels = np.zeros(len(data), dtype=np.int64), 1
    for name in factors:
        codes, uniques = pd.factorize(data[name], sort=True)
        combined, n_levels = pd.factorize(combined * len(uniques) + codes, sort=True)
        n_levels = len(n_levels)
    return combined.astype(np.intp), n_levels
