"""Replicates per second per core for every estimator preset, against statsmodels' formula API
fitted per replicate in the same run.

    python benchmarks/estimators.py                      # 2,000 replicates, chunks of 25 and 2,000
    python benchmarks/estimators.py --reps 500 --chunks 25

Data: the lecture's design (sims.build("clustered"): 24 subjects x 2 conditions x 10 trials,
480 rows); the F1/F2 presets use the crossed design (sims.build("crossed"), 288 rows). Each
estimator fits the same replicates

- ``batch``: ``fit_batch`` on chunks of ``--chunks`` replicates as the runner hands them over
  for a fixed design: one design frame and the chunk's outcome matrix
  (estimators.batch.SharedDesignFrames, drawn by DGP.generate_chunk; 25 is the runner's default
  chunk size; the OLS family and the LMM engine take the design from their per-process design
  cache (estimators/batch.py) after the first chunk, as in a study);
- ``frames``: ``fit_batch`` on the smallest chunk size given as a list of data frames, as a
  DGP without ``draw_outcome`` hands them over (each frame is read into the outcome matrix);
- ``fit``: one replicate at a time (``--fit-reps`` of them).

Estimators slower than SLOW_RATE fits per second one at a time (statsmodels MixedLM) are timed
on ``--slow-reps`` replicates only. The ``lmm*`` presets (the native mixed-model engine) have
their own benchmark, benchmarks/lmm.py, and are left out unless named with ``--presets``.

The baseline is statsmodels' formula API, one ``smf.<model>(formula, frame).fit(...)`` per
replicate with the numbers a study keeps (params, bse, pvalues, conf_int) read out, on
``--sm-reps`` replicates: ``ols`` for iid, HC and CR0/CR1 (``cov_type`` nonrobust / HCk / cluster),
``ols`` with ``C(subject)`` dummies and cluster SEs for fixed effects, ``gee`` for GEE,
``mixedlm`` for MixedLM; estimators without a statsmodels counterpart (CR2, CR3, the bootstrap,
the LMM engine, F1/F2) are compared with the cluster-robust ``ols`` fit. The ratio is the
baseline's seconds per replicate over ours.

The wild bootstrap (B = 999, p-values and test-inversion intervals for both coefficients) is
also compared with a per-draw loop: for each of the 999 draws, refit OLS and its CR1 t (numpy,
p-values only), on ``--loop-reps`` replicates.

Times are CPU seconds of this process with BLAS limited to one thread: "per core", the least of
REPEATS runs for the batched paths and the statsmodels baselines. numpy's
speed depends on OPENBLAS_CORETYPE, which may be set on these machines; it is printed.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import estimators  # noqa: E402
import sims  # noqa: E402
from estimators import sandwich  # noqa: E402
from estimators.batch import SharedDesignFrames  # noqa: E402
from estimators.design import build_design  # noqa: E402
from estimators.wild_bootstrap import bootstrap_weights  # noqa: E402

SEED = 20210415
SLOW_RATE = 100.0


REPEATS = 5


def cpu_seconds(work: Callable[[], object], repeats: int = 1) -> float:
    """CPU seconds of ``work()``, the least of ``repeats`` runs (as timeit: the others were
    slowed by something else)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return min(times)


def simulate(name: str, reps: int) -> SharedDesignFrames:
    """``reps`` replicates of a fixed-design DGP preset, drawn as the runner draws a chunk."""
    dgp = sims.build(name)
    return dgp.generate_chunk([np.random.default_rng(child) for child in np.random.SeedSequence(SEED).spawn(reps)])


