"""``clustersim [hydra overrides]``: compose a study from ``conf/``, validate it, run it, write
``results.zarr`` and ``summary.csv`` into Hydra's run directory and print the summary table.

Bad input stops before any simulation with one line on stderr naming the offending key and
exit code 2.
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from analysis.measures import summarise, to_tidy
from analysis.table import format_table
from sims.api import compose, open_mapping_overrides
from estimators.presets import ConfigError, available, conf_dir
from sims.run.lock import run_directory_lock
from sims.run.rundir import RunBrokeOff, RunInterrupted, run_in_directory
from sims.run.runner import release_workers
from analysis.integrity import DamagedStore
from analysis.schema import RESULTS
from sims.run.study import StudySchema, validate

log = logging.getLogger("clustersim")

CONFIG_GROUPS = ("dgp", "runner", "experiment", "estimator_set")
SUMMARY = "summary.csv"


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
    known = {*StudySchema.__dataclass_fields__, *CONFIG_GROUPS, "hydra"}
    for override in parsed:
        group = override.key_or_group
        root = re.split(r"[./]", group, maxsplit=1)[0]
        if root not in known and not (override.is_add() or override.is_force_add()):
            fail(f"{group}: unknown key (top-level keys: {', '.join(sorted(known - {'hydra'}))})")
        if group in CONFIG_GROUPS and not override.is_delete():
            for choice in _group_choices(override):
                if choice not in available(group):
                    fail(f"{group}: unknown {group} {choice!r} (available: {', '.join(available(group))})")
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun:
        _check_composition([a for a in overrides if not a.lstrip("+~").startswith("hydra.")])
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


def _run(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with run_directory_lock(output_dir):  # summary.csv and report.html are written under it too
            study = validate(cfg)
            dataset = run_in_directory(study, output_dir)
            release_workers(study)
            _summarise_into(cfg, dataset, output_dir)
    except (ConfigError, DamagedStore) as error:
        fail(str(error))
    except RunBrokeOff as error:
        fail(f"runner: the run broke off ({error}); finished chunks are saved in "
             f"{output_dir / RESULTS}: rerun the same command to resume", code=1)
    except RunInterrupted as stop:
        fail(f"runner: stopped by {stop.signame}; finished chunks are saved in "
             f"{output_dir / RESULTS}: rerun the same command to resume", code=128 + stop.signum)


def _summarise_into(cfg: DictConfig, dataset, output_dir: Path) -> None:
    summary = summarise(dataset)
    to_tidy(summary).to_csv(output_dir / SUMMARY, index=False)
    log.info("wrote %s and %s in %s", RESULTS, SUMMARY, output_dir)
    if cfg.get("print_table", True):
        print(format_table(summary))
    if cfg.get("report", True):
        from analysis.report import write_report  # matplotlib only when a report is asked for

        log.info("wrote %s", write_report(output_dir, summary=summary))


_hydra_main = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_run)


def main() -> None:
    sys.argv = [sys.argv[0], *preflight(sys.argv[1:])]
    _hydra_main()


if __name__ == "__main__":
    main()
