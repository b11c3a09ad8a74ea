"""Run a study from Python with the same configs and overrides as the command line:

    from sims.api import compose, run_study
    results = run_study(["dgp.n_subjects=12", "n_reps=100"])

``run_study`` returns the results dataset (the content of ``results.zarr``); pass it to
``analysis.summarise`` for the measures.
"""
from __future__ import annotations

from typing import Callable, Sequence

import xarray as xr
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from sims.run.dataset import build_dataset
from sims.run import budget, chunking, runner
from sims.run.config_files import check_config_files
from estimators.presets import conf_dir
from sims.run.study import Study, validate


# Mappings whose keys the user chooses: Hydra refuses new keys in them without a prefix.
OPEN_MAPPINGS = ("estimators", "grid")


def open_mapping_overrides(overrides: Sequence[str]) -> list[str]:
    """Let ``estimators``, ``grid`` and a DGP's mapping parameters take new keys as plain overrides.

    ``grid.<key>=[...]``, ``estimators.<name>=<preset>`` and ``dgp.<param>.<key>=<value>``
    (``dgp.extend.Subject=40``; the DGP refuses a key it does not know) add (or replace) one
    entry, ``dgp.<param>={key: value}`` merges into the parameter's mapping; ``estimators={a: ols, b: ols_cr2}`` replaces the whole mapping instead of merging
    into it. Overrides that already carry a ``+``/``~`` prefix pass unchanged.
    """
    rewritten = []
    for override in overrides:
        key, equals, value = override.partition("=")
        root = key.split(".", 1)[0]
        if equals and root == "dgp" and key[:1] not in "+~" and (key.count(".") >= 2 or (key.count(".") == 1 and value.lstrip().startswith("{"))):
            rewritten.append(f"++{override}")
        elif not equals or root not in OPEN_MAPPINGS or key[:1] in "+~":
            rewritten.append(override)
        elif "." in key:
            rewritten.append(f"++{override}")
        else:
            rewritten.extend([f"~{key}", f"+{override}"])
    return rewritten


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The study config ``conf/config.yaml`` with command-line style overrides applied (the YAML
    files on the search path checked first, :mod:`sims.run.config_files`)."""
    check_config_files(overrides)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=open_mapping_overrides(overrides))


def run_study(overrides: Sequence[str] = (), progress: Callable | None = None) -> xr.Dataset:
    """Compose, validate and run a study; returns the results dataset."""
    study: Study = validate(compose(overrides))
    chunking.resolve(study)
    budget.check_memory(study, in_memory=True)
    return build_dataset(study, runner.run(study, progress))
