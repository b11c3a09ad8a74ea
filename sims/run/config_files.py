"""The YAML files a study may be composed from, checked before Hydra reads any of them.

Hydra looks for configs in clustersim's ``conf/`` and in the user's config folders: a ``conf/``
folder in the working directory, and the directories added with ``--config-dir DIR`` or
``hydra.searchpath=[file://DIR]`` (:func:`with_user_dirs` puts them all on Hydra's search path). Hydra (through OmegaConf) expands
YAML aliases without bound and builds the Hydra node's ``_target_``\\ s (launcher, sweeper,
callbacks) and logging classes before clustersim sees the config, so every YAML file in those
directories is checked first: its aliases must not expand without bound
(:mod:`estimators.bounded_yaml`), and what it sets under ``hydra`` may name only Hydra's own
plugins and logging classes (:data:`HYDRA_TARGETS`). The study's own ``_target_``\\ s are checked
in :func:`sims.run.study.validate`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

from estimators import bounded_yaml
from estimators.presets import USER_DIRS_ENV, ConfigError, conf_dir, within

USER_CONF = "conf"  # the folder of the working directory that holds the user's configs

# Modules whose classes the Hydra node may name (launchers, sweepers, callbacks, log handlers).
HYDRA_TARGETS = ("hydra", "hydra_plugins", "logging", "sims")
TARGET_KEYS = ("_target_", "class", "()")
DEPTH = 3  # conf/<group>/<subgroup>/<name>.yaml is as deep as Hydra's config groups go here


def _directory(entry: str) -> Path | None:
    """A search-path entry as a directory (``pkg://`` entries name installed packages, which
    are not scanned)."""
    if entry.startswith("pkg://"):
        return None
    return Path(entry.removeprefix("file://")).expanduser()


def _searchpath_entries(args: Sequence[str]) -> list[str]:
    """The entries of the ``hydra.searchpath=[...]`` overrides among ``args``."""
    overrides = [a for a in args if not a.startswith("-") and a.lstrip("+~").startswith("hydra.searchpath=")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a malformed override is reported by whoever parses all of them
        return []
    entries: list[str] = []
    for override in parsed:
        value = override.value()
        entries.extend(e for e in (value if isinstance(value, list) else [value]) if isinstance(e, str))
    return entries


def user_config_dirs(args: Sequence[str]) -> list[Path]:
    """The directories that ``hydra.searchpath=[...]`` overrides and ``--config-dir`` add."""
    dirs: list[Path] = []
    for index, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and index + 1 < len(args):
            dirs.append(Path(args[index + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]).expanduser())
    return dirs + [path for entry in _searchpath_entries(args) if (path := _directory(entry)) is not None]


def with_user_dirs(args: Sequence[str]) -> list[str]:
    """``args`` with one ``hydra.searchpath`` override that lists the user's config folders:
    ``./conf`` when it exists (and is not clustersim's own), the ``--config-dir`` folders and the
    entries of any ``hydra.searchpath`` override given. The folders are also put into the
    environment (:data:`~estimators.presets.USER_DIRS_ENV`), where estimator presets are looked
    up. Applying it twice changes nothing."""
    dirs = [Path(USER_CONF).absolute()] if Path(USER_CONF).is_dir() else []
    dirs = [d for d in dirs if d.resolve() != conf_dir().resolve()]
    dirs += [d.absolute() for d in user_config_dirs(args)]
    dirs = list(dict.fromkeys(dirs))
    os.environ[USER_DIRS_ENV] = os.pathsep.join(map(str, dirs))
    entries = [f"'file://{d}'" for d in dirs]
    entries += [e for e in _searchpath_entries(args) if not (_directory(e) and _directory(e).absolute() in dirs)]
    rest = [a for a in args if not a.lstrip("+~").startswith("hydra.searchpath=")]
    return [*rest, f"hydra.searchpath=[{','.join(entries)}]"] if entries else rest


def yaml_files(directory: Path) -> list[Path]:
    return sorted(p for depth in range(DEPTH) for p in directory.glob("/".join(["*"] * depth + ["*.yaml"])))


def check_hydra_targets(node: Any, key: str) -> None:
    """Refuse a ``_target_``, logging ``class`` or ``()`` under ``hydra`` outside :data:`HYDRA_TARGETS`."""
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{key}.{name}"
            if name in TARGET_KEYS and isinstance(value, str):
                if not within(value.rpartition(".")[0], HYDRA_TARGETS):
                    raise ConfigError(path, f"{value!r} is outside the modules a config may name under hydra "
                                      f"({', '.join(HYDRA_TARGETS)})")
            else:
                check_hydra_targets(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_hydra_targets(value, f"{key}[{index}]")


def check_file(path: Path, root: Path) -> list[Path]:
    """Check one YAML file; returns the search-path directories it adds (``hydra.searchpath``)."""
    try:
        data = bounded_yaml.check_file(path)
    except bounded_yaml.YAMLLimitError as error:
        raise ConfigError("", str(error)) from None
    if not isinstance(data, dict):
        return []
    in_hydra_group = path.relative_to(root).parts[0] == "hydra"
    hydra = data if in_hydra_group else data.get("hydra")
    if hydra is None:
        return []
    try:
        check_hydra_targets(hydra, "hydra")
    except ConfigError as error:
        raise ConfigError(str(path), str(error)) from None
    entries = hydra.get("searchpath") if isinstance(hydra, dict) else None
    return [d for e in entries if isinstance(e, str) and (d := _directory(e))] if isinstance(entries, list) else []


def check_config_files(args: Sequence[str] = ()) -> None:
    """Check every YAML file on the search path the arguments give (see the module docstring);
    raises :class:`ConfigError` naming the file."""
    queue = [conf_dir(), *user_config_dirs(args)]
    seen: set[Path] = set()
    while queue:
        directory = queue.pop(0).absolute()
        if directory in seen or not directory.is_dir():
            continue
        seen.add(directory)
        for path in yaml_files(directory):
            queue.extend(check_file(path, directory))


def check_hydra_overrides(args: Sequence[str]) -> None:
    """The command line's ``hydra.*`` overrides, by the same rule as the files' Hydra nodes."""
    overrides = [a for a in args if not a.startswith("-") and a.lstrip("+~").startswith("hydra.")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return
    for override in parsed:
        if override.is_delete():
            continue
        key = override.key_or_group
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            *parents, last = key.split(".")
            check_hydra_targets({last: value}, ".".join(parents))