def statsmodels_fit(kind: str, frame: pd.DataFrame) -> None:
    """One statsmodels formula-API fit of the kind, with the numbers a study keeps read out."""
    if kind.startswith("gee"):
        structure = sm.cov_struct.Exchangeable() if kind == "gee_exch" else sm.cov_struct.Independence()
        result = smf.gee("y ~ X", "subject", frame, cov_struct=structure).fit()
    elif kind.startswith("mixedlm"):
        re_formula = "~X" if kind == "mixedlm_rs" else None
        result = smf.mixedlm("y ~ X", frame, groups=frame["subject"], re_formula=re_formula).fit(reml=True, method=["lbfgs"])
    elif kind == "fe":
        result = smf.ols("y ~ X + C(subject)", frame).fit(cov_type="cluster", cov_kwds={"groups": frame["subject"]})
    else:
        cov = {"iid": {}, "CR0": {"cov_type": "cluster", "cov_kwds": {"groups": frame["subject"], "use_correction": False}},
               "CR1": {"cov_type": "cluster", "cov_kwds": {"groups": frame["subject"]}}}
        result = smf.ols("y ~ X", frame).fit(**cov.get(kind, {"cov_type": kind}))
    result.params, result.bse, result.pvalues, result.conf_int()


def baseline_of(preset: str) -> str:
    """The statsmodels fit an estimator preset is compared with (see the module docstring)."""
    estimator = estimators.build(preset)
    params = estimator.get_params()
    if preset in ("gee_ind", "gee_exch", "mixedlm_ri", "mixedlm_rs"):
        return preset
    if preset == "fe_cr1":
        return "fe"
    if params.get("vcov") in ("iid", "HC0", "HC1", "HC2", "HC3", "CR0", "CR1"):
        return params["vcov"]
    return "CR1"


def wild_bootstrap_loop(frame: pd.DataFrame, rng: np.random.Generator, n_boot: int = 999) -> list[float]:
    """WCR p-values of both coefficients by refitting OLS and its CR1 t for every draw."""
    design, y = build_design("y ~ X", frame, "subject")
    X, clusters, G = design.X, design.clusters, design.n_clusters
    n, p = X.shape
    M = sandwich.bread(X)
    indicator = sandwich.cluster_indicator(clusters, G)
    factor = sandwich.cr1_factor(n, p, G)

    def t_statistics(outcome: np.ndarray) -> np.ndarray:
        beta = M @ (X.T @ outcome)
        scores = np.asarray(indicator @ (X * (outcome - X @ beta)[:, None])) @ M
        return beta / np.sqrt(factor * np.einsum("gp,gp->p", scores, scores))

    weights = bootstrap_weights("rademacher", rng, G, n_boot)
    observed = np.abs(t_statistics(y))
    p_values = []
    for j in range(p):
        others = np.delete(X, j, axis=1)
        fitted = others @ np.linalg.lstsq(others, y, rcond=None)[0]
        residuals = y - fitted
        draws = [abs(t_statistics(fitted + residuals * v[clusters])[j]) for v in weights.T]
        p_values.append(float(np.mean(np.array(draws) >= observed[j])))
    return p_values


