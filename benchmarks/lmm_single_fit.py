"""CPU ms per single mixed-model fit: clustersim against the PyPI Rust packages glmm and mixedlm,
lme4 and statsmodels, on the same data, one thread each.

    python3 -m venv /tmp/benchenv --system-site-packages
    /tmp/benchenv/bin/pip install glmm mixedlm       # for the benchmark only, never project dependencies
    /tmp/benchenv/bin/python benchmarks/lmm_single_fit.py [--rounds 7] [--seconds 1.0] [--no-r]
                                                          [--designs sleepstudy lecture crossed insteval]

Designs (REML, lme4's defaults):

- ``sleepstudy``: lme4's sleepstudy, ``Reaction ~ Days + (Days | Subject)`` (180 rows);
- ``lecture``: the lecture's 24 subjects x 2 conditions x 10 trials (``sims.build("clustered")``),
  ``y ~ X + (1 + X | subject)``;
- ``crossed``: 30 subjects x 20 items (``sims.build("crossed")``), the maximal
  ``y ~ condition + (1 + condition | subject) + (1 + condition | item)``;
- ``insteval``: lme4's InstEval (73,421 ratings of 1,128 lecturers by 2,972 students),
  ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)``.

sleepstudy and InstEval are exported from R (``lme4::sleepstudy``, ``lme4::InstEval``) into
``--data`` (default /tmp/clustersim-bench-data; never committed) the first time, or taken from
mixedlm's bundled copies when R is missing.

Contenders: ``clustersim .fit`` (``LMM(formula, inference="wald_z").fit(data)``, the prepared
design reused from the per-process cache, as when the same data are refitted); ``clustersim, new
design`` (the cache cleared before every fit: patsy, the cross-products and the fit, what
fitting a new data set costs); on the two simulated designs ``clustersim fit_batch``, ms per
replicate of ``fit_batch`` on a chunk of 250 replicates drawn as the runner draws a fixed design
(``DGP.generate_chunk``), the Monte Carlo path (goal: at least 2x faster than the fastest peer's
single fit); ``glmm.fit(data, formula)``; ``mixedlm.lmer(formula, data)``;
``statsmodels`` ``MixedLM.from_formula(...).fit(reml=True)`` (one grouping factor only); lme4's
``lmer`` in an Rscript process. Every contender is timed in every round, the order rotating from
round to round, and the table gives the median over rounds of CPU ms per fit (the machine is
shared: CPU time, interleaved rounds and medians keep the ratios comparable). BLAS, OpenMP and
Rayon are limited to one thread. Each contender's REML criterion is compared with lme4's
(``criterion vs lme4``: relative difference, positive when worse).

With ``insteval`` the peak memory of a fresh process fitting it (Python: VmHWM; R: the same
from /proc) is printed for each contender, with its increase over the process after loading the
data.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The project root instead of this folder, whose glmm.py (the GLMM benchmark) would shadow the
# PyPI package glmm.
sys.path = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

import sims  # noqa: E402
from estimators.lmm import LMM  # noqa: E402
from estimators.lmm import cache as lmm_cache  # noqa: E402

DESIGNS = {
    # name: formula, statsmodels (fixed part, group, re_formula) or None, R code turning columns into factors
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", ("Reaction ~ Days", "Subject", "~Days"), "d$Subject <- factor(d$Subject)"),
    "lecture": ("y ~ X + (1 + X | subject)", ("y ~ X", "subject", "~X"), "d$subject <- factor(d$subject)"),
    "crossed": ("y ~ condition + (1 + condition | subject) + (1 + condition | item)", None,
                "d$subject <- factor(d$subject); d$item <- factor(d$item)"),
    "insteval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", None,
                 "for (v in c('s', 'd', 'dept', 'service')) d[[v]] <- factor(d[[v]])"),
}

R_EXPORT = r"""
suppressPackageStartupMessages(library(lme4))
out <- commandArgs(trailingOnly = TRUE)[1]
write.csv(sleepstudy, file.path(out, "sleepstudy.csv"), row.names = FALSE)
d <- InstEval
for (v in c("s", "d", "dept", "service", "studage", "lectage")) d[[v]] <- as.character(d[[v]])
write.csv(d, file.path(out, "insteval.csv"), row.names = FALSE)
"""

R_TIME = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); fo <- as.formula(args[2]); seconds <- as.numeric(args[3])
eval(parse(text = args[4]))
cpu <- function() { t <- proc.time(); t[["user.self"]] + t[["sys.self"]] }
quiet <- function(expr) suppressMessages(suppressWarnings(expr))
count <- 0; t0 <- cpu()
repeat { fit <- quiet(lmer(fo, data = d, REML = TRUE)); count <- count + 1; if (cpu() - t0 >= seconds) break }
cat(sprintf("RESULT,%.17g,%.17g\n", 1e3 * (cpu() - t0) / count, REMLcrit(fit)))
"""

