"""A config builds classes of clustersim's packages and of the modules it lists in
``allow_targets``, nothing else, and a refused target is not even imported."""
from __future__ import annotations

import sys

import pytest

from estimators.presets import ConfigError, check_target
from sims.api import compose
from helpers.cli import main_in_process
from sims.run.study import validate

QUICK = ("n_reps=2", "estimators={ols: ols}", "runner.n_jobs=1", "print_table=false", "report=false")


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    code, lines, _ = main_in_process(monkeypatch, capsys, *QUICK, *args)
    assert len(lines) == 1, lines
    return code, lines[0]


@pytest.fixture
def noisy_module(tmp_path, monkeypatch):
    """A user module that leaves a marker file when it is imported."""
    marker = tmp_path / "imported"
    (tmp_path / "noisy_plugin.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\nclass Thing:\n    def __init__(self, **kw):\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("noisy_plugin", None)


def test_os_system_as_the_dgp_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    cfg = compose(["estimators={ols: ols}", "n_reps=2"])
    cfg.dgp = {"_target_": "os.system", "command": f"touch {marker}"}
    with pytest.raises(ConfigError, match=r"^dgp\._target_: 'os.system' is outside the modules a config may build from"):
        validate(cfg)
    assert not marker.exists()


def test_an_experiment_file_cannot_run_a_shell_command(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "ran"
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "shell.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dgp: null\n"
        f"dgp:\n  _target_: os.system\n  command: touch {marker}\n")
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path / 'run'}",
                          f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=shell")
    assert code == 2 and line.startswith("clustersim: error: dgp._target_: 'os.system'"), line
    assert not marker.exists()


def test_a_module_not_allowed_is_refused_before_it_is_imported(tmp_path, monkeypatch, capsys, noisy_module):
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path / 'run'}", "estimators.x={_target_: noisy_plugin.Thing}")
    assert code == 2 and line.startswith("clustersim: error: estimators.x._target_: 'noisy_plugin.Thing'"), line
    assert "add 'noisy_plugin' to allow_targets" in line
    assert not noisy_module.exists()


def test_allow_targets_lets_a_user_module_in(noisy_module):
    study = validate(compose(["estimators={x: {_target_: noisy_plugin.Thing}}", "allow_targets=[noisy_plugin]", "n_reps=2"]))
    assert type(study.cells[0].estimators["x"]).__name__ == "Thing" and noisy_module.exists()


def test_a_hydra_callback_outside_hydra_is_refused_before_it_is_imported(tmp_path, monkeypatch, capsys, noisy_module):
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path / 'run'}",
                          "+hydra.callbacks.mine={_target_: noisy_plugin.Thing}")
    assert code == 2 and line.startswith("clustersim: error: hydra.callbacks.mine._target_: 'noisy_plugin.Thing'"), line
    assert not noisy_module.exists()


def test_a_file_that_sets_a_hydra_callback_is_refused(tmp_path, monkeypatch, capsys, noisy_module):
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "cb.yaml").write_text(
        "# @package _global_\nhydra:\n  callbacks:\n    mine:\n      _target_: noisy_plugin.Thing\n")
    code, line = run_main(monkeypatch, capsys, f"hydra.run.dir={tmp_path / 'run'}",
                          f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=cb")
    assert code == 2 and "cb.yaml: hydra.callbacks.mine._target_" in line, line
    assert not noisy_module.exists()


@pytest.mark.parametrize("entry, problem", [("os", "standard-library"), ("subprocess", "standard-library"),
                                            ("'my module'", "dotted module name")])
def test_allow_targets_refuses_the_standard_library_and_non_names(entry, problem):
    with pytest.raises(ConfigError, match=rf"^allow_targets\[0\]: .*{problem}"):
        validate(compose([f"allow_targets=[{entry}]", "estimators={ols: ols}", "n_reps=2"]))


def test_a_function_is_not_a_target(tmp_path):
    with pytest.raises(ConfigError, match="^estimators.x._target_: 'sims.run.collect.main' is not a class"):
        validate(compose(["estimators.x={_target_: sims.run.collect.main}", "n_reps=2"]))


@pytest.mark.parametrize("target, allowed, ok", [
    ("estimators.ols.OLS", (), True),
    ("sims.dgp.clustered.ClusteredDGP", (), True),
    ("helpers.misbehaving.SlowOLS", ("helpers",), True),
    ("helpers.misbehaving.SlowOLS", ("helpers.misbehaving",), True),
    ("helpersx.misbehaving.SlowOLS", ("helpers",), False),
    ("simsx.Thing", (), False),
    ("os.system", ("helpers",), False),
    ("OLS", (), False),
    ("estimators..OLS", (), False),
])
def test_a_target_is_allowed_by_whole_module_prefixes(target, allowed, ok):
    if ok:
        check_target(target, "key", allowed)
    else:
        with pytest.raises(ConfigError, match=r"^key\._target_: "):
            check_target(target, "key", allowed)


def test_an_empty_allow_targets_stays_out_of_the_stored_config():
    """So that studies without it keep their provenance hash (and can resume)."""
    assert "allow_targets" not in validate(compose(["estimators={ols: ols}", "n_reps=2"])).config
    study = validate(compose(["estimators={ols: ols}", "n_reps=2", "allow_targets=[helpers]"]))
    assert list(study.config.allow_targets) == ["helpers"]
