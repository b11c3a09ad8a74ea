"""A finished study run again with nothing changed keeps its summary and report (sims/run/kept_outputs.py);
any change to the store, the config, the outputs or the code recomputes them."""
from __future__ import annotations

import subprocess

from omegaconf import OmegaConf

from helpers.cli import clustersim_command, env_with_helpers
from sims.run import kept_outputs

COMMON = ("n_reps=20", "runner.n_jobs=1", "runner.progress=false")


def run(run_dir, *overrides) -> subprocess.CompletedProcess:
    done = subprocess.run([*clustersim_command(), f"hydra.run.dir={run_dir}", *COMMON, *overrides],
                          capture_output=True, text=True, timeout=600, env=env_with_helpers())
    assert done.returncode == 0, done.stderr
    return done


def kept(done: subprocess.CompletedProcess) -> bool:
    return "nothing changed since summary.csv was written" in done.stdout + done.stderr


def table(done: subprocess.CompletedProcess) -> list[str]:
    """The printed lines but the log's (which start with a timestamp in brackets)."""
    return [line for line in done.stdout.splitlines() if not line.startswith("[")]


def test_a_rerun_keeps_the_outputs_only_while_nothing_changed(tmp_path):
    summary, report = tmp_path / "summary.csv", tmp_path / "report.html"
    first = run(tmp_path, "report=false")
    assert not kept(first) and not report.exists()
    written = summary.stat().st_mtime_ns
    again = run(tmp_path, "report=false")
    assert kept(again) and summary.stat().st_mtime_ns == written
    assert table(again) == table(first) and table(first)  # the same table, printed from the kept text
    with_report = run(tmp_path)  # the config asks for a report now
    assert not kept(with_report) and report.exists()
    assert kept(run(tmp_path))
    text = summary.read_text()
    summary.write_text(text.replace("0.", "9.", 1))  # an edited output is not trusted
    assert not kept(run(tmp_path)) and summary.read_text() == text
    grown = run(tmp_path, "n_reps=30")  # more replicates: a new ledger
    assert not kept(grown) and table(grown) != table(with_report)


def test_the_key_covers_the_code(tmp_path, monkeypatch):
    (tmp_path / "results.progress").write_text('{"meta": "x"}\n')
    cfg = OmegaConf.create({"n_reps": 20})
    monkeypatch.setattr(kept_outputs, "_code_digest", lambda: "one version")
    key = kept_outputs.inputs_key(cfg, tmp_path)
    monkeypatch.setattr(kept_outputs, "_code_digest", lambda: "another version")
    assert kept_outputs.inputs_key(cfg, tmp_path) != key
