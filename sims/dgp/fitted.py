"""Parametric replicates of a (generalised) linear mixed model fitted to pilot data: simr's
``powerSim``, ``extend`` and ``fixef<-`` (Green & MacLeod 2016, Methods Ecol. Evol. 7:493).

The pilot data ``data`` (a CSV or Parquet file) are fitted once with the lme4 formula
``formula`` by clustersim's engine: for ``family: gaussian`` (the default) the linear mixed
model (:class:`estimators.lmm.LMM`, REML or ML), and each replicate draws, on the pilot's design
or an extension of it,

    eta = X beta + sum_t Z_t b_t,   b_tj ~ N(0, Sigma_t) for each level j of term t,
    y = eta + e,   e ~ N(0, sigma^2 I),

new random effects for every level of every random term and new residuals. For ``family:
binomial`` or ``poisson`` the pilot is fitted by maximum likelihood (Laplace) as lme4's
``glmer`` (:class:`estimators.glmm.GLMM`, ``link`` logit or probit, log; null: the canonical
link), and each replicate draws the same eta and, row by row,

    y ~ Bernoulli(g^{-1}(eta))  (binomial: 0/1, one row per trial),   y ~ Poisson(exp(eta)),

as the other binary and count DGPs do (:func:`estimators.families.inverse_link`). beta, the
covariances Sigma_t (lme4's ``VarCorr``) and sigma are taken from the pilot fit, except where
overridden on the model's own (link) scale:

- ``fixed``: term -> value, by the engine's term names (``Intercept``, ``Days``,
  ``condition[T.b]``); ``{Days: 0}`` for Type I error, a smallest effect of interest for power.
- ``sd``: group -> {effect: SD}, e.g. ``{Subject: {Days: 3.0}}``; correlations are kept.
- ``cor``: group -> {effect: {other effect: correlation}}, or group -> correlation for a term
  with two effects (``{Subject: 0.3}``).
- ``sigma``: the residual SD (gaussian only; a binomial or Poisson model has none).

Groups and effects are named as :meth:`estimators.lmm.MixedFit.varcorr` lists them (the
grouping factor, ``a:b`` for an interaction; the effect's patsy column name, ``Intercept``).

The design (every column but the outcome) is the same in every replicate. ``extend`` and
``within`` change it, as simr's ``extend`` does:

- ``extend: {factor: n}`` gives grouping factor ``factor`` exactly n levels: the first n pilot
  levels (in sorted order, as simr's ``powerCurve``) when n is at most the pilot's number, else
  all of them plus new levels, level ``L + j`` a copy of pilot level ``j mod L`` with all its
  rows (so a new subject sees the same items in the same conditions as the subject it copies,
  keeping crossing and counterbalanced lists, which the cycle runs through). Numeric labels
  continue after the largest; other labels become ``<copied label>_<copy number>``. Several
  factors are extended one after another in the order they first appear in the formula.
- ``within: {column: n}`` gives every cell, a combination of ``column`` and every grouping
  factor, exactly n rows: its rows cycled (copies) or the first n of them. Applied after
  ``extend``, in the data's column order.

Only the grouping columns of copied rows change; every other value, and so the rows of X and
of each Z_t, is the copied pilot row's (patsy transforms such as ``center(x)`` keep the pilot's
values).

The data's rows with a missing value in a column the formula names are dropped (lme4's
``na.omit``), then the other columns that still have missing values. A binomial pilot outcome
must be 0/1 (``cbind(successes, failures)`` is refused: one row per trial), a Poisson one a
count. A file is read once per content: it is fitted once per process for each (SHA-256 of the
file, formula, reml, family, link); its SHA-256 is the DGP's :meth:`provenance`, which the
results store records with the config (``dgp.data_sha256``), so that a changed file is refused
on resume like a changed config. ``data`` may name a data set shipped with clustersim as
``builtin:<name>`` (``builtin:sleepstudy``, lme4's ``sleepstudy``; ``builtin:verbagg``, lme4's
``VerbAgg``, binary: ``sims/dgp/data/``); a relative path is relative to the current directory.

Columns: the formula's outcome (float, also for 0/1 and counts) first, then the data's other
columns in their order (those the formula does not name are copied along with their rows, e.g.
a list column for another estimator's model). Truth: the fitted (or overridden) fixed effects, by term name
(for binomial and Poisson on the link scale, conditional on the random effects).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, NamedTuple, get_args

import numpy as np
import pandas as pd
import patsy

from estimators.design import InputError
from estimators.families import LinkName, inverse_link, link_or_canonical, require_family_and_link
from estimators.glmm import GLMM, GLMMFit
from estimators.lmm import LMM, MixedFit
from estimators.lmm.formula import MixedFormula, RandomTerm, parse_formula
from estimators.response import cbind_parts, response
from sims.dgp.base import DGP, read_only, require, require_positive_definite

BUILTIN = "builtin:"
DATA_DIR = Path(__file__).resolve().parent / "data"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
CACHE_SIZE = 8  # pilot fits kept per process
PilotFamily = Literal["gaussian", "binomial", "poisson"]
GAUSSIAN = "gaussian"

_IDENTIFIER = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_QUOTED = re.compile(r"""`([^`]+)`|Q\(\s*['"]([^'"]+)['"]\s*\)""")


def builtin_datasets() -> list[str]:
    """Names of the data sets shipped in ``sims/dgp/data`` (``data: builtin:<name>``)."""
    return sorted(path.stem for path in DATA_DIR.glob("*.csv"))


def data_path(data: str) -> Path:
    """The file ``data`` names: ``builtin:<name>`` or a path (relative to the current folder)."""
    if data.startswith(BUILTIN):
        name = data[len(BUILTIN):]
        path = DATA_DIR / f"{name}.csv"
        require(path.is_file(), "data", f"no built-in data set {name!r} (built-in: {', '.join(builtin_datasets())})")
        return path
    path = Path(data).expanduser()
    require(path.is_file(), "data", f"no such file: {path}")
    return path


def formula_columns(formula: str, columns) -> list[str]:
    """The columns of the data that ``formula`` names, in the data's order."""
    names = set(_IDENTIFIER.findall(formula))
    names.update(a or b for a, b in _QUOTED.findall(formula))
    return [c for c in columns if c in names]


class RandomEffects(NamedTuple):
    """One random term on the pilot data: its lme4 group, effect names, model matrix (pilot
    rows x effects) and fitted covariance of the effects of a level."""

    term: RandomTerm
    names: tuple[str, ...]
    matrix: np.ndarray
    covariance: np.ndarray

    @property
    def group(self) -> str:
        return self.term.group


@dataclasses.dataclass(frozen=True)
class PilotFit:
    """The pilot data as fitted: what every replicate is drawn from."""

    sha256: str
    frame: pd.DataFrame  # outcome first; rows and columns without missing values
    formula: MixedFormula
    fit: MixedFit | GLMMFit
    family: str  # gaussian, binomial or poisson
    link: str | None  # the GLMM's link (None for gaussian)
    X: np.ndarray  # pilot rows x fixed effects
    terms: tuple[RandomEffects, ...]  # in formula order

    @property
    def design(self) -> pd.DataFrame:
        return self.frame.drop(columns=self.formula.outcome)

    @property
    def grouping_factors(self) -> list[str]:
        """The grouping columns of the random terms, in the order they first appear."""
        return list(dict.fromkeys(name for effects in self.terms for name in effects.term.factors))


_PILOTS: collections.OrderedDict[tuple, PilotFit] = collections.OrderedDict()


def pilot_fit(data: str, formula: str, reml: bool, family: str = GAUSSIAN, link: str | None = None) -> PilotFit:
    """The pilot fit of ``formula`` to the file ``data``, cached by the file's SHA-256: by the
    LMM (REML or ML) for gaussian, by the GLMM (ML, ``link`` resolved) for binomial and poisson."""
    path = data_path(data)
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    key = (sha256, formula, reml if family == GAUSSIAN else None, family, link)  # a GLMM is always ML
    if key not in _PILOTS:
        _PILOTS[key] = _fit_pilot(_read_table(path, content), sha256, formula, reml, family, link)
        while len(_PILOTS) > CACHE_SIZE:
            _PILOTS.popitem(last=False)
    _PILOTS.move_to_end(key)
    return _PILOTS[key]


def _read_table(path: Path, content: bytes) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            return pd.read_csv(io.BytesIO(content), sep="\t" if suffix == ".tsv" else ",")
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(io.BytesIO(content))
    except ImportError as error:
        require(False, "data", f"reading {path.name} needs a Parquet engine: pip install pyarrow ({error})")
    except (ValueError, OSError, pd.errors.ParserError) as error:
        require(False, "data", f"cannot read {path}: {str(error).splitlines()[0]}")
    require(False, "data", f"{path} is neither CSV ({', '.join(CSV_SUFFIXES)}) nor Parquet ({', '.join(PARQUET_SUFFIXES)})")


def _fit_pilot(table: pd.DataFrame, sha256: str, formula: str, reml: bool, family: str, link: str | None) -> PilotFit:
    try:
        parsed = parse_formula(formula)
        estimator = LMM(formula, reml=reml) if family == GAUSSIAN else GLMM(formula, family=family, link=link)
    except ValueError as error:
        require(False, "formula", str(error).removeprefix("formula: "))
    require(cbind_parts(parsed.outcome) is None, "formula",
            f"its outcome {parsed.outcome} is k of n trials; the pilot data need 0/1 rows, one row per trial")
    require(parsed.outcome in table.columns, "formula",
            f"its outcome {parsed.outcome!r} must be a column of the data (columns: {', '.join(map(str, table.columns))})")
    frame = table[[parsed.outcome, *(c for c in table.columns if c != parsed.outcome)]]
    frame = frame.dropna(subset=formula_columns(formula, table.columns)).dropna(axis="columns").reset_index(drop=True)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(frame[column].cat.categories.dtype)
    require(len(frame) > 0, "data", f"no rows without missing values in {', '.join(frame.columns)}")
    kind = frame[parsed.outcome].dtype.kind
    require(kind in "iufb", "formula", f"its outcome {parsed.outcome!r} must be numeric, got {frame[parsed.outcome].dtype}")
    frame = frame.astype({parsed.outcome: float})
    _require_family_response(frame[parsed.outcome].to_numpy(), parsed.outcome, family)
    try:
        fit = estimator.fit_model(frame)
        _, X = patsy.dmatrices(parsed.fixed_formula, frame, NA_action="raise", return_type="matrix", eval_env=0)
        matrices = [patsy.dmatrix(term.lhs, frame, NA_action="raise", return_type="matrix", eval_env=0)
                    for term in parsed.random]
    except (ValueError, patsy.PatsyError, np.linalg.LinAlgError) as error:
        require(False, "formula", f"cannot be fitted to the data: {str(error).splitlines()[0]}")
    if tuple(X.design_info.column_names) != fit.fixed_names:
        raise RuntimeError(f"fixed-effect columns {X.design_info.column_names} differ from the fit's {fit.fixed_names}")
    components = list(fit.components)
    terms = []
    for term, matrix in zip(parsed.random, matrices):
        names = tuple(matrix.design_info.column_names)
        found = next((c for c in components if c.group == term.group and c.names == names), None)
        if found is None:
            raise RuntimeError(f"the fit has no variance component for random term {term} ({names})")
        components.remove(found)
        correlations = np.nan_to_num(found.correlations, nan=0.0)  # NaN where an SD is 0
        covariance = correlations * np.outer(found.sds, found.sds)
        terms.append(RandomEffects(term, names, np.asarray(matrix, dtype=float), covariance))
    return PilotFit(sha256, frame, parsed, fit, family, None if family == GAUSSIAN else link,
                    np.asarray(X, dtype=float), tuple(terms))


def _require_family_response(y: np.ndarray, outcome: str, family: str) -> None:
    """A binomial outcome is 0/1, a Poisson one a count (gaussian: any number)."""
    if family == "binomial":
        bad = y[(y != 0.0) & (y != 1.0)]
        if bad.size:
            require(False, "formula", f"its outcome {outcome!r} must be 0/1 for family binomial (found {bad[0]:g}); "
                                      "the pilot data need one row per trial")
    elif family == "poisson":
        try:
            response(outcome, pd.DataFrame({outcome: y}), family)
        except InputError as error:
            require(False, "formula", str(error))


# --- overrides ------------------------------------------------------------------------------

def _number(value, name: str, what: str, low: float = -np.inf, high: float = np.inf) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    require(ok and np.isfinite(value) and low <= value <= high, name,
            f"{what} must be a number{_range_text(low, high)}, got {value!r}")
    return float(value)


def _range_text(low: float, high: float) -> str:
    if np.isfinite(low) and np.isfinite(high):
        return f" in [{low:g}, {high:g}]"
    return f" >= {low:g}" if np.isfinite(low) else ""


def _mapping(value, name: str, example: str) -> Mapping:
    require(isinstance(value, Mapping), name, f"must be a mapping such as {example}, got {value!r}")
    return value


def fixed_effects(pilot: PilotFit, fixed: Mapping) -> np.ndarray:
    names = pilot.fit.fixed_names
    beta = pilot.fit.beta.copy()
    for term, value in _mapping(fixed, "fixed", "{Days: 0}").items():
        require(term in names, "fixed", f"{term!r} is not a fixed effect of the model (fixed effects: {', '.join(names)})")
        beta[names.index(term)] = _number(value, "fixed", f"the value of {term!r}")
    return beta


def _group_terms(pilot: PilotFit, group, name: str) -> list[int]:
    groups = list(dict.fromkeys(t.group for t in pilot.terms))
    require(group in groups, name, f"{group!r} is not a grouping factor of the random effects (groups: {', '.join(groups)})")
    return [t for t, effects in enumerate(pilot.terms) if effects.group == group]


def covariances(pilot: PilotFit, sd: Mapping, cor: Mapping) -> list[np.ndarray]:
    """Each random term's covariance, with the SDs and correlations of ``sd`` and ``cor``."""
    result = [effects.covariance.copy() for effects in pilot.terms]
    sds = [np.sqrt(np.diag(c)) for c in result]
    correlations = []
    for c, s in zip(result, sds):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.nan_to_num(c / np.outer(s, s), nan=0.0)
        np.fill_diagonal(r, 1.0)
        correlations.append(r)

    def locate(group, effect, name: str) -> tuple[int, int]:
        for t in _group_terms(pilot, group, name):
            if effect in pilot.terms[t].names:
                return t, pilot.terms[t].names.index(effect)
        effects = [n for t in _group_terms(pilot, group, name) for n in pilot.terms[t].names]
        require(False, name, f"{group} has no random effect {effect!r} (effects: {', '.join(effects)})")

    for group, by_effect in _mapping(sd, "sd", "{Subject: {Days: 3.0}}").items():
        for effect, value in _mapping(by_effect, "sd", "{Subject: {Days: 3.0}}").items():
            t, a = locate(group, effect, "sd")
            sds[t][a] = _number(value, "sd", f"the SD of {group} {effect}", low=0.0)
    for group, by_effect in _mapping(cor, "cor", "{Subject: 0.3}").items():
        for (effect, other), value in _correlation_entries(pilot, group, by_effect):
            t, a = locate(group, effect, "cor")
            u, b = locate(group, other, "cor")
            require(t == u and a != b, "cor", f"{group} {effect} and {other} are not two correlated effects of one term")
            correlations[t][a, b] = correlations[t][b, a] = _number(value, "cor", f"the correlation of {group} {effect} and {other}", -1.0, 1.0)
    for t, effects in enumerate(pilot.terms):
        result[t] = correlations[t] * np.outer(sds[t], sds[t])
        require_positive_definite(result[t], "cor")
    return result


def _correlation_entries(pilot: PilotFit, group, by_effect) -> list[tuple[tuple[Any, Any], Any]]:
    """``{a: {b: r}}`` -> [((a, b), r)]; a number stands for the one correlation of a term of two effects."""
    if not isinstance(by_effect, Mapping):
        terms = _group_terms(pilot, group, "cor")
        require(len(terms) == 1 and len(pilot.terms[terms[0]].names) == 2, "cor",
                f"{group}: a single correlation is for a term of two effects; name them, e.g. {{{group}: {{a: {{b: 0.3}}}}}}")
        return [(pilot.terms[terms[0]].names, by_effect)]
    entries = []
    for effect, others in by_effect.items():
        for other, value in _mapping(others, "cor", f"{{{group}: {{{effect}: {{<effect>: 0.3}}}}}}").items():
            entries.append(((effect, other), value))
    return entries


# --- the design -----------------------------------------------------------------------------

def _require_count(value, name: str, what: str, minimum: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
    require(ok, name, f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _new_labels(levels: np.ndarray, count: int) -> list:
    """Labels for ``count`` copies of ``levels`` (cycled): numbers after the largest, or
    ``<label>_<copy>`` for other labels."""
    if levels.dtype.kind in "iuf":
        return [levels.max() + 1 + j for j in range(count)]
    taken = set(map(str, levels))
    labels = []
    for j in range(count):
        label = f"{levels[j % len(levels)]}_{j // len(levels) + 2}"
        while label in taken:
            label += "_"
        taken.add(label)
        labels.append(label)
    return labels


def extend_levels(design: pd.DataFrame, factor: str, n: int) -> pd.DataFrame:
    """``design`` with exactly ``n`` levels of ``factor``: the first n, or all plus copies."""
    levels = np.sort(design[factor].unique())
    if n <= len(levels):
        return design[design[factor].isin(levels[:n])]
    if levels.dtype.kind not in "iuf":
        design = design.astype({factor: str})
        levels = levels.astype(str)
    by_level = {level: design[design[factor] == level] for level in levels}
    copies = []
    for j, label in enumerate(_new_labels(levels, n - len(levels))):
        copies.append(by_level[levels[j % len(levels)]].assign(**{factor: label}))
    return pd.concat([design, *copies], ignore_index=True)


def replicate_within(design: pd.DataFrame, cells: list[str], n: int) -> pd.DataFrame:
    """``design`` with exactly ``n`` rows per combination of ``cells`` (rows cycled or cut)."""
    groups = design.groupby(cells, sort=False, dropna=False).indices
    rows = np.concatenate([np.resize(positions, n) for positions in groups.values()])
    return design.iloc[rows].reset_index(drop=True)


def build_design(pilot: PilotFit, extend: Mapping, within: Mapping) -> pd.DataFrame:
    """The design columns and the pilot row (``_row``) each row copies."""
    design = pilot.design.assign(_row=np.arange(len(pilot.frame)))
    factors = pilot.grouping_factors
    for factor in _mapping(extend, "extend", "{Subject: 40}"):
        require(factor in factors, "extend", f"{factor!r} is not a grouping factor of the formula (grouping factors: {', '.join(factors)})")
    for factor in factors:
        if factor in extend:
            design = extend_levels(design, factor, _require_count(extend[factor], "extend", f"the number of levels of {factor}", 2))
    columns = list(pilot.design.columns)
    for column in _mapping(within, "within", "{Days: 2}"):
        require(column in columns, "within", f"{column!r} is not a design column (columns: {', '.join(columns)})")
    for column in columns:
        if column in within:
            n = _require_count(within[column], "within", f"the number of rows per cell of {column}", 1)
            design = replicate_within(design, [c for c in columns if c in factors or c == column], n)
    return design.reset_index(drop=True)


def level_codes(design: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Codes 0..l-1 of the combinations of ``factors`` (sorted), and l."""
    values = design[factors[0]] if len(factors) == 1 else pd.MultiIndex.from_frame(design[list(factors)])
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp), len(uniques)


class TermDraw(NamedTuple):
    """What a replicate needs of one random term: level codes per row, the rows' model
    matrix, and a factor F of the covariance (F F' = Sigma_t)."""

    codes: np.ndarray
    n_levels: int
    matrix: np.ndarray
    factor: np.ndarray


def covariance_factor(covariance: np.ndarray) -> np.ndarray:
    """F with F F' = covariance, also for a singular (positive semi-definite) one."""
    try:
        return np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(covariance)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


# --- the DGP --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FittedDGP(DGP):
    data: str = "builtin:sleepstudy"
    formula: str = "Reaction ~ Days + (Days | Subject)"
    family: PilotFamily = GAUSSIAN
    link: LinkName | None = None
    reml: bool = True
    fixed: dict = dataclasses.field(default_factory=dict)
    sd: dict = dataclasses.field(default_factory=dict)
    cor: dict = dataclasses.field(default_factory=dict)
    sigma: float | None = None
    extend: dict = dataclasses.field(default_factory=dict)
    within: dict = dataclasses.field(default_factory=dict)
    allow_singular: bool = False

    fixed_design: ClassVar[bool] = True

    def __post_init__(self):
        require(isinstance(self.data, str) and self.data, "data", f"must be a file path or builtin:<name>, got {self.data!r}")
        require(isinstance(self.formula, str), "formula", f"must be an lme4 formula, got {self.formula!r}")
        for name in ("reml", "allow_singular"):
            value = getattr(self, name)
            require(isinstance(value, (bool, np.bool_)), name, f"must be true or false, got {value!r}")
        require(self.family in get_args(PilotFamily), "family",
                f"must be one of {', '.join(get_args(PilotFamily))}, got {self.family!r}")
        if self.family == GAUSSIAN:
            require(self.link is None, "link", f"must be null for family gaussian (the identity), got {self.link!r}")
        else:
            if self.link is not None:
                require_family_and_link(self.family, self.link)
            require(self.sigma is None, "sigma", f"has no meaning for family {self.family} "
                                                 f"(the family sets the variance from the mean); leave it null, got {self.sigma!r}")
        link = None if self.family == GAUSSIAN else link_or_canonical(self.family, self.link)
        pilot = pilot_fit(self.data, self.formula, bool(self.reml), self.family, link)
        if pilot.fit.singular and not self.allow_singular:
            require(False, "formula", f"the pilot fit is singular (a random-effect SD is 0 or a correlation is +-1: "
                                      f"{_varcorr_text(pilot.fit)}); simplify the random effects or set allow_singular: true")
        require(pilot.fit.converged, "formula", f"the pilot fit did not converge ({_varcorr_text(pilot.fit)})")
        beta = fixed_effects(pilot, self.fixed)
        sigma = None
        if self.family == GAUSSIAN:
            sigma = pilot.fit.sigma if self.sigma is None else _number(self.sigma, "sigma", "the residual SD", low=0.0)
            require(sigma > 0, "sigma", f"must be > 0, got {self.sigma!r}")
            sigma = float(sigma)
        covs = covariances(pilot, self.sd, self.cor)
        design = build_design(pilot, self.extend, self.within)
        rows = design.pop("_row").to_numpy()
        draws = []
        for effects, covariance in zip(pilot.terms, covs):
            codes, n_levels = level_codes(design, effects.term.factors)
            require(n_levels >= 2, "extend", f"{effects.group} would have {n_levels} level; at least 2 are needed")
            draws.append(TermDraw(codes, n_levels, effects.matrix[rows], covariance_factor(covariance)))
        columns = read_only({name: design[name].to_numpy().copy() for name in design.columns})
        object.__setattr__(self, "_pilot", pilot)
        object.__setattr__(self, "_beta", beta)
        object.__setattr__(self, "_sigma", sigma)
        object.__setattr__(self, "_covariances", covs)
        object.__setattr__(self, "_draws", tuple(draws))
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_mean", pilot.X[rows] @ beta)
        kinds = {name: dtype.kind for name, dtype in self.design().dtypes.items()}
        object.__setattr__(self, "_kinds", {pilot.formula.outcome: "f", **kinds})

    @property
    def pilot(self) -> PilotFit:
        """The pilot fit (cached per process by the data's SHA-256, formula, reml, family and link)."""
        return self._pilot

    @property
    def outcome(self) -> str:
        return self._pilot.formula.outcome

    @property
    def columns(self) -> dict[str, str]:
        return self._kinds

    @property
    def covariances(self) -> dict[str, np.ndarray]:
        """The covariance of each random term's effects (overrides applied), by lme4 group;
        terms of one group (from ``||``) are numbered ``group``, ``group.2``, ..."""
        names: dict[str, np.ndarray] = {}
        for effects, covariance in zip(self._pilot.terms, self._covariances):
            key, k = effects.group, 1
            while key in names:
                k += 1
                key = f"{effects.group}.{k}"
            names[key] = covariance
        return names

    @property
    def residual_sd(self) -> float | None:
        """sigma (gaussian); None for binomial and poisson, which have no residual."""
        return self._sigma

    def design_columns(self) -> dict[str, np.ndarray]:
        return self._columns

    def linear_predictor(self, rng: np.random.Generator) -> np.ndarray:
        """eta = X beta plus each term's effects (one N(0, Sigma_t) draw per level, in formula
        order) on its rows."""
        eta = self._mean.copy()
        for draw in self._draws:
            effects = rng.standard_normal((draw.n_levels, draw.factor.shape[0])) @ draw.factor.T
            eta += np.einsum("ik,ik->i", draw.matrix, effects[draw.codes])
        return eta

    def draw_outcome(self, rng: np.random.Generator) -> np.ndarray:
        """y given eta (:meth:`linear_predictor`): eta plus N(0, sigma^2) residuals (gaussian),
        Bernoulli(g^{-1}(eta)) (binomial) or Poisson(exp(eta)) (poisson), as floats."""
        eta = self.linear_predictor(rng)
        if self.family == GAUSSIAN:
            eta += self._sigma * rng.standard_normal(len(eta))
            return eta
        mean = inverse_link(self._pilot.link, eta)
        if self.family == "binomial":
            return rng.binomial(1, mean).astype(float)
        return rng.poisson(mean).astype(float)

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.design()
        frame.insert(0, self.outcome, self.draw_outcome(rng))
        return frame

    def truth(self) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self._pilot.fit.fixed_names, self._beta)}

    def provenance(self) -> dict[str, Any]:
        return {"data_sha256": self._pilot.sha256}


def _varcorr_text(fit: MixedFit) -> str:
    parts = []
    for group, name, other, value in fit.varcorr():
        if group == "Residual":
            continue
        parts.append(f"{group} {name} ~ {other} cor {value:.3g}" if other else f"{group} {name} SD {value:.3g}")
    return ", ".join(parts)
