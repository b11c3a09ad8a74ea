"""Every file in conf/ composes and instantiates, so a broken YAML fails here, not in a study."""
from __future__ import annotations

import pytest
import yaml

import estimators
import sims
from estimators.base import Estimator
from sims.api import compose
from sims.dgp.base import DGP
from estimators.presets import available, conf_dir
from sims.run.study import validate


@pytest.mark.parametrize("name", available("dgp"))
def test_dgp_config_instantiates_with_its_defaults(name):
    dgp = sims.build(name)
    assert isinstance(dgp, DGP)
    with (conf_dir() / "dgp" / f"{name}.yaml").open() as handle:
        params = {k: v for k, v in yaml.safe_load(handle).items() if k != "_target_"}
    assert {k: dgp.params()[k] for k in params} == params


@pytest.mark.parametrize("name", available("estimator"))
def test_estimator_config_instantiates(name):
    estimator = estimators.build(name)
    assert isinstance(estimator, Estimator)
    assert estimator == estimator.clone()


@pytest.mark.parametrize("name", available("runner"))
def test_runner_config_composes(name):
    cfg = compose([f"runner={name}"])
    assert cfg.runner.chunk_size == "auto" or cfg.runner.chunk_size >= 1


@pytest.mark.parametrize("name", available("experiment"))
def test_experiment_composes_and_validates(name):
    study = validate(compose([f"experiment={name}"]))
    assert study.cells and study.estimator_names


def test_default_config_validates():
    study = validate(compose())
    assert study.estimator_names == ["ols", "ols_cr1", "lmm_ri", "lmm_rs"]
    assert study.n_reps == 200 and study.alpha == 0.05 and not study.grid
