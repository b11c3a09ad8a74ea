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
from sims import runner
from sims.api import compose, open_mapping_overrides
from sims.precision import next_n_reps
from sims.presets import ConfigError, available, conf_dir
from sims.progress import Progress
from sims.store import RESULTS, RunStore
from sims.study import StudySchema, validate

log = logging.getLogger("clustersim")

CONFIG_GROUPS = ("dgp", "runner", "experiment")
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


def run_missing(study, store: RunStore) -> None:
    """Run every chunk of ``study`` the store does not hold yet, writing each as it finishes."""
    done = store.done()
    plan = runner.chunk_plan(study, store.rep_chunk)
    todo = [(cell, reps) for cell, reps in plan if (cell, reps.start, reps.stop) not in done]
    total = len(study.cells) * study.n_reps
    remaining = sum(len(reps) for _, reps in todo)
    log.info("%d cell(s) x %d replicates x %d estimator(s): %d of %d chunks to run, backend=%s, n_jobs=%d",
             len(study.cells), study.n_reps, len(study.estimator_names), len(todo), len(plan),
             study.config.runner.backend, study.n_jobs)
    progress = Progress(total, total - remaining, enabled=study.config.runner.progress)
    try:
        for chunk in runner.execute(study, todo):
            store.write_chunk(study, chunk)
            progress.update(chunk)
    except Exception as error:  # a dead worker or scheduler: what is stored stays stored
        log.exception("the run broke off")
        fail(f"runner: the run broke off ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
             f"finished chunks are saved in {store.path}: rerun the same command to resume", code=1)
    finally:
        progress.close()


def run_until_precise(study, store: RunStore) -> str:
    """``n_reps: auto``: grow the study round by round until the precision target is met."""
    while True:
        store.prepare(study)
        run_missing(study, store)
        n_reps, reason = next_n_reps(summarise(store.open()).compute(), study.precision, study.n_reps)
        if reason is not None:
            return reason
        log.info("precision not reached at %d replicates; growing to %d", study.n_reps, n_reps)
        study.n_reps = n_reps


def _run(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    store = RunStore(output_dir)
    try:
        study = validate(cfg)
        if store.exists():
            store.check_provenance(study)
            held = store.n_reps
            if study.auto_reps:
                study.n_reps = max(study.n_reps, held)
            elif study.n_reps < held:
                raise ConfigError("n_reps", f"is {study.n_reps} but {store.path} already holds {held} replicates")
        store.prepare(study)
    except ConfigError as error:
        fail(str(error))
    if study.auto_reps:
        reason = run_until_precise(study, store)
        store.record(stop_reason=reason)
        log.info("stopped: %s", reason)
    else:
        run_missing(study, store)
    dataset = store.open()
    summary = summarise(dataset).compute()
    to_tidy(summary).to_csv(output_dir / SUMMARY, index=False)
    log.info("wrote %s and %s in %s", RESULTS, SUMMARY, output_dir)
    if cfg.get("print_table", True):
        print(format_table(summary))


_hydra_main = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_run)


def main() -> None:
    sys.argv = [sys.argv[0], *preflight(sys.argv[1:])]
    _hydra_main()


if __name__ == "__main__":
    main()
