"""A study's configuration: the schema every config must satisfy, and its validation into a
:class:`Study` (the grid cells, each with its DGP and estimators built) before any simulation.

Every problem is a :class:`~estimators.presets.ConfigError` whose one-line message starts with the
offending key (``n_reps: must be >= 1, got 0``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from estimators.design import InputError
from estimators.presets import ConfigError, check_allowed_module, check_target, class_defaults, instantiate, load_preset
from sims.run import budget
from sims.run.cell import Cell

# Dimension names the results dataset reserves; a grid factor may not take them.
RESERVED_DIMS = ("rep", "estimator", "term", "measure")
# Config keys a grid may not sweep: they shape the study rather than describe a scenario.
UNSWEEPABLE = ("n_reps", "seed", "runner", "grid", "precision", "print_table", "report")
BACKENDS = ("loky", "dask")
TIMEOUT_KEY = "timeout_s"  # optional per-estimator key: seconds before a fit counts as timed out


@dataclass
class RunnerSchema:
    n_jobs: int = -1
    chunk_size: Any = "auto"  # replicates per task and store chunk, or auto (sims.run.chunking)
    chunk_seconds: float = 2.0  # what runner.chunk_size=auto aims at per task
    backend: str = "loky"  # loky (joblib processes on this machine) | dask (dask.distributed)
    address: Optional[str] = None  # dask scheduler address; None starts a LocalCluster
    progress: bool = True
    max_worker_deaths: int = 20  # fits that may kill their process (each stored as failed) before the run stops


@dataclass
class PrecisionSchema:
    """``n_reps: auto``: add replicates until every cell, estimator and term reaches
    ``mcse`` for ``measure`` (or ``max_reps``); replicate counts are multiples of ``step``."""

    measure: str = "coverage"
    mcse: float = 0.005
    min_reps: int = 200
    max_reps: int = 10000
    step: int = 100


@dataclass
class StudySchema:
    """Top-level keys of a study config and their types (checked by OmegaConf)."""

    n_reps: Any = 200  # a positive integer, or "auto" with ``precision``
    seed: int = 20210415
    alpha: float = 0.05
    dgp: Dict[str, Any] = field(default_factory=dict)
    estimators: Dict[str, Any] = field(default_factory=dict)
    grid: Dict[str, Any] = field(default_factory=dict)
    runner: RunnerSchema = field(default_factory=RunnerSchema)
    precision: Optional[PrecisionSchema] = None
    print_table: bool = True
    report: bool = True
    # Modules (dotted prefixes) besides sims, estimators and analysis whose classes the config
    # may name by _target_; left out of the stored config while empty.
    allow_targets: List[str] = field(default_factory=list)


@dataclass
class Study:
    """A validated study: everything the runner needs, and the resolved config it came from."""

    config: DictConfig
    n_reps: int
    seed: int
    alpha: float
    grid: dict[str, list]  # dim name -> values
    grid_keys: dict[str, str]  # dim name -> dotted config key
    cells: list[Cell]
    n_jobs: int
    chunk_size: Optional[int]  # None: auto, chosen where the study runs (sims.run.chunking)
    terms: list[str] = field(default_factory=list)  # every term a fit or the truth reports
    extras: list[str] = field(default_factory=list)  # per-replicate extras the estimators report
    timeouts: dict[str, float] = field(default_factory=dict)  # estimator -> seconds per fit
    precision: Optional[PrecisionSchema] = None
    data_bytes: int = 0  # memory of one replicate's data (the largest cell's trial draw)

    @property
    def auto_reps(self) -> bool:
        return self.precision is not None

    @property
    def estimator_names(self) -> list[str]:
        return list(self.config.estimators.keys())

    def reorder_estimators(self, names: list[str]) -> None:
        """List the estimators in the order ``names`` (the same names in another order): how a
        stored study's estimators are matched by name. Seeds follow names, not positions."""
        self.config.estimators = {name: self.config.estimators[name] for name in names}
        for cell in self.cells:
            cell.estimators = {name: cell.estimators[name] for name in names}

    def yaml(self) -> str:
        return OmegaConf.to_yaml(self.config)


def _check_types(cfg: DictConfig) -> DictConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(StudySchema), cfg)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or ""
        message = str(error).splitlines()[0]
        if "not in" in message and "Key" in message:
            message = "unknown key"
        raise ConfigError(key, message) from None
    OmegaConf.set_struct(merged, False)
    return merged


