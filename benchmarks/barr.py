"""CPU ms per replicate of the Barr et al. (2013) Type I experiment (``conf/experiment/barr2013.yaml``):
the nine estimators on the same replicates, this checkout against another one (an older commit).

    git -C /path/to/clustersim worktree add --detach /tmp/clustersim-old 5334986
    python3 benchmarks/barr.py --old /tmp/clustersim-old [--rounds 7] [--reps 20]

Every round draws ``--reps`` replicates of each of the experiment's four cells (24 subjects,
12 or 24 items, ``between_items`` or ``counterbalanced``; random parameters and deletions, so
every replicate has its own design) from seeds that change from round to round, and fits all
nine estimators to them (``fit_batch`` per estimator, as the runner calls it) in a fresh process
of each checkout (this script, with the checkout first on PYTHONPATH; no fit or design cached
from an earlier round), the order alternating. BLAS
is limited to one thread. The table gives the median over rounds of CPU ms per replicate per
estimator and in all, and the ratio old / new (the machine is shared: CPU time, interleaved
rounds and medians keep the ratio comparable).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CELLS = [(layout, n_items) for layout in ("between_items", "counterbalanced") for n_items in (12, 24)]


def worker(reps: int, seed: int) -> dict[str, float]:
    """CPU seconds per estimator over the round's replicates, in the checkout on PYTHONPATH."""
    # The script's own folder would shadow the package ``estimators`` with benchmarks/estimators.py.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
    import numpy as np
    from omegaconf import OmegaConf
    from threadpoolctl import threadpool_limits

    from estimators.presets import build, conf_dir, instantiate
    from sims.dgp.crossed import CrossedDGP

    config = OmegaConf.to_container(OmegaConf.load(conf_dir() / "experiment/barr2013.yaml"))
    estimators = {name: build("estimator", spec) if isinstance(spec, str) else instantiate(spec, f"estimators.{name}")
                  for name, spec in config["estimators"].items()}
    frames = []
    for c, (layout, n_items) in enumerate(CELLS):
        dgp = CrossedDGP(n_subjects=24, n_items=n_items, effect=0.0, random_parameters=True,
                         max_missing_share=0.05, layout=layout)
        frames += [dgp.generate(np.random.default_rng([seed, c, r])) for r in range(reps)]
    seconds = {}
    with threadpool_limits(limits=1):
        for name, estimator in estimators.items():
            start = time.process_time()
            estimator.fit_batch(frames)
            seconds[name] = time.process_time() - start
    return seconds


def run_round(tree: Path, reps: int, seed: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "--reps", str(reps),
                          "--seed", str(seed)], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the round in {tree} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="the checkout to compare with (e.g. a worktree of an older commit)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20, help="replicates per cell and round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.reps, args.seed)))
        return
    trees = {"new": HERE} if args.old is None else {"old": args.old.resolve(), "new": HERE}
    if args.old is not None and not (args.old / "estimators").is_dir():
        raise SystemExit(f"--old: {args.old} is not a clustersim checkout (no estimators/)")
    times: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    replicates = args.reps * len(CELLS)
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for name in order:
            times[name].append(run_round(trees[name], args.reps, args.seed + r))
        print(f"round {r + 1}: " + ", ".join(f"{name} {sum(times[name][-1].values()) / replicates * 1e3:.1f} ms/rep"
                                            for name in trees), flush=True)
    estimators = list(times["new"][0])
    median = {name: {e: statistics.median(t[e] for t in runs) / replicates * 1e3 for e in estimators}
              for name, runs in times.items()}
    total = {name: statistics.median(sum(t.values()) for t in runs) / replicates * 1e3 for name, runs in times.items()}
    print(f"\nCPU ms per replicate, median of {args.rounds} rounds of {replicates} replicates "
          f"({args.reps} per cell)\n")
    print("| estimator | " + " | ".join(trees) + (" | old / new |" if "old" in trees else " |"))
    print("|---" * (len(trees) + 1 + ("old" in trees)) + "|")
    for e in estimators + ["all nine"]:
        row = [median[name][e] if e != "all nine" else total[name] for name in trees]
        ratio = f" | {row[0] / row[1]:.1f}x" if "old" in trees and row[1] > 0 else ""
        print(f"| {e} | " + " | ".join(f"{v:.1f}" for v in row) + ratio + " |")


if __name__ == "__main__":
    main()