def rate(reps: int, seconds: float) -> str:
    return f"{reps / seconds:10.0f}" if seconds > 0 else "       inf"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="replicates per estimator (batch path)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[25, 2000], help="chunk sizes for fit_batch")
    parser.add_argument("--fit-reps", type=int, default=200, help="replicates for the one-at-a-time path")
    parser.add_argument("--sm-reps", type=int, default=100, help="replicates for the statsmodels baselines")
    parser.add_argument("--slow-reps", type=int, default=100, help="replicates for estimators slower than SLOW_RATE/s")
    parser.add_argument("--loop-reps", type=int, default=3, help="replicates for the per-draw bootstrap loop")
    parser.add_argument("--presets", nargs="*", default=None, help="estimator presets (default: all but lmm*)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    print(f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, one BLAS thread")
    chunks = {"clustered": simulate("clustered", args.reps), "crossed": simulate("crossed", args.reps)}
    frames = {name: [chunk[r] for r in range(len(chunk))] for name, chunk in chunks.items()}
    # The 4,000 prepared frames out of the cyclic garbage collector's sight: otherwise every
    # full collection triggered by the fits walks them all, a cost a runner's worker (one chunk
    # at a time) does not have. Both our fits and statsmodels' are timed this way.
    gc.collect()
    gc.freeze()
    presets = args.presets or [p for p in sims.available("estimator") if not p.startswith("lmm")]
    small = min(args.chunks)
    with threadpool_limits(limits=1):
        baseline_seconds = {}
        for kind in sorted({baseline_of(p) for p in presets}):
            sample = frames["clustered"][: args.sm_reps if not kind.startswith("mixedlm") else max(args.sm_reps // 10, 5)]
            baseline_seconds[kind] = cpu_seconds(lambda: [statsmodels_fit(kind, f) for f in sample], REPEATS) / len(sample)

        header = "".join(f"  batch/{c:<5d}" for c in args.chunks)
        print(f"\nreplicates per second per core, best of {REPEATS} (ratio: statsmodels s/rep over ours)\n"
              f"{'estimator':<18}{header}  frames/{small:<4d}      fit   statsmodels  {'baseline':<12}"
              + "".join(f"  ratio/{c:<5d}" for c in args.chunks) + "  ratio/frames")
        for preset in presets:
            estimator = estimators.build(preset)
            name = "clustered"
            try:
                estimator.fit(frames[name][0], np.random.default_rng(0))
            except Exception:
                name = "crossed"
            chunk_data, frame_data = chunks[name], frames[name]
            sample = frame_data[: args.fit_reps]
            fit_seconds = cpu_seconds(lambda: [estimator.fit(f, np.random.default_rng(0)) for f in sample[:5]]) / 5
            if 1.0 / fit_seconds >= SLOW_RATE:
                fit_seconds = cpu_seconds(lambda: [estimator.fit(f, np.random.default_rng(0)) for f in sample]) / len(sample)
            else:
                chunk_data, frame_data = chunk_data[: args.slow_reps], frame_data[: args.slow_reps]
            n = len(frame_data)
            rngs = [np.random.default_rng(r) for r in range(n)]

            def seconds_per_replicate(data, size: int) -> float:
                return cpu_seconds(lambda: [estimator.fit_batch(data[s:s + size], rngs[s:s + size])
                                            for s in range(0, n, size)], REPEATS) / n

            batch_seconds = [seconds_per_replicate(chunk_data, size) for size in args.chunks]
            frame_seconds = seconds_per_replicate(frame_data, small)
            kind = baseline_of(preset)
            row = "".join(f"  {rate(1, s)}  " for s in [*batch_seconds, frame_seconds])
            ratios = "".join(f"  {baseline_seconds[kind] / s:10.1f}x" for s in [*batch_seconds, frame_seconds])
            print(f"{preset:<18}{row}{rate(1, fit_seconds)}  {rate(1, baseline_seconds[kind])}    {kind:<12}{ratios}")

        if "ols_wcb" in presets:
            wcb = estimators.build("ols_wcb")
            sample = frames["clustered"][: args.loop_reps]
            loop = cpu_seconds(lambda: [wild_bootstrap_loop(f, np.random.default_rng(r)) for r, f in enumerate(sample)]) / len(sample)
            agree = np.array_equal(wcb.fit(sample[0], np.random.default_rng(0)).p_value,
                                   wild_bootstrap_loop(sample[0], np.random.default_rng(0)))
            chunk = chunks["clustered"][:25]
            single = cpu_seconds(lambda: [wcb.fit(f, np.random.default_rng(r)) for r, f in enumerate(chunk)]) / len(chunk)
            batched = cpu_seconds(lambda: wcb.fit_batch(chunk, [np.random.default_rng(r) for r in range(len(chunk))])) / len(chunk)
            print(f"\nwild bootstrap, B = 999, per replicate: per-draw loop {loop * 1e3:.1f} ms (p-values only); "
                  f"ours {batched * 1e3:.2f} ms in chunks of 25 ({loop / batched:.1f}x), {single * 1e3:.2f} ms one "
                  f"at a time ({loop / single:.1f}x), p-values and intervals; same p-values as the loop: {agree}")


if __name__ == "__main__":
    main()