def _check_resolvable(cfg: DictConfig) -> None:
    """Every ``${...}`` interpolation resolves (a dangling one fails here, naming its key)."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(getattr(error, "full_key", "") or "", str(error).splitlines()[0]) from None


def _allowed_targets(cfg: DictConfig) -> tuple[str, ...]:
    return tuple(check_allowed_module(prefix, f"allow_targets[{index}]")
                 for index, prefix in enumerate(cfg.allow_targets))


def _check_targets(node: Any, path: str, allowed: tuple[str, ...]) -> None:
    """Every ``_target_`` anywhere in the config is allowed, before any module is imported."""
    if isinstance(node, dict):
        if "_target_" in node:
            target = node["_target_"]
            for one in target if isinstance(target, list) else [target]:  # a list: a grid sweeping it
                check_target(one, path, allowed)
        for key, value in node.items():
            _check_targets(value, f"{path}.{key}" if path else str(key), allowed)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_targets(value, f"{path}[{index}]", allowed)


def _with_defaults(dgp: DictConfig, allowed: tuple[str, ...]) -> DictConfig:
    """The DGP's config with its class's defaults for the parameters it does not set (all of
    them for ``dgp=<module>.<Class>``, :mod:`sims.run.dgp_choice`; none for a shipped config,
    which lists every parameter)."""
    defaults = class_defaults(dgp._target_, "dgp", allowed)
    missing = {name: value for name, value in defaults.items() if name not in dgp}
    if not missing:
        return dgp
    try:
        filled = OmegaConf.merge(OmegaConf.create(missing), dgp)
    except OmegaConfBaseException as error:
        raise ConfigError("dgp", f"a default of {dgp._target_} cannot be stored in a config: {str(error).splitlines()[0]}") from None
    return OmegaConf.merge({"_target_": dgp._target_}, filled)


def _check_ranges(cfg: DictConfig) -> None:
    if cfg.precision is not None:
        _check_precision(cfg.precision)
    if cfg.n_reps == "auto":
        if cfg.precision is None:
            raise ConfigError("n_reps", "is 'auto' but no precision target is set (precision.measure, precision.mcse)")
    elif isinstance(cfg.n_reps, bool) or not isinstance(cfg.n_reps, int):
        raise ConfigError("n_reps", f"must be a positive integer or 'auto', got {cfg.n_reps!r}")
    elif cfg.n_reps < 1:
        raise ConfigError("n_reps", f"must be >= 1, got {cfg.n_reps}")
    else:
        budget.check_count("n_reps", cfg.n_reps, budget.MAX_REPS)
    if not 0.0 < cfg.alpha < 1.0:
        raise ConfigError("alpha", f"must be in (0, 1), got {cfg.alpha}")
    if cfg.seed < 0:
        raise ConfigError("seed", f"must be >= 0, got {cfg.seed}")
    if cfg.runner.n_jobs == 0:
        raise ConfigError("runner.n_jobs", "must be a positive number of processes or -1 for all cores, got 0")
    chunk_size = cfg.runner.chunk_size
    if chunk_size != "auto":
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise ConfigError("runner.chunk_size", f"must be a positive integer or 'auto', got {chunk_size!r}")
        if chunk_size < 1:
            raise ConfigError("runner.chunk_size", f"must be >= 1, got {chunk_size}")
        budget.check_count("runner.chunk_size", chunk_size, budget.MAX_REPS)
    if not cfg.runner.chunk_seconds > 0:
        raise ConfigError("runner.chunk_seconds", f"must be > 0, got {cfg.runner.chunk_seconds}")
    if cfg.runner.max_worker_deaths < 0:
        raise ConfigError("runner.max_worker_deaths", f"must be >= 0, got {cfg.runner.max_worker_deaths}")
    if cfg.runner.backend not in BACKENDS:
        raise ConfigError("runner.backend", f"must be one of {', '.join(BACKENDS)}, got {cfg.runner.backend!r}")
    if not cfg.estimators:
        raise ConfigError("estimators", "is empty: name at least one estimator")
    if "_target_" not in cfg.dgp:
        raise ConfigError("dgp", "has no _target_: choose one with dgp=<name>")


def _check_precision(precision: DictConfig) -> None:
    from analysis.measures import MEASURES

    if precision.measure not in MEASURES:
        raise ConfigError("precision.measure", f"must be one of {', '.join(MEASURES)}, got {precision.measure!r}")
    if not precision.mcse > 0:
        raise ConfigError("precision.mcse", f"must be > 0, got {precision.mcse}")
    for key in ("min_reps", "max_reps", "step"):
        if precision[key] < 1:
            raise ConfigError(f"precision.{key}", f"must be >= 1, got {precision[key]}")
        budget.check_count(f"precision.{key}", precision[key], budget.MAX_REPS)
    if precision.max_reps < precision.min_reps:
        raise ConfigError("precision.max_reps", f"is below precision.min_reps ({precision.max_reps} < {precision.min_reps})")


def _expand_estimator(name: str, node: Any, alpha: float) -> dict:
    """A preset name, ``{preset: name, **overrides}`` or a full ``_target_`` mapping -> mapping.

    The study's ``alpha`` is filled in unless the estimator sets its own.
    """
    key = f"estimators.{name}"
    if isinstance(node, str):
        expanded = load_preset("estimator", node, key)
    elif isinstance(node, DictConfig):
        params = OmegaConf.to_container(node, resolve=True)
        preset = params.pop("preset", None)
        expanded = {**load_preset("estimator", preset, f"{key}.preset"), **params} if preset else params
    else:
        raise ConfigError(key, f"must be a preset name or a mapping, got {node!r}")
    if "_target_" not in expanded:
        raise ConfigError(key, "has neither a preset nor a _target_")
    expanded.setdefault("alpha", alpha)
    return expanded


def _flatten_grid(node: Any, prefix: str = "") -> dict[str, list]:
    """Nested ``grid`` mapping -> {dotted key: list of values}."""
    flat = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            flat.update(_flatten_grid(value, dotted + "."))
        elif isinstance(value, ListConfig):
            values = OmegaConf.to_container(value, resolve=True)
            if not values:
                raise ConfigError(f"grid.{dotted}", "is an empty list of values")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"grid.{dotted}", f"repeats a value: {values}")
            flat[dotted] = values
        else:
            raise ConfigError(f"grid.{dotted}", f"must be a list of values, got {value!r}")
    return flat


_ABSENT = object()


def _new_key_of_dgp_mapping(cfg: DictConfig, dotted: str) -> bool:
    """``dgp.<param>.<key>`` where the DGP's parameter is a mapping (``dgp.extend.Subject``): its
    keys are the user's to choose, and the DGP itself refuses one it does not know."""
    parent = dotted.rsplit(".", 1)[0]
    return parent.startswith("dgp.") and isinstance(OmegaConf.select(cfg, parent, default=None), DictConfig)


