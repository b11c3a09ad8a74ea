"""Milliseconds per mixed-model fit: this package's engine against statsmodels MixedLM and lme4.

    python benchmarks/lmm.py                 # all designs, 250 replicates each
    python benchmarks/lmm.py --reps 40 --no-r

For each design, one set of simulated replicates is fitted by

- ``clustersim fit_batch``: :class:`estimators.lmm.LMM` on chunks of ``--chunk`` replicates
  drawn as the runner draws a chunk of a fixed design (``DGP.generate_chunk``: the design's
  columns and an outcome matrix), as the runner calls it (a design and its cross-products once
  per chunk; the runner's ``chunk_size: auto`` aims at 2 s per task, hundreds of replicates
  here, which the engine fits in batches of :attr:`~estimators.lmm.MixedModel.batch_size`);
- ``clustersim fit``: the same estimator one replicate at a time;
- ``statsmodels MixedLM``: estimators.mixedlm on the first ``--sm-reps`` replicates (it cannot
  fit crossed random effects);
- ``lme4 lmer`` and ``lme4 refit``: Rscript with lme4's defaults, a fresh ``lmer`` per replicate
  and ``refit(fit, newresp = y)`` on the first fit (only when Rscript and lme4 are installed).

All fits are REML with Wald inference (estimates and SEs, what lmer returns); a last row per
design adds lmerTest-style Satterthwaite df to ours. Times are CPU seconds of one process on
one thread (BLAS limited to 1 thread, OMP/OPENBLAS_NUM_THREADS=1 for R): "per core". Ratios are
the baseline's ms per fit over ours (fit_batch). The script also prints the largest difference
in fixed effects between engines, so a fast wrong answer cannot pass unnoticed.
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
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sims  # noqa: E402
from estimators.lmm import LMM  # noqa: E402
from estimators.mixedlm import MixedLM  # noqa: E402

DESIGNS = [
    # name, DGP and its parameters, lme4 formula, statsmodels re_formula (None: cannot fit)
    ("seed 24x2x10, (1|subject)", ("clustered", {}), "y ~ X + (1 | subject)", "~1"),
    ("seed 24x2x10, (1+X|subject)", ("clustered", {}), "y ~ X + (1 + X | subject)", "~X"),
    ("crossed 30x20, maximal", ("crossed", {"n_subjects": 30, "n_items": 20}),
     "y ~ condition + (1 + condition | subject) + (1 + condition | item)", None),
]

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fo <- as.formula(args[2])
frames <- split(d, d$rep)
cpu <- function() { t <- proc.time(); t[["user.self"]] + t[["sys.self"]] }
quiet <- function(expr) suppressMessages(suppressWarnings(expr))
fits <- vector("list", length(frames))
t0 <- cpu()
for (r in seq_along(frames)) fits[[r]] <- quiet(lmer(fo, data = frames[[r]], REML = TRUE))
t_lmer <- cpu() - t0
first <- fits[[1]]
refits <- vector("list", length(frames))
t0 <- cpu()
for (r in seq_along(frames)) refits[[r]] <- quiet(refit(first, newresp = frames[[r]]$y))
t_refit <- cpu() - t0
cat(sprintf("TIMES,%.17g,%.17g\n", t_lmer, t_refit))
for (r in seq_along(refits)) cat("BETA,", paste(sprintf("%.17g", fixef(refits[[r]])), collapse = ","), "\n", sep = "")
"""


def simulate(dgp_name: str, params: dict, reps: int, seed: int):
    """``reps`` replicates as the runner draws a chunk of a fixed design (a sequence of frames)."""
    dgp = sims.build(dgp_name, **params)
    root = np.random.SeedSequence(seed)
    return dgp.generate_chunk([np.random.default_rng(child) for child in root.spawn(reps)])


def cpu_ms_per_fit(function, count: int) -> tuple[float, object]:
    start = time.process_time()
    output = function()
    return 1e3 * (time.process_time() - start) / count, output


def time_ours(formula: str, frames: list[pd.DataFrame], chunk: int, inference: str = "wald_z"):
    estimator = LMM(formula, inference=inference)
    estimator.fit_batch(frames[:2])  # imports and first-call overheads out of the timing

    def batched():
        out = []
        for start in range(0, len(frames), chunk):
            out.extend(estimator.fit_batch(frames[start:start + chunk]))
        return out

    return cpu_ms_per_fit(batched, len(frames))


def time_single(formula: str, frames: list[pd.DataFrame]):
    estimator = LMM(formula, inference="wald_z")
    return cpu_ms_per_fit(lambda: [estimator.fit(frame) for frame in frames], len(frames))


