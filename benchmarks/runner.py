"""Runner benchmarks: a study against drawing its data, parallel speed-up, re-runs, overhead, memory.

    python benchmarks/runner.py                   # all, default sizes
    python benchmarks/runner.py --only study --study-reps 200000
    python benchmarks/runner.py --only small --code /tmp/clustersim-1a1e4db --rounds 7
    python benchmarks/runner.py --only memory --memory-reps 10000 1000000

0. Study (``--only study``): the OLS family (iid and CR1 OLS on the default design) at
   --study-reps replicates as ``clustersim`` runs it (a fresh process: start-up, the store, the
   chunks, the summary), against drawing the same replicates' data in this process
   (``DGP.generate_chunk`` in chunks of 2,500, nothing fitted). Goal: within 3x. Then the same
   command again in the same run directory (a finished study: the checks and the summary).
   Goal: at most 15% of the run. Then the chunks of the same study with runner.n_jobs=1 and 2
   (``run_in_directory`` in this process, the pilot and the store included, the summary not).
   Goal: >= 1.8x on 2 cores. Then ``lmm_rs`` at --lmm-reps replicates, n_jobs=1, end to end,
   against its fits' own time (the sum of the stored ``elapsed_s``). Goal: within 2x.

   ``--only small``: a small study (``n_reps=25``, the OLS pair, the report and table as by
   default) as ``clustersim`` runs it, end to end, in a fresh process, --rounds interleaved
   rounds of this checkout and of ``--code DIR`` (e.g. ``git archive`` of an older commit);
   the median of each and their ratio. Goal: at most half the time of the code before issue 17.

1. Speed-up: replicates per second of the default study's design with OLS, CR1 and
   statsmodels' two mixed models (compute-bound: tens of ms per replicate) with
   runner.n_jobs=1 and 2, through the store as `clustersim` runs it. Goal: >= 1.8x on 2 cores.
2. Overhead: the same study with n_jobs=1, against generating the same replicates and calling
   the same estimators' ``fit`` in a plain loop in this process. Goal: under 5% per replicate.
3. Peak memory: an OLS-family study (iid, HC3, CR1, CR2 on a 12-row design, batched) at each
   size in --memory-reps, chunks of --memory-chunk replicates (default: the runner's 25), in a
   fresh `clustersim` process: the peak over the run of the summed resident sets of the process
   and its workers (sampled from /proc every 50 ms), the main process's own peak (getrusage),
   and its peak while the chunks run (until the ledger's last line). Goal: flat in n_reps.
   ``--code DIR`` runs another checkout's `clustersim` (e.g. ``git archive`` of an older
   commit), for a before/after comparison in one session.

The load average of the machine is printed with each figure. All ratios are measured in one run on the same machine; OPENBLAS_CORETYPE, when set, slows
numpy on these machines and is reported.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The project root first: this folder's estimators.py would otherwise shadow the package.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sims.api import compose  # noqa: E402
from sims.run.rundir import run_in_directory  # noqa: E402
from sims.run.runner import draw_chunk, release_workers  # noqa: E402
from sims.run.seeding import data_rng, estimator_rng  # noqa: E402
from sims.run.study import validate  # noqa: E402

DEFAULT = ["runner.progress=false", "report=false"]
# Compute-bound: the default study's design with statsmodels' mixed models (tens of ms per fit).
COMPUTE_BOUND = "estimators={ols: ols, ols_cr1: ols_cr1, mixedlm_ri: mixedlm_ri, mixedlm_rs: mixedlm_rs}"
OLS_FAMILY = "estimators={ols: ols, hc3: ols_hc3, cr1: ols_cr1, cr2: ols_cr2}"
OLS_STUDY = "estimators={ols: ols, cr1: ols_cr1}"
LMM_STUDY = "estimators={rs: lmm_rs}"
DRAW_CHUNK = 2_500
# Replicates per chunk in the memory benchmark: the same at every size, since a worker holds one
# chunk's frames and results at a time (memory grows with the chunk, by design not with n_reps).
MEMORY_CHUNK = 25


def study_rate(n_reps: int, n_jobs: int) -> float:
    study = validate(compose([f"n_reps={n_reps}", f"runner.n_jobs={n_jobs}", COMPUTE_BOUND, *DEFAULT]))
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_in_directory(study, Path(run_dir))
        return n_reps / (time.perf_counter() - start)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def draw_seconds(n_reps: int, estimators: str) -> float:
    """Wall seconds to draw every replicate's data of the study, in chunks of DRAW_CHUNK."""
    study = validate(compose([f"n_reps={n_reps}", estimators, *DEFAULT]))
    start = time.perf_counter()
    for cell in study.cells:
        for first in range(0, n_reps, DRAW_CHUNK):
            reps = range(first, min(first + DRAW_CHUNK, n_reps))
            draw_chunk(cell.dgp, [data_rng(study.seed, cell.index, rep) for rep in reps])
    return time.perf_counter() - start