def _grid_dims(cfg: DictConfig, flat: dict[str, list]) -> dict[str, str]:
    dims = {}
    for dotted in flat:
        if dotted.split(".", 1)[0] in UNSWEEPABLE:
            raise ConfigError(f"grid.{dotted}", "cannot be swept: it is a property of the run, not of a scenario")
        if OmegaConf.select(cfg, dotted, default=_ABSENT) is _ABSENT and not _new_key_of_dgp_mapping(cfg, dotted):
            raise ConfigError(f"grid.{dotted}", f"names no key of the config ({dotted!r} does not exist)")
        dim = dotted.rsplit(".", 1)[-1]
        if dim in RESERVED_DIMS:
            raise ConfigError(f"grid.{dotted}", f"its dimension name {dim!r} is reserved")
        if dim in dims:
            raise ConfigError(f"grid.{dotted}", f"gives the dimension {dim!r} a second time (also grid.{dims[dim]})")
        dims[dim] = dotted
    return dims


def _build_cell(index: int, cfg: DictConfig, coords: dict[str, Any], grid_keys: dict[str, str],
                allowed: tuple[str, ...]) -> Cell:
    cell_cfg = cfg.copy()
    for dim, value in coords.items():
        OmegaConf.update(cell_cfg, grid_keys[dim], value, merge=False)
    _check_ranges(_check_types(cell_cfg))
    dgp_params = OmegaConf.to_container(cell_cfg.dgp, resolve=True)
    dgp = instantiate(dgp_params, "dgp", allowed)
    estimators = {}
    for name, node in cell_cfg.estimators.items():
        params = OmegaConf.to_container(node, resolve=True)
        params.pop(TIMEOUT_KEY, None)  # the runner's business, not the estimator's
        estimators[name] = instantiate(params, f"estimators.{name}", allowed)
    return Cell(index, coords, dgp, estimators)


def _timeouts(estimators: dict[str, dict]) -> dict[str, float]:
    timeouts = {}
    for name, params in estimators.items():
        seconds = params.get(TIMEOUT_KEY)
        if seconds is None:
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ConfigError(f"estimators.{name}.{TIMEOUT_KEY}", f"must be a positive number of seconds, got {seconds!r}")
        timeouts[name] = float(seconds)
    return timeouts


def _data_shape(data) -> tuple:
    """What a dry run's outcome can depend on besides values: the rows, and each column's name,
    dtype and number of distinct values (levels, conditions)."""
    if not hasattr(data, "columns"):
        return (type(data).__name__, np.shape(data))
    return (len(data), tuple((str(c), str(data[c].dtype), int(data[c].nunique())) for c in data.columns))


