"""Live comparison with lme4 / lmerTest / pbkrtest on freshly simulated, randomly unbalanced
designs.

Run with ``pytest -m r tests/estimators/lmm/test_live_r.py`` (needs Rscript with lme4,
lmerTest and pbkrtest). The committed fixtures (test_vs_lme4.py) pin exact cases; this test draws new ones
each seed.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estimators.lmm import MixedModel
from estimators.lmm.design import build_mixed_design
from estimators.lmm.satterthwaite import satterthwaite_df

pytestmark = pytest.mark.r

FORMULAS = [
    "y ~ condition + (1 + condition | subject) + (1 + condition | item)",
    "y ~ condition + (1 + condition || subject) + (1 | item)",
    "y ~ condition + x + (1 + x | subject)",
    "y ~ x + (1 | subject/condition)",
]

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fo <- as.formula(args[2]); reml <- args[3] == "TRUE"
ctl <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14,
                   ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 100000))
fit <- suppressMessages(suppressWarnings(lmer(fo, data = d, REML = reml, control = ctl)))
sm <- suppressMessages(suppressWarnings(summary(fit)$coefficients))
crit <- if (reml) REMLcrit(fit) else deviance(fit)
cat(sprintf("%.17g", c(crit, as.numeric(isSingular(fit)), sm[, "Estimate"], sm[, "Std. Error"], sm[, "df"])), sep = "\n")
"""


def simulate(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_subjects, n_items = rng.integers(8, 25), rng.integers(6, 16)
    subject, item = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    subject, item = subject.ravel(), item.ravel()
    condition = np.where((subject + item) % 2 == 0, -0.5, 0.5)
    x = rng.normal(size=subject.size)
    sds = rng.uniform(0, 1, 4)
    y = (0.3 * condition + 0.2 * x + sds[0] * rng.normal(size=n_subjects)[subject]
         + sds[1] * rng.normal(size=n_subjects)[subject] * condition + sds[2] * rng.normal(size=n_items)[item]
         + sds[3] * rng.normal(size=n_subjects)[subject] * x + rng.normal(size=subject.size))
    keep = rng.uniform(size=subject.size) > rng.uniform(0, 0.3)
    frame = pd.DataFrame({"y": y, "condition": condition, "x": x, "subject": subject + 1, "item": item + 1})[keep]
    return frame.round(6)


def run_r(script: str, data: pd.DataFrame, tmp_path: Path, *args: str) -> np.ndarray:
    """The numbers an R script prints, one per line, with the data's CSV path as first argument."""
    path, script_path = tmp_path / "data.csv", tmp_path / "script.R"
    data.to_csv(path, index=False)
    script_path.write_text(script)
    run = subprocess.run(["Rscript", str(script_path), str(path), *args], capture_output=True, text=True, check=True)
    return np.array(run.stdout.split(), dtype=float)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
@pytest.mark.parametrize("seed", range(6))
def test_random_designs_match_lme4(seed, tmp_path: Path):
    data = simulate(seed)
    formula = FORMULAS[seed % len(FORMULAS)]
    for reml in (True, False):
        values = run_r(R_SCRIPT, data, tmp_path, formula, str(reml).upper())
        design, y = build_mixed_design(formula, data)
        p = design.p
        criterion, singular, estimate, se, df = values[0], bool(values[1]), values[2:2 + p], values[2 + p:2 + 2 * p], values[2 + 2 * p:]
        model = MixedModel.from_design(design, reml)
        outcomes = model.outcomes(y[:, None])
        fit = model.fit(outcomes)[0]
        assert (fit.criterion - criterion) / abs(criterion) <= 1e-6
        assert fit.singular == singular
        if abs(fit.criterion - criterion) < 1e-6 * abs(criterion):
            assert np.all(np.abs(fit.beta - estimate) <= 1e-4 * np.maximum(np.abs(estimate), se))
            np.testing.assert_allclose(fit.std_errors, se, rtol=1e-4)
            ours_df = satterthwaite_df(model, outcomes, fit.theta[None], np.array([fit.sigma]))[0]
            np.testing.assert_allclose(ours_df, df, rtol=0.01)


KR_SCRIPT = r"""
suppressPackageStartupMessages({library(lmerTest); library(pbkrtest)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE); fo <- as.formula(args[2])
ctl <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14,
                   ftol_abs = 1e-14, xtol_abs = 1e-12, maxeval = 100000))
fit <- suppressMessages(suppressWarnings(lmer(fo, data = d, REML = TRUE, control = ctl)))
Vadj <- vcovAdj(fit); p <- length(fixef(fit))
df <- vapply(seq_len(p), function(j) Lb_ddf(diag(p)[j, , drop = FALSE], vcov(fit), Vadj), 0)
a_s <- anova(fit, type = 3, ddf = "Satterthwaite"); a_k <- anova(fit, type = 3, ddf = "Kenward-Roger")
cat(sprintf("%.17g", c(REMLcrit(fit), sqrt(diag(as.matrix(Vadj))), df, a_s$`F value`, a_s$DenDF,
                       a_k$`F value`, a_k$DenDF)), sep = "\n")
"""


def simulate_factor(seed: int) -> pd.DataFrame:
    """Subjects x items with a 3-level within-subject factor, randomly unbalanced."""
    rng = np.random.default_rng(1000 + seed)
    n_subjects, n_items = rng.integers(6, 16), rng.integers(4, 10)
    subject, item = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    subject, item = subject.ravel(), item.ravel()
    level = np.array(["a", "b", "c"])[(subject + item) % 3]
    effect = {"a": 0.0, "b": 0.2, "c": 0.5}
    y = (np.vectorize(effect.get)(level) + rng.uniform(0.2, 1) * rng.normal(size=n_subjects)[subject]
         + rng.uniform(0.2, 1) * rng.normal(size=n_items)[item] + rng.normal(size=subject.size))
    keep = rng.uniform(size=subject.size) > rng.uniform(0, 0.3)
    return pd.DataFrame({"y": y, "f": level, "subject": subject + 1, "item": item + 1})[keep].round(6)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
@pytest.mark.parametrize("seed", range(4))
def test_kenward_roger_and_anova_match_pbkrtest(seed, tmp_path: Path):
    from estimators.lmm.kenward_roger import kenward_roger

    data = simulate_factor(seed)
    formula = "y ~ f + (1 | subject) + (1 | item)"
    criterion, se, df, F_s, den_s, F_k, den_k = np.split(run_r(KR_SCRIPT, data, tmp_path, formula), [1, 4, 7, 8, 9, 10])
    design, y = build_mixed_design(formula, data)
    model = MixedModel.from_design(design, True)
    fit = model.fit(model.outcomes(y[:, None]))[0]
    if abs(fit.criterion - criterion[0]) > 1e-8 * abs(criterion[0]):
        pytest.skip("a different optimum than lme4's")
    kr = kenward_roger(model, fit.theta[None], np.array([fit.sigma]))[0]
    np.testing.assert_allclose(kr.std_errors, se, rtol=1e-5)
    np.testing.assert_allclose(kr.coefficient_df(), df, rtol=1e-5)
    satterthwaite, kenward = fit.anova("satterthwaite"), fit.anova("kenward_roger")
    np.testing.assert_allclose([satterthwaite.F[0], kenward.F[0]], [F_s[0], F_k[0]], rtol=1e-5)
    np.testing.assert_allclose(kenward.den_df[0], den_k[0], rtol=1e-5)
    np.testing.assert_allclose(satterthwaite.den_df[0], den_s[0], rtol=2e-3)
