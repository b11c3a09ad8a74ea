"""The configs are found from an editable install (source tree) and from a wheel."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from estimators.presets import conf_dir
from helpers import ROOT


def test_editable_or_source_install_finds_the_source_configs():
    found = conf_dir()
    assert (found / "config.yaml").is_file()
    assert found in (ROOT / "conf", Path(sys.modules["sims"].__file__).parent / "conf")


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A virtual environment with clustersim installed from its wheel, and the dependencies of
    the running interpreter (a venv's or the system's) on its path through a ``.pth`` file:
    ``system_site_packages`` would give the base interpreter's, not an outer venv's."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(work.glob("clustersim-*.whl"))
    env_dir = work / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "outer_site_packages.pth").write_text("".join(f"{path}\n" for path in outer))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    return env_dir, work


def outside_env() -> dict[str, str]:
    """The environment without PYTHONPATH, which would put the source tree before the wheel."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_wheel_ships_configs_inside_the_package_and_runs(wheel_env):
    env_dir, work = wheel_env
    python = env_dir / "bin" / "python"
    outside = work / "elsewhere"
    outside.mkdir()
    probe = subprocess.run(
        [str(python), "-c", "import sims, estimators.presets as p; print(sims.__file__); print(p.conf_dir())"],
        cwd=outside, capture_output=True, text=True, check=True, env=outside_env(),
    ).stdout.split()
    assert str(env_dir) in probe[0], probe
    assert probe[1].startswith(str(env_dir)) and probe[1].endswith("sims/conf"), probe
    done = subprocess.run(
        [str(env_dir / "bin" / "clustersim"), f"hydra.run.dir={work / 'run'}", "n_reps=3",
         "estimators={ols: ols, ols_cr1: ols_cr1}", "runner.n_jobs=1"],
        cwd=outside, capture_output=True, text=True, timeout=300, env=outside_env(),
    )
    assert done.returncode == 0, done.stderr
    assert (work / "run" / "results.zarr").is_dir() and (work / "run" / "summary.csv").is_file()


def test_wheel_ships_the_builtin_pilot_data(wheel_env):
    """``dgp=fitted`` defaults to ``builtin:sleepstudy``, which must resolve inside the wheel, as
    must ``builtin:verbagg``."""
    env_dir, work = wheel_env
    probe = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c",
         "import sims; from sims.dgp.fitted import builtin_datasets, data_path; d = sims.build('fitted'); "
         "print(d.pilot.frame.shape, sorted(d.truth())); print(builtin_datasets(), data_path('builtin:verbagg').stat().st_size)"],
        cwd=work, capture_output=True, text=True, timeout=120, env=outside_env(),
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == ["(180, 3) ['Days', 'Intercept']",
                                         f"['sleepstudy', 'verbagg'] {(ROOT / 'sims/dgp/data/verbagg.csv').stat().st_size}"]
