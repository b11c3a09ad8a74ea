"""Milliseconds per logistic GLMM fit in a Monte Carlo loop: this package's engine against lme4's
glmer, on the crossed binary design of 30 subjects x 16 items, y ~ c + (1 + c | subject) + (1 | item).

    python benchmarks/glmm.py                   # 3 rounds of 20 replicates
    python benchmarks/glmm.py --reps 10 --rounds 2 --no-r

The replicates are simulated here (condition c = -/+0.5 counterbalanced over items within a
subject, intercept 0.2, effect 0.5, by-subject SDs 0.8 and 0.4 with correlation 0.3, by-item SD
0.5). Each round fits the same replicates by every contender, in turn (interleaved, so that
load on the machine hits them alike):

- ``clustersim batched``: :meth:`estimators.glmm.GLMM.fit_outcomes`, all replicates of the
  fixed design as one outcome matrix (the runner's batched path);
- ``clustersim single``: :meth:`GLMM.fit` one replicate at a time;
- ``lme4 glmer`` and ``lme4 refit``: one Rscript call per round, timed inside R (CPU seconds),
  a fresh ``glmer`` per replicate and ``refit(fit, newresp = y)`` on the first fit, glmer's
  defaults (Laplace, bobyqa then Nelder-Mead), only when Rscript and lme4 are installed.

Times are CPU seconds of one process with BLAS limited to one thread; the medians over rounds
are printed with the ratios glmer / ours, and the largest differences of the -2 log-likelihood
and of the fixed effects between glmer and ours, so that a fast wrong answer shows.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from estimators.glmm import GLMM  # noqa: E402

FORMULA = "y ~ c + (1 + c | subject) + (1 | item)"

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fo <- as.formula(args[2])
reps <- sort(unique(d$rep)); design <- d[d$rep == reps[1], ]
cpu <- function() { t <- proc.time(); t[["user.self"]] + t[["sys.self"]] }
quiet <- function(expr) suppressMessages(suppressWarnings(expr))
t0 <- cpu(); fits <- lapply(reps, function(r) quiet(glmer(fo, d[d$rep == r, ], binomial))); t_glmer <- cpu() - t0
t0 <- cpu(); for (r in reps) quiet(refit(fits[[1]], newresp = d$y[d$rep == r])); t_refit <- cpu() - t0
out <- data.frame(rep = reps, m2ll = sapply(fits, function(f) -2 * as.numeric(logLik(f))),
                  b0 = sapply(fits, function(f) fixef(f)[[1]]), b1 = sapply(fits, function(f) fixef(f)[[2]]))
cat(sprintf("TIMES %.6f %.6f\n", t_glmer, t_refit)); write.csv(out, stdout(), row.names = FALSE)
"""


def design(n_subjects: int = 30, n_items: int = 16) -> pd.DataFrame:
    s, i = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    s, i = s.ravel(), i.ravel()
    return pd.DataFrame({"c": np.where((s + i) % 2 == 0, -0.5, 0.5),
                         "subject": [f"s{k:02d}" for k in s], "item": [f"i{k:02d}" for k in i]})


def simulate(frame: pd.DataFrame, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Outcome matrix (n, reps) of the model in the module docstring."""
    s = pd.factorize(frame.subject, sort=True)[0]
    i = pd.factorize(frame.item, sort=True)[0]
    c = frame.c.to_numpy()
    cov = np.array([[0.64, 0.096], [0.096, 0.16]])
    Y = np.empty((len(frame), reps))
    for r in range(reps):
        us = rng.multivariate_normal([0, 0], cov, s.max() + 1)
        ui = rng.normal(0, 0.5, i.max() + 1)
        eta = 0.2 + 0.5 * c + us[s, 0] + us[s, 1] * c + ui[i]
        Y[:, r] = rng.binomial(1, special.expit(eta))
    return Y


def cpu() -> float:
    return time.process_time()


def run_r(frame: pd.DataFrame, Y: np.ndarray, workdir: Path) -> tuple[float, float, pd.DataFrame]:
    long = pd.concat([frame.assign(y=Y[:, r], rep=r) for r in range(Y.shape[1])])
    path = workdir / "data.csv"
    long.to_csv(path, index=False)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(["Rscript", "-e", R_SCRIPT, str(path), FORMULA], capture_output=True, text=True,
                         env=env, check=True).stdout
    head, body = out.split("\n", 1)
    t_glmer, t_refit = map(float, head.split()[1:])
    return t_glmer, t_refit, pd.read_csv(io.StringIO(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="replicates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--no-r", action="store_true", help="skip lme4")
    args = parser.parse_args()
    use_r = not args.no_r and shutil.which("Rscript") is not None
    frame = design()
    estimator = GLMM(FORMULA)
    rng = np.random.default_rng(args.seed)
    times: dict[str, list[float]] = {}
    worst_m2ll, worst_beta = -np.inf, 0.0
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        estimator.fit_outcomes(frame, simulate(frame, 2, rng))  # warm-up: imports, caches
        for _ in range(args.rounds):
            Y = simulate(frame, args.reps, rng)
            t0 = cpu()
            model, _, _ = estimator.model(frame.assign(y=Y[:, 0]))
            fits = model.fit(Y, np.ones_like(Y))
            times.setdefault("clustersim batched", []).append(cpu() - t0)
            t0 = cpu()
            for r in range(args.reps):
                estimator.fit(frame.assign(y=Y[:, r]))
            times.setdefault("clustersim single", []).append(cpu() - t0)
            if use_r:
                t_glmer, t_refit, ref = run_r(frame, Y, Path(tmp))
                times.setdefault("lme4 glmer", []).append(t_glmer)
                times.setdefault("lme4 refit", []).append(t_refit)
                ours = np.array([fit.minus_two_loglik for fit in fits])
                beta = np.array([fit.beta for fit in fits])
                worst_m2ll = max(worst_m2ll, float(np.max(ours - ref.m2ll.to_numpy())))
                worst_beta = max(worst_beta, float(np.max(np.abs(beta - ref[["b0", "b1"]].to_numpy()))))
    ms = {name: 1000 * float(np.median(values)) / args.reps for name, values in times.items()}
    print(f"crossed binary 30 x 16, {FORMULA}; {args.rounds} rounds x {args.reps} replicates, "
          "median CPU ms per fit")
    for name, value in ms.items():
        ratio = "" if not use_r else f"   glmer / this = {ms['lme4 glmer'] / value:6.1f}"
        print(f"  {name:20s} {value:9.1f}{ratio}")
    if use_r:
        print(f"  largest (ours - glmer) in -2 log L: {worst_m2ll:.2e} (negative: ours lower); "
              f"largest |beta difference|: {worst_beta:.2e}")


if __name__ == "__main__":
    main()
