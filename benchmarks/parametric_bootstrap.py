"""The parametric bootstrap LRT (estimators/lmm/bootstrap.py): the B samples of a replicate
fitted as one batch, against a loop that fits them one at a time, on the same samples.

    python benchmarks/parametric_bootstrap.py [--boot 200] [--reps 3]

Design: sims.build("crossed") with 12 subjects x 12 items, y ~ condition + (1 | subject) +
(1 | item), the test of condition (the full and the reduced model refitted by ML to every
sample). Both paths give the same reference distribution bit for bit (checked here); the ratio
is the loop's CPU time over the batch's, BLAS limited to one thread.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose estimators.py would shadow the package

import sims  # noqa: E402
from estimators.lmm import MixedModel  # noqa: E402
from estimators.lmm.bootstrap import reference_distribution, simulate  # noqa: E402
from estimators.lmm.design import build_mixed_design  # noqa: E402

FORMULA = "y ~ condition + (1 | subject) + (1 | item)"


def loop(full: MixedModel, reduced: MixedModel, reduced_fit, rng, n_boot: int) -> np.ndarray:
    Y = simulate(reduced.design, reduced_fit, rng, n_boot)
    out = np.empty(n_boot)
    for b in range(n_boot):
        y = Y[:, b:b + 1]
        out[b] = max(reduced.fit(reduced.outcomes(y))[0].criterion - full.fit(full.outcomes(y))[0].criterion, 0.0)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    dgp = sims.build("crossed", n_subjects=12, n_items=12, effect=0.0)
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; B = {args.boot}, {args.reps} replicates")
    batch_s = loop_s = 0.0
    with threadpool_limits(limits=1):
        for rep in range(args.reps):
            data = dgp.generate(np.random.default_rng(rep))
            design, y = build_mixed_design(FORMULA, data)
            full = MixedModel.from_design(design, reml=False)
            reduced = MixedModel.from_design(design.without_fixed(1), reml=False)
            reduced_fit = reduced.fit(reduced.outcomes(y[:, None]))[0]
            start = time.process_time()
            batched = reference_distribution(full, reduced, reduced_fit, np.random.default_rng(100 + rep), args.boot)
            batch_s += time.process_time() - start
            start = time.process_time()
            looped = loop(full, reduced, reduced_fit, np.random.default_rng(100 + rep), args.boot)
            loop_s += time.process_time() - start
            assert np.array_equal(batched, looped), "batched and looped reference distributions differ"
    per = 1e3 / (args.reps * args.boot)
    print(f"batched: {batch_s * per:.2f} ms per sample (both models); loop: {loop_s * per:.2f} ms; "
          f"ratio {loop_s / batch_s:.1f}x; identical reference distributions: yes")


if __name__ == "__main__":
    main()
