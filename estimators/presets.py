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

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Mapping

from estimators import bounded_yaml

# Packages whose classes any config may build; a study adds its own modules with allow_targets.
PROJECT_PACKAGES = ("sims", "estimators", "analysis")

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


def available(group: str) -> list[str]:
    """Names of the configs in a config group (``dgp``, ``estimator``, ...)."""
    return sorted(path.stem for path in (conf_dir() / group).glob("*.yaml"))


def load_preset(group: str, name: str, key: str | None = None) -> dict:
    """The mapping stored in ``conf/<group>/<name>.yaml``."""
    path = conf_dir() / group / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        raise ConfigError(key or group, f"unknown {group} {name!r} (available: {', '.join(available(group))})")
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
                raise ConfigError(f"{key}.{name}", f"not a parameter of {target} (parameters: {', '.join(known)})")
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


def build(group: str, name: str, **overrides) -> Any:
    """Instantiate the preset ``conf/<group>/<name>.yaml`` with some parameters replaced."""
    return instantiate({**load_preset(group, name), **overrides}, key=f"{group}.{name}")