R_MEMORY = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
kb <- function(key) { s <- readLines("/proc/self/status"); as.numeric(gsub("[^0-9]", "", s[startsWith(s, key)])) }
d <- read.csv(args[1]); fo <- as.formula(args[2]); eval(parse(text = args[3]))
before <- kb("VmRSS:")
fit <- suppressMessages(suppressWarnings(lmer(fo, data = d, REML = TRUE)))
cat(sprintf("MEMORY,%.1f,%.1f\n", kb("VmHWM:") / 1024, (kb("VmHWM:") - before) / 1024))
"""

PY_MEMORY = r"""
import sys, warnings
sys.path.insert(0, {root!r})
import pandas as pd
def kb(key):
    line = next(l for l in open("/proc/self/status") if l.startswith(key))
    return float(line.split()[1])
contender = {contender!r}
if contender.startswith("clustersim"):
    from estimators.lmm import LMM
elif contender == "glmm":
    import glmm
elif contender == "mixedlm":
    import mixedlm
data = pd.read_csv({path!r})
before = kb("VmRSS:")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if contender.startswith("clustersim"):
        LMM({formula!r}, inference="wald_z").fit(data)
    elif contender == "glmm":
        glmm.fit(data, {formula!r})
    else:
        mixedlm.lmer({formula!r}, data)
