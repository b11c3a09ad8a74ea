"""A response the family cannot take, or an unknown family or link, stops a study before any
replicate is drawn, with one line naming the estimator's key (and the parameter or column)."""
from __future__ import annotations

import pytest

from helpers.cli import main_in_process

QUICK = ("n_reps=4", "runner.n_jobs=1", "print_table=false", "report=false")


@pytest.mark.parametrize("dgp, estimator, expected", [
    ("clustered", "logit_glm", "estimators.m: column 'y' has values other than 0 and 1"),
    ("clustered", "poisson_glm", "estimators.m: column 'y' has negative or non-integer values"),
    ("clustered", "gee_logit_exch", "estimators.m: column 'y' has values other than 0 and 1"),
    ("crossed", "f1_elogit", "estimators.m: dv column 'y' has values other than 0 and 1"),
    ("clustered_binary", "{preset: logit_glm, family: gamma}", "estimators.m.family: must be one of binomial, poisson"),
    ("clustered_binary", "{preset: logit_glm, link: log}", "estimators.m.link: must be one of logit, probit"),
    ("clustered_counts", "{preset: gee_poisson_exch, link: probit}", "estimators.m.link: must be one of log"),
])
def test_bad_family_input_stops_in_one_line_before_any_replicate(monkeypatch, capsys, tmp_path, dgp, estimator, expected):
    code, err, out = main_in_process(monkeypatch, capsys, f"dgp={dgp}", f"estimators={{m: {estimator}}}",
                                     f"hydra.run.dir={tmp_path}", *QUICK)
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith("clustersim: error: ") and expected in err[0], err[0]
    assert not (tmp_path / "results.progress").exists() or not (tmp_path / "results.progress").read_text().strip()
