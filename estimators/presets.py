"""Where the shipped YAML configs live, and the one function that turns a config node into an
object (``instantiate``), used by the CLI, ``sims.build`` and ``estimators.build`` alike.

It sits in ``estimators``, the bottom of the import graph, so that ``estimators.build`` resolves
``conf/estimator/<name>.yaml`` without importing ``sims``; the run side imports it from here.

The configs sit in the top-level ``conf/`` folder of the source tree; the wheel ships a copy as
``sims/conf`` (see ``pyproject.toml``), so ``conf`` is never an importable top-level package.
:func:`conf_dir` finds the packaged copy first and the source tree's otherwise, which covers
both non-editable and editable installs. It locates the folder by path, not by importing
``sims``.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from estimators import bounded_yaml
from estimators.spelling import did_you_mean

# Packages whose classes any config may build; a study adds its own modules with allow_targets.
PROJECT_PACKAGES = ("sims", "estimators", "analysis")
# The user's config folders, os.pathsep-separated: set by the command line (sims.run.config_files),
# read by the jobs too, which a launcher may run elsewhere.
USER_DIRS_ENV = "CLUSTERSIM_CONFIG_DIRS"

class ConfigError(ValueError):
    """Invalid configuration. ``str(error)`` is one line starting with the offending key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key


def conf_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups."""
    packages = Path(__file__).resolve().parent.parent  # site-packages, or the source tree
    candidates = (packages / "sims" / "conf", packages / "conf")
    for candidate in candidates:
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"clustersim's configs are neither in {candidates[0]} nor in {candidates[1]}")


def user_conf_dirs() -> list[Path]:
    """The user's config folders (a ``conf/`` in the working directory, ``--config-dir``,
    ``hydra.searchpath``) that the command line found, from :data:`USER_DIRS_ENV`."""
    return [Path(entry) for entry in os.environ.get(USER_DIRS_ENV, "").split(os.pathsep) if entry]


def config_dirs() -> list[Path]:
    """Where configs are looked up, clustersim's own first (a name there wins)."""
    return [conf_dir(), *user_conf_dirs()]


def available(group: str) -> list[str]:
    """Names of the configs in a config group (``dgp``, ``estimator``, ...), clustersim's and the user's."""
    return sorted({path.stem for directory in config_dirs() for path in (directory / group).glob("*.yaml")})


def load_preset(group: str, name: str, key: str | None = None) -> dict:
    """The mapping stored in ``<config dir>/<group>/<name>.yaml`` (:func:`config_dirs`)."""
    paths = [d / group / f"{name}.yaml" for d in config_dirs()] if isinstance(name, str) else []
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        options = available(group)
        raise ConfigError(key or group, f"unknown {group} {name!r}{did_you_mean(name, options)} "
                                        f"(available: {', '.join(options)})")
    try:
        return dict(bounded_yaml.load(path) or {})
    except bounded_yaml.YAMLLimitError as error:
        raise ConfigError(key or group, str(error)) from None


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one of them (``a.b`` is inside ``a``)."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _dotted(name: Any) -> list[str]:
    parts = name.split(".") if isinstance(name, str) else []
    return parts if parts and all(part.isidentifier() for part in parts) else []


def _standard_library(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names


def check_allowed_module(prefix: Any, key: str) -> str:
    """An ``allow_targets`` entry: a dotted module name outside the standard library (a config
    that may build any class of ``os`` or ``subprocess`` may run any command)."""
    if not _dotted(prefix):
        raise ConfigError(key, f"must be a dotted module name, got {prefix!r}")
    if _standard_library(prefix):
        raise ConfigError(key, f"{prefix!r} is a standard-library module; list only modules of your own")
    return prefix


def check_target(target: Any, key: str, allowed: tuple[str, ...] = ()) -> None:
    """Refuse a ``_target_`` outside the project's packages and ``allowed`` (module prefixes),
    without importing anything."""
    if len(_dotted(target)) < 2:
        raise ConfigError(f"{key}._target_", f"must be a dotted path module.Class, got {target!r}")
    prefixes = PROJECT_PACKAGES + tuple(allowed)
    module = target.rpartition(".")[0]
    if not within(module, prefixes):
        hint = "" if _standard_library(module) else f"; to allow it, add {module!r} to allow_targets"
        raise ConfigError(f"{key}._target_", f"{target!r} is outside the modules a config may build from "
                          f"({', '.join(prefixes)}){hint}")


def _resolve_target(target: str, key: str):
    module_name, _, attribute = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{key}._target_", f"cannot import {target!r}") from None
    if not inspect.isclass(factory):
        raise ConfigError(f"{key}._target_", f"{target!r} is not a class (a config builds objects, it calls no functions)")
    return factory


def instantiate(node: Mapping[str, Any], key: str, allowed: tuple[str, ...] = ()) -> Any:
    """Build ``node['_target_'](**rest)``, naming ``key.<param>`` in every error.

    The target must be a class in the project's packages or under one of the module prefixes
    ``allowed`` (:func:`check_target`). Unknown parameters and invalid values (a ``ValueError``
    from the constructor, whose message starts with the parameter name) become one-line
    :class:`ConfigError`\\ s.
    """
    params = dict(node)
    target = params.pop("_target_", None)
    if not target:
        raise ConfigError(key, "has no _target_ naming the class to build")
    check_target(target, key, allowed)
    factory = _resolve_target(target, key)
    signature = inspect.signature(factory)
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    if not accepts_any:
        known = [name for name in signature.parameters if name != "self"]
        for name in params:
            if name not in known:
                raise ConfigError(f"{key}.{name}", f"not a parameter of {target}{did_you_mean(name, known, f'{key}.')} "
                                                   f"(parameters: {', '.join(known)})")
    try:
        return factory(**params)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        name, colon, problem = text.partition(":")
        if colon and name in signature.parameters:
            raise ConfigError(f"{key}.{name}", problem.strip()) from None
        raise ConfigError(key, text) from None


def class_defaults(target: str, key: str, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The parameters of the class ``target`` names and their defaults (a dataclass's fields,
    their factories called), after the same check as :func:`instantiate`."""
    check_target(target, key, allowed)
    factory = _resolve_target(target, key)
    if dataclasses.is_dataclass(factory):
        return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(factory)
                if f.init and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)}
    return {name: p.default for name, p in inspect.signature(factory).parameters.items()
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build(group: str, name: str, **overrides) -> Any:
    """Instantiate the preset ``conf/<group>/<name>.yaml`` with some parameters replaced."""
    return instantiate({**load_preset(group, name), **overrides}, key=f"{group}.{name}")
