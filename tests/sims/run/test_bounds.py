"""Inputs that would allocate without bound stop before anything of that size is allocated,
in one line naming the key: replicate counts, chunk sizes, grids, the store against the free
disk, and YAML aliases that expand exponentially ("billion laughs")."""
from __future__ import annotations

import resource
import subprocess

import pytest
import yaml

from estimators import bounded_yaml
from helpers.cli import clustersim_command, env_with_helpers, main_in_process
from sims.api import compose
from sims.run import budget
from estimators.presets import ConfigError

MEMORY_LIMIT = 4 * 2**30  # ulimit -v for the commands: a bound that fails gives a MemoryError, not a swap storm


def limited_command(*args, timeout=90) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, resource.RLIM_INFINITY))

    return subprocess.run([*clustersim_command(), *args, "print_table=false", "report=false"], capture_output=True,
                          text=True, preexec_fn=limit, env=env_with_helpers(), timeout=timeout)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return lines[0]


GRID_OF_120000 = [f"grid.dgp.{key}=[{','.join(map(str, range(1, n + 1)))}]"
                  for key, n in (("n_subjects", 4), ("slope", 10), ("var_slope", 10), ("var_intercept", 10),
                                 ("var_residual", 10), ("intercept", 3))]
TOO_BIG = {
    "a billion replicates": (["n_reps=1000000000"], "n_reps"),
    "a trillion replicates": (["n_reps=1000000000000"], "n_reps"),
    "1e12 replicates": (["n_reps=1e12"], "n_reps"),
    "precision.max_reps 1e12": (["n_reps=auto", "+precision={max_reps: 1e12}"], "precision.max_reps"),
    "precision.max_reps a trillion": (["n_reps=auto", "+precision={max_reps: 1000000000000}"], "precision.max_reps"),
    "precision with a fixed n_reps": (["+precision={max_reps: 1000000000000}"], "precision.max_reps"),
    "chunks of a billion": (["runner.chunk_size=1000000000"], "runner.chunk_size"),
    "a grid of 120000 cells": (GRID_OF_120000, "grid"),
}


@pytest.mark.parametrize("overrides, key", TOO_BIG.values(), ids=TOO_BIG)
def test_counts_too_big_for_the_machine_stop_before_allocating(tmp_path, overrides, key):
    done = limited_command(f"hydra.run.dir={tmp_path}", "runner.n_jobs=1", *overrides)
    assert done.returncode == 2
    assert one_line(done).startswith(f"clustersim: error: {key}: "), done.stderr
    assert not (tmp_path / "results.zarr").exists()


def test_results_larger_than_the_free_disk_are_refused_before_the_store(tmp_path, monkeypatch, capsys):
    real = budget.shutil.disk_usage
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda path: real(path)._replace(free=10**6))
    code, err, _ = main_in_process(monkeypatch, capsys, f"hydra.run.dir={tmp_path}", "n_reps=100000",
                                   "estimators={ols: ols}", "print_table=false", "report=false")
    assert code == 2 and len(err) == 1
    line = err[0]
    assert line.startswith("clustersim: error: n_reps: the results would take about 12.1 MB"), line
    assert "1.0 MB are free" in line and not (tmp_path / "results.zarr").exists()


def test_the_disk_check_counts_only_replicates_not_stored_yet(small_study, tmp_path, monkeypatch):
    study = small_study("n_reps=1000", "estimators={ols: ols}")
    need = budget.store_bytes(study, 1000)
    assert need == 1000 * (2 * 6 * 8 + 1 + 8 + 16)  # two terms of six float64s, status, time, message
    real = budget.shutil.disk_usage
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda path: real(path)._replace(free=need // 2))
    with pytest.raises(ConfigError, match="^n_reps: "):
        budget.check_disk(study, tmp_path)
    budget.check_disk(study, tmp_path, held_reps=600)


def laughs(levels: int = 9) -> str:
    lines = ["# @package _global_", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, "n_reps: 5", ""])


def test_an_experiment_with_a_billion_laughs_is_refused(tmp_path):
    experiments = tmp_path / "conf" / "experiment"
    experiments.mkdir(parents=True)
    (experiments / "laughs.yaml").write_text(laughs())
    done = limited_command(f"hydra.run.dir={tmp_path / 'run'}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                           "experiment=laughs", timeout=60)
    assert done.returncode == 2
    line = one_line(done)
    assert str(experiments / "laughs.yaml") in line and "aliases expand to more than" in line, line


def test_compose_refuses_a_billion_laughs_on_the_search_path(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "laughs.yaml").write_text(laughs())
    with pytest.raises(ConfigError, match="laughs.yaml: its YAML aliases expand"):
        compose([f"hydra.searchpath=[file://{tmp_path}]", "experiment=laughs"])


def test_aliases_are_counted_on_the_node_graph(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(levels=4))
    distinct, expanded = bounded_yaml.expanded_size(yaml.compose(path.read_text()), limit=10**9)
    # the root, 5 keys, a0 (a list of 9), the lists a1..a3 of aliases, n_reps's value
    assert distinct == 1 + 5 + 10 + 3 + 1
    # a0 expands to 10 nodes, a1 to 1 + 9 * 10, a2 to 1 + 9 * 91, a3 to 1 + 9 * 820
    assert expanded == 1 + 5 + 10 + 91 + 820 + 7381 + 1


def test_reused_anchors_and_merge_keys_load_as_safe_load_does(tmp_path):
    text = "base: &b {x: 1, y: [1, 2, 3]}\nother: {<<: *b, z: 2}\nthird: *b\n"
    (tmp_path / "ok.yaml").write_text(text)
    assert bounded_yaml.load(tmp_path / "ok.yaml") == yaml.safe_load(text)


def test_a_recursive_alias_is_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(bounded_yaml.YAMLLimitError, match="recursive alias"):
        bounded_yaml.load(tmp_path / "loop.yaml")


def test_a_stored_config_is_checked_before_replay_parses_it():
    with pytest.raises(bounded_yaml.YAMLLimitError, match="^results.zarr: its YAML aliases expand"):
        bounded_yaml.check_text(laughs(), "results.zarr")
