"""``clustersim [hydra overrides]``: compose a study from ``conf/``, validate it, run it, write
``results.zarr`` and ``summary.csv`` into Hydra's run directory and print the summary table.

Bad input stops before any simulation with one line on stderr naming the offending key and
exit code 2. Whatever else stops a run (Ctrl-C, a full disk, a dead worker) also ends in one
line on stderr and a non-zero exit, never a traceback (:mod:`sims.run.errors`; ``--debug`` or
``CLUSTERSIM_DEBUG=1`` shows it).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from analysis.measures import summarise, to_tidy
from analysis.table import format_table
from sims.api import compose, open_mapping_overrides
from estimators.presets import ConfigError, available, conf_dir
from sims.run.config_files import check_config_files, check_hydra_overrides, group_options, user_config_dirs
from sims.run.errors import DEBUG_ENV, describe, interrupts_in_main_only, stop
from sims.run.lock import run_directory_lock
from sims.run.rundir import run_in_directory
from sims.run.runner import release_workers
from analysis.schema import COMMAND, RESULTS
from sims.run.study import StudySchema, validate

log = logging.getLogger("clustersim")

CONFIG_GROUPS = ("dgp", "runner", "experiment", "estimator_set")
SUMMARY = "summary.csv"
# The arguments as typed, for .hydra/command.yaml (preflight rewrites them before Hydra sees them).
TYPED_ARGS_ENV = "CLUSTERSIM_TYPED_ARGS"


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and exit: code 2 for bad input, 1 for a run that broke off."""
    print(f"clustersim: error: {message}", file=sys.stderr)
    sys.exit(code)


def _group_choices(override) -> list:
    if override.is_sweep_override():
        return [str(v) for v in override.sweep_iterator()]
    value = override.value()
    return [] if value is None else [str(value)]


def preflight(args: list[str]) -> list[str]:
    """Check config-group choices (``dgp=...``) before Hydra composes, and let ``grid`` and
    ``estimators`` take new keys without Hydra's ``+`` prefix. Returns the arguments for Hydra."""
    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:  # Hydra's parser explains the grammar at length; keep the gist
        fail(f"cannot parse overrides: {str(error).splitlines()[0]}")
    user_dirs = user_config_dirs(args)
    try:  # before Hydra reads a file: aliases that expand without bound, Hydra plugins named
        check_config_files(args)
        check_hydra_overrides(overrides)
    except ConfigError as error:
        fail(str(error))
    known = {*StudySchema.__dataclass_fields__, *CONFIG_GROUPS, "hydra"}
    for override in parsed:
        group = override.key_or_group
        root = re.split(r"[./]", group, maxsplit=1)[0]
        if root not in known and not (override.is_add() or override.is_force_add()):
            fail(f"{group}: unknown key (top-level keys: {', '.join(sorted(known - {'hydra'}))})")
        if group in CONFIG_GROUPS and not override.is_delete():
            options = sorted({*available(group), *group_options(group, user_dirs)})
            for choice in _group_choices(override):
                if choice not in options:
                    fail(f"{group}: unknown {group} {choice!r} (available: {', '.join(options)})")
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun:
        _check_composition([a for a in overrides if not a.lstrip("+~").startswith("hydra.")
                            or a.lstrip("+~").startswith("hydra.searchpath=")])
    return open_mapping_overrides(args)


_QUOTED_KEY = re.compile(r"'([\w.]+)'")


def _check_composition(overrides: list[str]) -> None:
    """Compose once outside Hydra's app so that a key that does not exist fails in one line."""
    try:
        compose(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        first_line = str(error).splitlines()[0]
        quoted = _QUOTED_KEY.search(first_line)
        if quoted and first_line.startswith("Could not override"):
            key = quoted.group(1)
            fail(f"{key}: no such key in the config (add a new key with +{key}=...)")
        fail(first_line)
    except Exception as error:  # a YAML syntax error, a refused file
        message, code = describe(error)
        fail(message, code)


def _run(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with run_directory_lock(output_dir):  # summary.csv and report.html are written under it too
            _run_study(cfg, output_dir)
    except (Exception, KeyboardInterrupt) as error:  # SystemExit too would pass through Hydra's job
        stop(error, output_dir)


def _run_study(cfg: DictConfig, output_dir: Path) -> None:
    study = validate(cfg)
    _write_command(output_dir)
    dataset = run_in_directory(study, output_dir)
    release_workers(study)
    summary = summarise(dataset)
    to_tidy(summary).to_csv(output_dir / SUMMARY, index=False)
    log.info("wrote %s and %s in %s", RESULTS, SUMMARY, output_dir)
    if cfg.get("print_table", True):
        print(format_table(summary, truth=dataset["truth"],
                           estimators=yaml.safe_load(dataset.attrs["config"])["estimators"]))
    if cfg.get("report", True):
        from analysis.report import write_report  # matplotlib only when a report is asked for

        log.info("wrote %s", write_report(output_dir, summary=summary))


def _write_command(output_dir: Path) -> None:
    """The arguments as typed into .hydra/command.yaml (where Hydra keeps its own record). Not
    for a job of a multirun, whose own overrides are one combination of the typed sweep."""
    hydra_dir = output_dir / ".hydra"
    typed = os.environ.get(TYPED_ARGS_ENV)
    if typed is not None and hydra_dir.is_dir() and HydraConfig.get().mode != RunMode.MULTIRUN:
        (hydra_dir / COMMAND).write_text(yaml.safe_dump(json.loads(typed), default_flow_style=False))


_hydra_main = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_run)


@contextlib.contextmanager
def _hydra_raises():
    """Let Hydra raise what stops it (its own errors, a launcher's) instead of printing a
    stripped traceback and exiting, so that :func:`main` reports it in one line."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def _requested_run_dir(args: list[str]) -> Path | None:
    """The run directory an override names (Hydra forgets the one it made when a job fails
    before its task starts: a file in the way, a log it cannot open)."""
    for arg in reversed(args):
        key, _, value = arg.lstrip("+").partition("=")
        if key == "hydra.run.dir" and value and "${" not in value:
            return Path(value).absolute()
    return None


def main() -> None:
    # joblib's note when an interrupt cancels running chunks (or drops finished ones): the
    # one-line message says it all.
    warnings.filterwarnings("ignore", message=r"\d+ tasks (which were still being processed|have been successfully)",
                            category=UserWarning)
    args = sys.argv[1:]
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"  # read by the jobs too, which a launcher may run elsewhere
    os.environ[TYPED_ARGS_ENV] = json.dumps(args)
    try:
        with interrupts_in_main_only():
            sys.argv = [sys.argv[0], *preflight(args)]
            with _hydra_raises():
                _hydra_main()
    except (Exception, KeyboardInterrupt) as error:
        stop(error, _requested_run_dir(args))


if __name__ == "__main__":
    main()
