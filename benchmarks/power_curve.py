"""Time of a power curve from pilot data: the worked example of docs/dgps.md ("fitted").

    python benchmarks/power_curve.py                       # 4 sizes x 1,000 replicates
    python benchmarks/power_curve.py --reps 500 --sizes 10 20 --loop-reps 50

lme4's sleepstudy fitted with Reaction ~ Days + (Days | Subject), Days set to 3 ms/day, studies
of ``--sizes`` subjects (``experiment=sleepstudy_power``), the maximal model with Satterthwaite
df, run in this process by ``sims.api.run_study`` on one core (``runner.n_jobs=1``) with the
experiment's chunks of 250 replicates and with the runner's default of 25.

The baseline is simr's way, run here with the same engine: one replicate at a time, draw a new
outcome, refit the model and test Days (``LMM.fit`` per data frame, ``--loop-reps`` replicates
per size, scaled to ``--reps``). The ratio is the baseline's time over the study's.

Times are CPU seconds of this process (the machine is shared, so wall time says little) with
BLAS limited to one thread. numpy's speed depends on OPENBLAS_CORETYPE, which may be set on
these machines; it is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

# The repository first: this folder's estimators.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sims  # noqa: E402
from estimators.lmm import LMM  # noqa: E402
from sims.api import run_study  # noqa: E402

MAXIMAL = "Reaction ~ Days + (Days | Subject)"


def study_seconds(sizes: list[int], reps: int, chunk: int) -> tuple[float, float]:
    overrides = ["experiment=sleepstudy_power", f"n_reps={reps}", "runner.n_jobs=1", "runner.progress=false",
                 f"runner.chunk_size={chunk}", f"grid.dgp.extend.Subject=[{','.join(map(str, sizes))}]",
                 f'estimators={{max: {{_target_: estimators.lmm.LMM, formula: "{MAXIMAL}"}}}}']
    cpu, wall = time.process_time(), time.perf_counter()
    run_study(overrides)
    return time.process_time() - cpu, time.perf_counter() - wall


def loop_seconds(sizes: list[int], reps: int) -> float:
    """CPU seconds for ``reps`` replicates per size, one draw and one refit at a time."""
    estimator = LMM(MAXIMAL)
    total = 0.0
    for size in sizes:
        dgp = sims.build("fitted", fixed={"Days": 3.0}, extend={"Subject": size})
        start = time.process_time()
        for r in range(reps):
            estimator.fit(dgp.generate(np.random.default_rng([size, r])))
        total += time.process_time() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 30, 40])
    parser.add_argument("--loop-reps", type=int, default=100)
    args = parser.parse_args()
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, one BLAS thread, "
          f"{len(args.sizes)} sizes {args.sizes} x {args.reps} replicates")
    with threadpool_limits(limits=1):
        study_seconds(args.sizes[:1], 10, 10)  # imports, Hydra and the pilot fit once
        timings = {chunk: study_seconds(args.sizes, args.reps, chunk) for chunk in (250, 25)}
        loop = loop_seconds(args.sizes, args.loop_reps) * args.reps / args.loop_reps
    print(f"{'path':<36} {'CPU s':>8} {'wall s':>8} {'vs loop':>8}")
    for chunk, (cpu, wall) in timings.items():
        print(f"{f'study, chunks of {chunk}':<36} {cpu:>8.1f} {wall:>8.1f} {loop / cpu:>7.1f}x")
    print(f"{f'loop: draw + LMM.fit per replicate':<36} {loop:>8.1f} {'':>8} {'1.0x':>8}")


if __name__ == "__main__":
    main()