def time_statsmodels(formula: str, re_formula: str, frames: list[pd.DataFrame]):
    fixed = formula.split("+ (")[0].strip()
    estimator = MixedLM(fixed, groups="subject", re_formula=None if re_formula == "~1" else re_formula)
    return cpu_ms_per_fit(lambda: [estimator.fit(frame) for frame in frames], len(frames))


def lme4_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True)
    return probe.returncode == 0


def time_lme4(formula: str, frames: list[pd.DataFrame]) -> tuple[float, float, np.ndarray]:
    """(lmer ms per fit, refit ms per fit, refit fixed effects (R, p)) from one Rscript run."""
    with tempfile.TemporaryDirectory() as folder:
        data = pd.concat([frames[r].assign(rep=r) for r in range(len(frames))])
        path = Path(folder) / "data.csv"
        data.to_csv(path, index=False, float_format="%.17g")
        script = Path(folder) / "bench.R"
        script.write_text(R_SCRIPT)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        run = subprocess.run(["Rscript", str(script), str(path), formula], capture_output=True, text=True, env=env, check=True)
    lines = run.stdout.splitlines()
    t_lmer, t_refit = (float(v) for v in next(l for l in lines if l.startswith("TIMES")).split(",")[1:])
    beta = np.loadtxt(io.StringIO("\n".join(l.split(",", 1)[1] for l in lines if l.startswith("BETA"))), delimiter=",", ndmin=2)
    return 1e3 * t_lmer / len(frames), 1e3 * t_refit / len(frames), beta


def largest_difference(ours, beta_other: np.ndarray) -> float:
    beta_ours = np.array([r.estimate for r in ours[:len(beta_other)]])
    scale = np.array([r.std_error for r in ours[:len(beta_other)]])
    return float(np.max(np.abs(beta_ours - beta_other) / scale))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=250, help="replicates per design (ours and lme4)")
    parser.add_argument("--sm-reps", type=int, default=20, help="replicates for statsmodels (slow)")
    parser.add_argument("--chunk", type=int, default=250, help="replicates per fit_batch call (runner.chunk_size)")
    parser.add_argument("--seed", type=int, default=20210415)
    parser.add_argument("--no-r", action="store_true", help="skip lme4 even if Rscript is installed")
    parser.add_argument("--no-statsmodels", action="store_true")
    args = parser.parse_args(argv)

    use_r = not args.no_r and lme4_available()
    print(f"# CPU ms per fit, one thread; {args.reps} replicates per design, fit_batch chunks of {args.chunk}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if not use_r:
        print("# lme4 not timed (no Rscript with lme4, or --no-r)")
    rows = []
    with threadpool_limits(limits=1):
        for name, (dgp_name, params), formula, re_formula in DESIGNS:
            frames = simulate(dgp_name, params, args.reps, args.seed)
            ours_ms, ours = time_ours(formula, frames, args.chunk)
            single_ms, _ = time_single(formula, [frames[r] for r in range(min(len(frames), 40))])
            satt_ms, _ = time_ours(formula, frames, args.chunk, inference="satterthwaite")
            row = {"design": name, "ours fit_batch": ours_ms, "ours fit": single_ms, "ours + Satterthwaite": satt_ms}
            checks = []
            if not args.no_statsmodels and re_formula is not None:
                sm_frames = [frames[r] for r in range(min(len(frames), args.sm_reps))]
                row["statsmodels"], sm = time_statsmodels(formula, re_formula, sm_frames)
                checks.append(f"statsmodels {largest_difference(ours, np.array([r.estimate for r in sm])):.1e}")
            if use_r:
                row["lme4 lmer"], row["lme4 refit"], beta = time_lme4(formula, frames)
                checks.append(f"lme4 {largest_difference(ours, beta):.1e}")
            rows.append(row)
            print(f"# {name}: largest |beta difference| / SE vs " + (", ".join(checks) or "-"))

    table = pd.DataFrame(rows).set_index("design")
    print(table.round(3).to_string(na_rep="-"))
    print()
    ratios = pd.DataFrame({f"{c} / ours": table[c] / table["ours fit_batch"]
                           for c in ("statsmodels", "lme4 lmer", "lme4 refit") if c in table})
    if not ratios.empty:
        print("# speed-up of ours (fit_batch) over each baseline")
        print(ratios.round(1).to_string(na_rep="-"))
    goals = [("seed", "statsmodels", 100), ("seed", "lme4 refit", 10), ("crossed", "lme4 refit", 3)]
    for prefix, baseline, goal in goals:
        column = f"{baseline} / ours"
        if column not in ratios:
            continue
        for design, ratio in ratios[column].items():
            if design.startswith(prefix) and np.isfinite(ratio):
                print(f"goal >= {goal:>3}x {baseline:<12} {design:<30} {ratio:7.1f}x  {'met' if ratio >= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