def _dry_run(cell: Cell, seed: int, timeouts: dict[str, float] | None = None,
             seen: dict | None = None) -> tuple[list[str], list[str], int]:
    """Fit every estimator on one throwaway draw, so that a formula naming a missing column or
    a cluster column the DGP does not make stops the study before it starts. Returns the terms
    and the per-replicate extras the fits report, which fix the shape of the results store,
    and the bytes of the draw. Each fit is held to its estimator's ``timeout_s``, as in the
    study. ``seen`` keeps the terms and extras of earlier cells' successful fits by estimator
    parameters and data shape (:func:`_data_shape`): a grid over values (effects, variances)
    fits each estimator once, a grid over sizes once per size."""
    from sims.run.runner import call_with_time_limit, checked

    timeouts = timeouts or {}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**32 - 1,)))
    data = cell.dgp.generate(rng)
    data_bytes = int(data.memory_usage(deep=True).sum()) if hasattr(data, "memory_usage") else 0
    terms, extras = list(cell.dgp.truth()), []
    seen = {} if seen is None else seen
    shape = (type(cell.dgp).__name__, _data_shape(data))
    for name, estimator in cell.estimators.items():
        params = estimator.get_params() if hasattr(estimator, "get_params") else id(estimator)
        key = (type(estimator).__qualname__, repr(params), shape)
        if key not in seen:
            try:
                result = checked(call_with_time_limit(lambda: estimator.fit(data, rng), timeouts.get(name)))
            except InputError as error:
                raise ConfigError(f"estimators.{name}", str(error)) from None
            except (Exception, SystemExit):  # numerical trouble (or a time-out) on one draw is a result, not a config error
                continue
            seen[key] = (result.terms, tuple(result.extras))
        result_terms, result_extras = seen[key]
        terms.extend(t for t in result_terms if t not in terms)
        extras.extend(k for k in result_extras if k not in extras)
    return terms, extras, data_bytes


def initial_reps(cfg: DictConfig) -> int:
    """``n_reps``, or for ``n_reps: auto`` the first round: min_reps rounded up to a step."""
    if cfg.n_reps != "auto":
        return int(cfg.n_reps)
    step = int(cfg.precision.step)
    return -(-int(cfg.precision.min_reps) // step) * step


def validate(cfg: DictConfig) -> Study:
    """Check a composed config and build every grid cell; raises :class:`ConfigError`.

    The counts are bounded and every ``_target_`` checked before anything is built (the memory
    and disk a run needs are checked where it runs: :mod:`sims.run.budget`)."""
    cfg = _check_types(cfg)
    _check_resolvable(cfg)
    _check_ranges(cfg)
    allowed = _allowed_targets(cfg)
    cfg.estimators = {name: _expand_estimator(name, node, cfg.alpha) for name, node in cfg.estimators.items()}
    _check_targets(OmegaConf.to_container(cfg, resolve=True), "", allowed)
    cfg.dgp = _with_defaults(cfg.dgp, allowed)
    flat = _flatten_grid(cfg.grid)
    grid_keys = _grid_dims(cfg, flat)
    grid = {dim: flat[dotted] for dim, dotted in grid_keys.items()}
    budget.check_cells({dim: len(values) for dim, values in grid.items()})
    cells = [
        _build_cell(index, cfg, dict(zip(grid, values)), grid_keys, allowed)
        for index, values in enumerate(itertools.product(*grid.values()))
    ]
    timeouts = _timeouts(cfg.estimators)
    terms: list[str] = []
    extras: list[str] = []
    data_bytes = 0
    seen: dict = {}
    for cell in cells:
        cell_terms, cell_extras, cell_bytes = _dry_run(cell, int(cfg.seed), timeouts, seen)
        terms.extend(t for t in cell_terms if t not in terms)
        extras.extend(k for k in cell_extras if k not in extras)
        data_bytes = max(data_bytes, cell_bytes)
    if not cfg.allow_targets:
        del cfg["allow_targets"]  # so that a config without it is stored (and hashed) as before
    return Study(
        config=cfg, n_reps=initial_reps(cfg), seed=int(cfg.seed), alpha=float(cfg.alpha),
        grid=grid, grid_keys=grid_keys, cells=cells,
        n_jobs=int(cfg.runner.n_jobs), chunk_size=None if cfg.runner.chunk_size == "auto" else int(cfg.runner.chunk_size),
        terms=terms, extras=extras, timeouts=timeouts, precision=cfg.precision, data_bytes=data_bytes,
    )
