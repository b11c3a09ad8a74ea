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
from sims.run.config_files import check_config_files, with_user_dirs
from sims.run.dgp_choice import class_dgp_overrides
from estimators.presets import conf_dir
from sims.run.study import Study, validate


# Mappings whose keys the user chooses: Hydra refuses new keys in them without a prefix.
OPEN_MAPPINGS = ("estimators", "grid")


def open_mapping_overrides(overrides: Sequence[str]) -> list[str]:
    """Let ``estimators``, ``grid`` and a DGP's mapping parameters take new keys as plain overrides.

    ``grid.<key>=[...]``, ``estimators.<name>=<preset>``, ``dgp.<param>=<value>`` and
    ``dgp.<param>.<key>=<value>`` (``dgp.extend.Subject=40``) add (or replace) one entry: a DGP
    config need not list every parameter (the class's defaults fill in the rest) and the DGP
    class refuses a name that is not one of its parameters; ``dgp.<param>={key: value}`` merges
    into the parameter's mapping; ``estimators={a: ols, b: ols_cr2}`` replaces the whole mapping instead of merging
    into it. Overrides that already carry a ``+``/``~`` prefix pass unchanged. ``dgp=<module>.<Class>``
    chooses a class as the DGP (:mod:`sims.run.dgp_choice`).
    """
    rewritten = []
    for override in class_dgp_overrides(overrides):
        key, equals, value = override.partition("=")
        root = key.split(".", 1)[0]
        if equals and root == "dgp" and "." in key and key[:1] not in "+~":
            rewritten.append(f"++{override}")
        elif not equals or root not in OPEN_MAPPINGS or key[:1] in "+~":
            rewritten.append(override)
        elif "." in key:
            rewritten.append(f"++{override}")
        else:
            rewritten.extend([f"~{key}", f"+{override}"])
    return rewritten


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The study config ``conf/config.yaml`` with command-line style overrides applied, the
    user's config folders (``./conf``, ``hydra.searchpath``) on the search path and every YAML
    file there checked first (:mod:`sims.run.config_files`)."""
    overrides = with_user_dirs(overrides)
    check_config_files(overrides)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=open_mapping_overrides(overrides))


def run_study(overrides: Sequence[str] = (), progress: Callable | None = None) -> xr.Dataset:
    """Compose, validate and run a study; returns the results dataset."""
    study: Study = validate(compose(overrides))
    chunking.resolve(study)
    budget.check_memory(study, in_memory=True)
    return build_dataset(study, runner.run(study, progress))