def cli_seconds(run_dir: Path, *overrides: str) -> float:
    """Wall seconds of one ``clustersim`` command (a fresh process) in ``run_dir``."""
    command = [sys.executable, "-m", "sims.run.cli", f"hydra.run.dir={run_dir}", "print_table=false",
               *DEFAULT, *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def chunks_seconds(n_reps: int, n_jobs: int, estimators: str) -> float:
    """Wall seconds of ``run_in_directory`` (pilot, store, chunks; no summary) in this process."""
    study = validate(compose([f"n_reps={n_reps}", f"runner.n_jobs={n_jobs}", estimators, *DEFAULT]))
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_in_directory(study, Path(run_dir))
        elapsed = time.perf_counter() - start
        release_workers(study)
        return elapsed


def study_figures(n_reps: int, lmm_reps: int) -> None:
    draw = draw_seconds(n_reps, OLS_STUDY)
    print(f"drawing the data of {n_reps:,} replicates: {draw:.2f} s ({load()})")
    with tempfile.TemporaryDirectory() as run_dir:
        first = cli_seconds(Path(run_dir), f"n_reps={n_reps}", OLS_STUDY)
        print(f"OLS family study, {n_reps:,} replicates, clustersim end to end: {first:.2f} s, "
              f"{first / draw:.2f}x drawing its data (goal <= 3x) ({load()})")
        again = cli_seconds(Path(run_dir), f"n_reps={n_reps}", OLS_STUDY)
        print(f"the same command on the finished study: {again:.2f} s, {100 * again / first:.1f}% of the run "
              f"(goal <= 15%) ({load()})")
    one = chunks_seconds(n_reps, 1, OLS_STUDY)
    two = chunks_seconds(n_reps, 2, OLS_STUDY)
    print(f"its chunks (run_in_directory): n_jobs=1 {one:.2f} s, n_jobs=2 {two:.2f} s, speed-up {one / two:.2f}x "
          f"(goal >= 1.8x) ({load()})")
    with tempfile.TemporaryDirectory() as run_dir:
        wall = cli_seconds(Path(run_dir), f"n_reps={lmm_reps}", LMM_STUDY, "runner.n_jobs=1")
        import xarray as xr

        fits = float(xr.open_zarr(Path(run_dir) / "results.zarr")["elapsed_s"].sum())
    print(f"lmm_rs study, {lmm_reps:,} replicates, n_jobs=1, end to end: {wall:.2f} s against its fits' "
          f"{fits:.2f} s: {wall / fits:.2f}x (goal <= 2x) ({load()})")


def small_study_seconds(code: Path, run_dir: Path) -> float:
    """Wall seconds of ``clustersim n_reps=25`` with the OLS pair (the table and the report
    included), a fresh process running the checkout ``code``."""
    command = [sys.executable, "-m", "sims.run.cli", f"hydra.run.dir={run_dir}", "n_reps=25", OLS_STUDY,
               "runner.progress=false"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def small_study_figures(old: Path | None, rounds: int) -> None:
    """Interleaved rounds (the order alternating) of the small study with this checkout and ``old``."""
    codes = {"this checkout": ROOT, **({f"{old}": old} if old else {})}
    times: dict[str, list[float]] = {name: [] for name in codes}
    loads = []
    for round_ in range(rounds):
        order = list(codes.items()) if round_ % 2 == 0 else list(codes.items())[::-1]
        for name, code in order:
            with tempfile.TemporaryDirectory() as run_dir:
                times[name].append(small_study_seconds(code, Path(run_dir)))
        loads.append(os.getloadavg()[0])
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"small study (25 replicates, OLS pair, report), {name}: median {medians[name]:.2f} s of "
              f"{', '.join(f'{v:.2f}' for v in values)}")
    if old:
        print(f"this checkout / {old}: {medians['this checkout'] / medians[str(old)]:.2f} (goal <= 0.5) "
              f"(1-minute load average {min(loads):.1f}-{max(loads):.1f})")


def loop_rate(n_reps: int) -> float:
    study = validate(compose([f"n_reps={n_reps}", COMPUTE_BOUND, *DEFAULT]))
    cell = study.cells[0]
    start = time.perf_counter()
    for rep in range(n_reps):
        data = cell.dgp.generate(data_rng(study.seed, 0, rep))
        for name, estimator in cell.estimators.items():
            estimator.fit(data, estimator_rng(study.seed, 0, rep, name))
    return n_reps / (time.perf_counter() - start)


def tree_rss_kib(pid: int) -> int:
    """Summed resident set (KiB) of process ``pid`` and all its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended while being read
    return total


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
    except (FileNotFoundError, ProcessLookupError):
        return 0


def peak_memory_mib(n_reps: int, chunk: int = MEMORY_CHUNK, code: str | None = None) -> dict[str, float]:
    """Peaks (MiB) of one study: ``tree`` (the clustersim process and its workers), ``main``
    (the clustersim process alone, getrusage), ``main_run`` (the clustersim process while
    chunks run, i.e. until the ledger's last line); ``seconds`` and ``run_seconds``."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-c", (
            "import resource, sys; from sims.run.cli import main; "
            "sys.argv = sys.argv[1:]; "
            "import atexit; atexit.register(lambda: print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
            "main()"),
            "clustersim", f"hydra.run.dir={run_dir}", f"n_reps={n_reps}", OLS_FAMILY,
            "dgp.n_subjects=6", "dgp.n_trials=1", f"runner.chunk_size={chunk}", "runner.n_jobs=2",
            "print_table=false", *DEFAULT]
        start = time.time()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env, cwd=code or None)
        tree_peak, samples = 0, []
        while process.poll() is None:
            tree_peak = max(tree_peak, tree_rss_kib(process.pid))
            samples.append((time.time(), rss_kib(process.pid)))
            time.sleep(0.05)
        stdout, stderr = process.communicate()
        elapsed = time.time() - start
        ledger = Path(run_dir) / "results.progress"
        run_end = ledger.stat().st_mtime if ledger.exists() else start
    if process.returncode != 0:
        raise RuntimeError(stderr)
    main_peak = max(int(line.split()[1]) for line in stdout.splitlines() if line.startswith("PEAK"))
    run_peak = max((kib for t, kib in samples if t <= run_end), default=0)
    return {"tree": tree_peak / 1024, "main": main_peak / 1024, "main_run": run_peak / 1024,
            "seconds": elapsed, "run_seconds": run_end - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["study", "small", "speedup", "overhead", "memory"])
    parser.add_argument("--study-reps", type=int, default=200_000, help="replicates of the OLS family study")
    parser.add_argument("--lmm-reps", type=int, default=20_000, help="replicates of the lmm_rs study")
    parser.add_argument("--reps", type=int, default=800, help="replicates for speed-up and overhead")
    parser.add_argument("--memory-reps", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--memory-chunk", type=int, default=MEMORY_CHUNK, help="runner.chunk_size of the memory runs")
    parser.add_argument("--code", help="a checkout whose clustersim the memory runs use (default: this one), "
                        "and the small study's baseline")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the small study")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if args.only in (None, "study"):
        study_figures(args.study_reps, args.lmm_reps)
    if args.only in (None, "small"):
        small_study_figures(Path(args.code).resolve() if args.code else None, args.rounds)
    if args.only in (None, "speedup"):
        one, two = study_rate(args.reps, 1), study_rate(args.reps, 2)
        print(f"default study, {args.reps} replicates: n_jobs=1 {one:.1f} rep/s, n_jobs=2 {two:.1f} rep/s, "
              f"speed-up {two / one:.2f}x (goal >= 1.8x)")
    if args.only in (None, "overhead"):
        loop, runner_rate = loop_rate(args.reps), study_rate(args.reps, 1)
        print(f"overhead, {args.reps} replicates, n_jobs=1: plain loop {1e3 / loop:.2f} ms/rep, runner "
              f"{1e3 / runner_rate:.2f} ms/rep, overhead {100 * (loop / runner_rate - 1):+.1f}% (goal < 5%)")
    if args.only in (None, "memory"):
        for n_reps in args.memory_reps:
            peak = peak_memory_mib(n_reps, args.memory_chunk, args.code)
            print(f"OLS family (4 estimators), {n_reps:,} replicates, chunks of {args.memory_chunk}: peak RSS "
                  f"{peak['tree']:.0f} MiB with its workers, {peak['main']:.0f} MiB the clustersim process alone "
                  f"({peak['main_run']:.0f} MiB while the chunks run), {peak['seconds']:.0f} s "
                  f"({peak['run_seconds']:.0f} s to the last chunk)")


if __name__ == "__main__":
    main()