print(f"MEMORY,{{kb('VmHWM:') / 1024:.1f}},{{(kb('VmHWM:') - before) / 1024:.1f}}")
"""


def have_lme4() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode == 0


# The fixed designs drawn by sims: name -> (DGP, parameters).
SIMULATED = {"lecture": ("clustered", {}), "crossed": ("crossed", {"n_subjects": 30, "n_items": 20})}
# Replicates per fit_batch call in the batched contender (a chunk of the runner, whose auto chunk
# size aims at 2 s per task: hundreds of replicates for these designs).
BATCH_REPS = 250


def load_data(name: str, folder: Path, use_r: bool, seed: int) -> pd.DataFrame | None:
    if name in SIMULATED:
        dgp, params = SIMULATED[name]
        return sims.build(dgp, **params).generate(np.random.default_rng(seed))
    path = folder / f"{name}.csv"
    if not path.is_file() and use_r:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as script:
            script.write(R_EXPORT)
        subprocess.run(["Rscript", script.name, str(folder)], check=True, capture_output=True)
        os.unlink(script.name)
    if path.is_file():
        return pd.read_csv(path)
    try:  # mixedlm ships both data sets
        import mixedlm.datasets as bundled
        data = getattr(bundled, f"load_{name}")()
        folder.mkdir(parents=True, exist_ok=True)
        data.to_csv(path, index=False)
        return data
    except (ImportError, AttributeError):
        return None


def replicates(name: str, seed: int):
    """BATCH_REPS replicates of a simulated design as the runner draws a chunk of a fixed design
    (one design, an outcome matrix)."""
    dgp, params = SIMULATED[name]
    children = np.random.SeedSequence(seed + 1).spawn(BATCH_REPS)
    return sims.build(dgp, **params).generate_chunk([np.random.default_rng(child) for child in children])


def python_contenders(name: str, data: pd.DataFrame, seed: int) -> dict:
    """name -> (fit(), criterion(result) or None, fits per call) of the contenders importable here."""
    formula, statsmodels_spec, _ = DESIGNS[name]
    ours = LMM(formula, inference="wald_z")
    out = {
        "clustersim .fit": (lambda: ours.fit(data), lambda _: LMM(formula, inference="wald_z").fit_model(data).criterion, 1),
        "clustersim, new design": (lambda: (lmm_cache.models.clear(), ours.fit(data)), None, 1),
    }
    if name in SIMULATED:
        chunk = replicates(name, seed)
        out["clustersim fit_batch"] = (lambda: ours.fit_batch(chunk), None, len(chunk))
    try:
        import glmm
        out["glmm"] = (lambda: glmm.fit(data, formula), lambda fit: -2.0 * fit.loglik, 1)
    except ImportError:
        pass
    try:
        import mixedlm
        out["mixedlm"] = (lambda: mixedlm.lmer(formula, data), lambda fit: fit.REMLcrit(), 1)
    except ImportError:
        pass
    if statsmodels_spec is not None and name != "insteval":
        import statsmodels.formula.api as smf
        fixed, group, re_formula = statsmodels_spec
        out["statsmodels"] = (lambda: smf.mixedlm(fixed, data, groups=data[group], re_formula=re_formula).fit(reml=True), None, 1)
    return out


def time_python(fit, seconds: float, fits_per_call: int = 1) -> tuple[float, object]:
    """CPU ms per fit of ``fit()`` (``fits_per_call`` fits per call), called for ``seconds``."""
    count, start = 0, time.process_time()
    while True:
        result = fit()
        count += fits_per_call
        if time.process_time() - start >= seconds:
            return 1e3 * (time.process_time() - start) / count, result


def time_lme4(name: str, csv: Path, seconds: float) -> tuple[float, float]:
    formula, _, factors = DESIGNS[name]
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as script:
        script.write(R_TIME)
    run = subprocess.run(["Rscript", script.name, str(csv), formula, str(seconds), factors], capture_output=True, text=True, check=True)
    os.unlink(script.name)
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT"))
    ms, criterion = (float(v) for v in line.split(",")[1:])
    return ms, criterion


def peak_memory(contender: str, name: str, csv: Path) -> tuple[float, float] | None:
    formula, _, factors = DESIGNS[name]
    if contender == "lme4":
        with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as script:
            script.write(R_MEMORY)
        command = ["Rscript", script.name, str(csv), formula, factors]
    else:
        command = [sys.executable, "-c", PY_MEMORY.format(root=str(ROOT), contender=contender, path=str(csv), formula=formula)]
    run = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.startswith("MEMORY")]
    return tuple(float(v) for v in lines[0].split(",")[1:]) if lines else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per design (InstEval: --insteval-rounds)")
    parser.add_argument("--insteval-rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per contender and round (at least one fit)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/clustersim-bench-data"))
    parser.add_argument("--seed", type=int, default=20210415)
    parser.add_argument("--no-r", action="store_true", help="skip lme4 even if Rscript is installed")
    parser.add_argument("--no-memory", action="store_true", help="skip InstEval's peak-memory runs")
    args = parser.parse_args(argv)

    use_r = not args.no_r and have_lme4()
    print(f"# CPU ms per fit, one thread, median of interleaved rounds; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; load average {os.getloadavg()[0]:.1f} at the start")
    if not use_r:
        print("# lme4 not timed (no Rscript with lme4, or --no-r)")
    rows = []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.designs:
            data = load_data(name, args.data, use_r, args.seed)
            if data is None:
                print(f"# {name}: no data (needs R with lme4, or mixedlm installed)")
                continue
            csv = args.data / f"{name}.csv"
            if name in ("lecture", "crossed"):
                args.data.mkdir(parents=True, exist_ok=True)
                data.to_csv(csv, index=False)
            contenders = python_contenders(name, data, args.seed)
            for fit, _, _ in contenders.values():  # imports and first-call costs out of the timing
                fit()
            names = list(contenders) + (["lme4"] if use_r else [])
            rounds = args.insteval_rounds if name == "insteval" else args.rounds
            times = {c: [] for c in names}
            criteria = {}
            for r in range(rounds):
                for contender in names[r % len(names):] + names[:r % len(names)]:
                    if contender == "lme4":
                        ms, criteria["lme4"] = time_lme4(name, csv, args.seconds)
                    else:
                        fit, criterion, per_call = contenders[contender]
                        ms, result = time_python(fit, args.seconds, per_call)
                        if criterion is not None and contender not in criteria:
                            criteria[contender] = float(criterion(result))
                    times[contender].append(ms)
            reference = criteria.get("lme4")
            ours = float(np.median(times["clustersim .fit"]))
            for contender in names:
                ms = float(np.median(times[contender]))
                crit = criteria.get(contender)
                rows.append({
                    "design": name, "contender": contender, "ms per fit": ms,
                    "spread %": 100 * (max(times[contender]) - min(times[contender])) / ms,
                    "x clustersim .fit": ms / ours,
                    "criterion vs lme4": np.nan if reference is None or crit is None else (crit - reference) / abs(reference),
                })
            print(pd.DataFrame([row for row in rows if row["design"] == name]).to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
            if name == "insteval" and not args.no_memory:
                print("# InstEval peak memory of a fresh process (MB): peak, increase over the process with its data loaded")
                for contender in [c for c in names if c != "clustersim, new design"]:
                    memory = peak_memory("clustersim" if contender.startswith("clustersim") else contender, name, csv)
                    if memory is not None:
                        print(f"#   {contender:<24} {memory[0]:8.1f} {memory[1]:8.1f}")
    if not rows:
        return
    table = pd.DataFrame(rows)
    print()
    print("# ms per fit (median); ratio = contender / clustersim .fit (> 1: clustersim is faster)")
    wide = table.pivot(index="design", columns="contender", values="ms per fit").reindex(args.designs).dropna(how="all")
    print(wide.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-"))
    ratios = table.pivot(index="design", columns="contender", values="x clustersim .fit").reindex(args.designs).dropna(how="all")
    print(ratios.drop(columns=["clustersim .fit"]).to_string(float_format=lambda v: f"{v:.2f}", na_rep="-"))
    print(textwrap.dedent(f"""
        # largest criterion difference against lme4 (relative, positive = worse than lme4):
        # {table.groupby('contender')['criterion vs lme4'].max().to_dict()}"""))
    peers = [c for c in ("glmm", "mixedlm", "lme4") if c in wide.columns]
    for design in wide.index:
        fastest = wide.loc[design, peers].astype(float)
        if "clustersim fit_batch" in wide.columns and np.isfinite(wide.loc[design, "clustersim fit_batch"]) and fastest.notna().any():
            peer = fastest.idxmin()
            ratio = fastest[peer] / wide.loc[design, "clustersim fit_batch"]
            print(f"# goal: fit_batch per replicate at least 2x faster than the fastest peer's single fit, {design}: "
                  f"{ratio:.2f}x against {peer} ({'met' if ratio >= 2 else 'not met'})")
        if peers and fastest.notna().any():
            peer = fastest.idxmin()
            ratio = fastest[peer] / wide.loc[design, "clustersim .fit"]
            print(f"# goal: one fit at most the fastest peer's time, {design}: {ratio:.2f}x against {peer} "
                  f"({'met' if ratio >= 1 else 'not met'})")


if __name__ == "__main__":
    main()
