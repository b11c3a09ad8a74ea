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
import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import dask
import dask.threaded
import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from analysis.measures import summarise, to_tidy
from analysis.table import format_table
from sims.api import compose, open_mapping_overrides
from estimators.presets import ConfigError, available, conf_dir
from sims.run.config_files import check_config_files, check_hydra_overrides, with_user_dirs
from sims.run.dgp_choice import is_class_choice
from estimators.spelling import did_you_mean
from sims.run.errors import DEBUG_ENV, describe, interrupts_in_main_only, stop
from sims.run import kept_outputs
from sims.run.lock import run_directory_lock
from sims.run.rundir import run_in_directory
from sims.run.runner import release_workers
from analysis.schema import COMMAND, REPORT, RESULTS
from sims.run.study import StudySchema, validate

log = logging.getLogger("clustersim")

CONFIG_GROUPS = ("dgp", "runner", "experiment", "estimator_set")
SUMMARY = "summary.csv"
# The arguments as typed, for .hydra/command.yaml (preflight rewrites them before Hydra sees them).
TYPED_ARGS_ENV = "CLUSTERSIM_TYPED_ARGS"
HELP_WIDTH = 96
# dask's default scheduler for the results' small computations (the summary's own passes run in
# this thread), given as the function: dask's default lookup imports dask.distributed first to
# look for a client, which costs a small study more than its summary.
THREADED = dask.threaded.get


def _options(group: str, column: int = 0) -> str:
    """A config group's options for ``--help`` (conf/hydra/help/clustersim.yaml), wrapped to
    continue at ``column``."""
    indent = " " * column
    lines = textwrap.wrap(", ".join(available(group)), HELP_WIDTH, initial_indent=indent, subsequent_indent=indent)
    return "\n".join(lines).removeprefix(indent)


OmegaConf.register_new_resolver("clustersim_options", _options, replace=True)


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
    ``estimators`` take new keys without Hydra's ``+`` prefix. Returns the arguments for Hydra,
    with the user's config folders on its search path (``./conf``, ``--config-dir``)."""
    args = with_user_dirs(args)
    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:  # Hydra's parser explains the grammar at length; keep the gist
        fail(f"cannot parse overrides: {str(error).splitlines()[0]}")
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
            keys = sorted(known - {"hydra"})
            fail(f"{group}: unknown key{did_you_mean(root, keys)} (top-level keys: {', '.join(keys)})")
        if group == "dgp" and isinstance(override.value(), dict):
            fail("dgp: takes a name (dgp=clustered) or a class (dgp=<module>.<Class>), not a mapping; "
                 "set its parameters with dgp.<param>=...")
        if group in CONFIG_GROUPS and not override.is_delete():
            options = available(group)
            for choice in _group_choices(override):
                if choice not in options and not (group == "dgp" and is_class_choice(choice)):
                    fail(f"{group}: unknown {group} {choice!r}{did_you_mean(choice, options)} "
                         f"(available: {', '.join(options)}{'; or a class, dgp=<module>.<Class>' if group == 'dgp' else ''})")
        if group == "hydra/launcher" and not override.is_delete():
            _check_slurm(_group_choices(override))
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun:
        _check_composition([a for a in overrides if not a.lstrip("+~").startswith("hydra.")
                            or a.lstrip("+~").startswith("hydra.searchpath=")])
    return open_mapping_overrides(args)


SLURM_LAUNCHERS = ("slurm", "submitit_slurm")


def _check_slurm(choices: list[str]) -> None:
    """A SLURM launcher needs SLURM's commands (submitit submits with sbatch and runs srun)."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    for choice in choices:
        if choice in SLURM_LAUNCHERS and missing:
            fail(f"hydra/launcher: {choice} submits SLURM jobs, but {' and '.join(missing)} "
                 f"{'is' if len(missing) == 1 else 'are'} not on PATH; run on a SLURM login node, "
                 f"or sweep on this machine with hydra/launcher=joblib")


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
            parent, _, name = key.rpartition(".")
            siblings = _keys_of(parent, [o for o in overrides if o.lstrip("+~").partition("=")[0] != key])
            listed = f" (keys of {parent or 'the config'}: {', '.join(siblings)})" if siblings else ""
            hint = did_you_mean(key, [f"{parent}.{k}" if parent else k for k in siblings])
            fail(f"{key}: no such key in the config{hint}{listed}")
        fail(first_line)
    except Exception as error:  # a YAML syntax error, a refused file
        message, code = describe(error)
        fail(message, code)


def _keys_of(parent: str, overrides: list[str]) -> list[str]:
    """The keys of the node ``parent`` in the config the overrides compose (none when they do not)."""
    try:
        node = compose(overrides)
        node = OmegaConf.select(node, parent) if parent else node
    except Exception:
        return []
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


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
    report = cfg.get("report", True)
    outputs = [SUMMARY, *([REPORT] if report else [])]
    key = kept_outputs.inputs_key(cfg, output_dir)
    table = kept_outputs.kept_table(output_dir, key, outputs)
    if table is not None:  # a finished study run again with nothing changed
        log.info("nothing changed since %s was written: kept it%s", SUMMARY, f" and {REPORT}" if report else "")
        if cfg.get("print_table", True):
            print(table)
        return
    kept_outputs.forget(output_dir)
    if cfg.runner.progress and sys.stderr.isatty():  # after the progress bar, a pause otherwise unexplained
        also = " and the report" if report else ""
        print(f"clustersim: computing the summary{also} ...", file=sys.stderr, flush=True)
    with dask.config.set(scheduler=THREADED):
        summary = summarise(dataset)
        to_tidy(summary).to_csv(output_dir / SUMMARY, index=False)
        log.info("wrote %s and %s in %s", RESULTS, SUMMARY, output_dir)
        table = format_table(summary, truth=dataset["truth"],
                             estimators=yaml.safe_load(dataset.attrs["config"])["estimators"])
        if cfg.get("print_table", True):
            print(table)
        if report:
            from analysis.report import write_report  # matplotlib only when a report is asked for

            log.info("wrote %s", write_report(output_dir, summary=summary))
    kept_outputs.keep(output_dir, key, table, outputs)


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
