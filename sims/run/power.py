"""``clustersim-power``: the smallest number of levels of a grouping factor that reaches a target
power, found by a sequential search that spends replicates where the decision is uncertain.

    clustersim-power experiment=sleepstudy_power --factor Subject --term Days --estimator max \\
        --target 0.8 --sizes 10:80 --out /tmp/clustersim/power

The study is composed from the Hydra overrides as ``clustersim`` composes it (its DGP must take
``extend``, as ``dgp=fitted`` does); a size n is the study with ``dgp.extend.<factor>=n`` and no
grid. Power at n is the share of valid replicates (status ``ok`` or ``singular`` with a p-value)
in which ``--estimator`` rejects ``--term`` at the study's ``alpha``.

How it decides. Power is assumed not to fall as the design grows, so the smallest size with
power >= target is found by bisection over the candidate sizes: first the largest candidate
(if even it falls short, the search says so and stops), then the middle of the interval still
in doubt, and so on. At each size visited, replicates are added ``--step`` at a time until the
exact (Clopper-Pearson) confidence interval of the power excludes the target, or ``--max-reps``
replicates are done. The interval's level is ``--confidence`` divided over the looks a size can
take (Bonferroni: each of ``max_reps / step`` looks uses 1 - (1 - confidence) / looks), so the
probability that a size is put on the wrong side of the target is at most 1 - confidence
whatever the number of looks. A size still undecided at ``--max-reps`` (its power within a
Monte Carlo error of the target) is put on the side of its point estimate and reported as
``undecided``: the answer is then exact only to within such sizes. Sizes far from the target
stop after one or two steps; the replicates go to the sizes near it.

Replicate r at size n is drawn from ``SeedSequence(seed, spawn_key=(n, r))`` (size n takes the
place of a grid cell's index), so every number is reproducible and a size's power does not
depend on the path of the search. Output in ``--out``: ``power.csv`` (size, replicates,
rejections, power, mcse, ci_lower, ci_upper, failure_rate, decision), ``power.png`` and
``power.svg`` (the power at each size visited, with 95% Monte Carlo bands, the target and the
chosen size), and the table on stdout. Bad input stops with one line naming the option or key
and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from hydra.errors import HydraException
from joblib import Parallel, delayed, effective_n_jobs
from omegaconf.errors import OmegaConfBaseException
from scipy import stats

from estimators.presets import ConfigError
from estimators.result import Status
from sims.api import compose
from sims.run.runner import run_chunk
from sims.run.study import Cell, Study, validate

VALID = (int(Status.ok), int(Status.singular))


@dataclasses.dataclass
class SizeResult:
    """Replicates done at one size and their rejections of the term."""

    size: int
    reps: int = 0
    valid: int = 0
    rejections: int = 0
    decision: str = ""  # above | below | undecided (above or below by the point estimate)

    @property
    def power(self) -> float:
        return self.rejections / self.valid if self.valid else math.nan

    @property
    def mcse(self) -> float:
        return math.sqrt(self.power * (1 - self.power) / self.valid) if self.valid else math.nan

    def interval(self, level: float) -> tuple[float, float]:
        """Clopper-Pearson interval of the power at confidence ``level``."""
        if not self.valid:
            return 0.0, 1.0
        ci = stats.binomtest(self.rejections, self.valid).proportion_ci(level, method="exact")
        return float(ci.low), float(ci.high)

    def reaches(self, target: float) -> bool:
        """Decided above the target, or undecided with a point estimate at or above it."""
        return self.decision == "above" or (self.decision == "undecided" and self.power >= target)


@dataclasses.dataclass
class PowerSearch:
    overrides: list[str]
    factor: str
    term: str
    estimator: str
    target: float = 0.8
    sizes: list[int] = dataclasses.field(default_factory=list)
    step: int = 200
    max_reps: int = 4000
    confidence: float = 0.95
    n_jobs: int | None = None  # None: the study's runner.n_jobs
    results: dict[int, SizeResult] = dataclasses.field(default_factory=dict)

    @property
    def looks(self) -> int:
        return math.ceil(self.max_reps / self.step)

    @property
    def look_level(self) -> float:
        """The confidence level of each look (Bonferroni over the looks of a size)."""
        return 1 - (1 - self.confidence) / self.looks

    def check(self) -> None:
        if not 0 < self.target < 1:
            raise ConfigError("--target", f"must be in (0, 1), got {self.target}")
        if not 0 < self.confidence < 1:
            raise ConfigError("--confidence", f"must be in (0, 1), got {self.confidence}")
        if self.step < 1 or self.max_reps < self.step:
            raise ConfigError("--step", f"must be >= 1 and at most --max-reps ({self.max_reps}), got {self.step}")
        if not self.sizes or min(self.sizes) < 2:
            raise ConfigError("--sizes", f"must be sizes >= 2, got {self.sizes}")
        dgp = compose(self.overrides).dgp
        if "extend" not in dgp:
            raise ConfigError("--factor", f"the DGP {dgp.get('_target_')} has no extend parameter (use dgp=fitted)")

    def study(self, size: int) -> Study:
        """The study at ``size``: the overrides, no grid, ``dgp.extend.<factor>=size``."""
        study = validate(compose([*self.overrides, "grid={}", f"dgp.extend.{self.factor}={size}"]))
        if self.estimator not in study.estimator_names:
            raise ConfigError("--estimator", f"{self.estimator!r} is not in the study (estimators: {', '.join(study.estimator_names)})")
        if self.term not in study.terms:
            raise ConfigError("--term", f"{self.term!r} is not a term of the study (terms: {', '.join(study.terms)})")
        return study

    def evaluate(self, size: int) -> SizeResult:
        """Add replicates at ``size`` until its interval excludes the target (or max_reps)."""
        if size in self.results:
            return self.results[size]
        study = self.study(size)
        cell = dataclasses.replace(study.cells[0], index=size, estimators={self.estimator: study.cells[0].estimators[self.estimator]})
        n_jobs = self.n_jobs if self.n_jobs is not None else study.n_jobs
        result = SizeResult(size)
        while result.reps < self.max_reps:
            reps = range(result.reps, min(result.reps + self.step, self.max_reps))
            self._add(result, cell, study, reps, n_jobs)
            low, high = result.interval(self.look_level)
            if low > self.target or high < self.target:
                result.decision = "above" if low > self.target else "below"
                break
        else:
            result.decision = "undecided"
        self.results[size] = result
        return result

    def _add(self, result: SizeResult, cell: Cell, study: Study, reps: range, n_jobs: int) -> None:
        parts = np.array_split(np.arange(reps.start, reps.stop), effective_n_jobs(n_jobs))
        ranges = [range(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
        chunks = Parallel(n_jobs=n_jobs)(delayed(run_chunk)(cell, study.seed, r, study.timeouts) for r in ranges)
        for chunk in chunks:
            fits = chunk.estimators[self.estimator]
            p = fits.values["p_value"][:, fits.terms.index(self.term)] if self.term in fits.terms else np.full(len(fits.status), np.nan)
            valid = np.isin(fits.status, VALID) & np.isfinite(p)
            result.reps += len(p)
            result.valid += int(valid.sum())
            result.rejections += int((p[valid] < study.alpha).sum())

    def run(self) -> int | None:
        """The smallest candidate size whose power reaches the target, or None."""
        self.check()
        sizes = sorted(set(self.sizes))
        if not self.evaluate(sizes[-1]).reaches(self.target):
            return None
        low, high = 0, len(sizes) - 1  # sizes[high] reaches the target
        while low < high:
            middle = (low + high) // 2
            if self.evaluate(sizes[middle]).reaches(self.target):
                high = middle
            else:
                low = middle + 1
        return sizes[high]

    def table(self) -> pd.DataFrame:
        rows = []
        for size in sorted(self.results):
            r = self.results[size]
            low, high = r.interval(self.confidence)
            rows.append({"size": size, "reps": r.reps, "rejections": r.rejections, "power": r.power, "mcse": r.mcse,
                         "ci_lower": low, "ci_upper": high, "failure_rate": 1 - r.valid / r.reps if r.reps else math.nan,
                         "decision": r.decision})
        return pd.DataFrame(rows)


def plot(search: PowerSearch, chosen: int | None, path: Path) -> list[Path]:
    from analysis.plots import _subplots, new_figure, save_figure, style

    table = search.table()
    fig = new_figure(5.5, 3.6)
    ax = _subplots(fig, 1, 1)[0, 0]
    look = style(0)
    band = 1.96 * table["mcse"]
    ax.fill_between(table["size"], table["power"] - band, table["power"] + band, color=look["color"], alpha=0.2,
                    linewidth=0, label="95% Monte Carlo band")
    ax.plot(table["size"], table["power"], color=look["color"], marker=look["marker"], label=f"{search.estimator}: {search.term}")
    ax.axhline(search.target, color="#555555", linestyle="--", linewidth=1, label=f"target {search.target:g}")
    if chosen is not None:
        ax.axvline(chosen, color="#555555", linestyle=":", linewidth=1, label=f"chosen: {chosen}")
    ax.set_xlabel(f"levels of {search.factor}")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return save_figure(fig, path)


def parse_sizes(text: str) -> list[int]:
    """``10,20,40``, ``10:80`` (every integer) or ``10:80:5`` -> sorted candidate sizes."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            start, stop, step = (*parts, 1) if len(parts) == 2 else parts
            sizes = list(range(start, stop + 1, step))
        else:
            sizes = [int(p) for p in text.split(",")]
    except (ValueError, TypeError):
        raise ConfigError("--sizes", f"must be a,b,c or start:stop[:step] integers, got {text!r}") from None
    return sorted(set(sizes))


def format_table(table: pd.DataFrame) -> str:
    shown = table.assign(
        power=[f"{p:.3f} ({m:.3f})" for p, m in zip(table["power"], table["mcse"])],
        ci=[f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(table["ci_lower"], table["ci_upper"])],
        failure_rate=[f"{f:.3f}" for f in table["failure_rate"]],
    )
    return shown[["size", "reps", "power", "ci", "failure_rate", "decision"]].to_string(index=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clustersim-power", description=__doc__.splitlines()[0],
                                     epilog="Other arguments are Hydra overrides of the study, as for clustersim.")
    parser.add_argument("--factor", required=True, help="the grouping factor whose levels are counted (dgp.extend.<factor>)")
    parser.add_argument("--term", required=True, help="the term whose test's power is wanted")
    parser.add_argument("--estimator", required=True, help="the estimator of the study that tests it")
    parser.add_argument("--target", type=float, default=0.8, help="target power (default 0.8)")
    parser.add_argument("--sizes", required=True, help="candidate sizes: a,b,c or start:stop[:step]")
    parser.add_argument("--step", type=int, default=200, help="replicates added per look at a size (default 200)")
    parser.add_argument("--max-reps", type=int, default=4000, help="most replicates at one size (default 4000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence of each size's decision (default 0.95)")
    parser.add_argument("--out", type=Path, required=True, help="folder for power.csv and power.png")
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    try:
        search = PowerSearch(list(overrides), args.factor, args.term, args.estimator, args.target, parse_sizes(args.sizes),
                             args.step, args.max_reps, args.confidence)
        chosen = search.run()
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        print(f"clustersim-power: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    table = search.table()
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "power.csv", index=False)
    plot(search, chosen, args.out / "power")
    print(format_table(table))
    if chosen is None:
        largest = search.results[max(search.results)]
        print(f"the power of {args.estimator} for {args.term} stays below {args.target:g} up to {largest.size} "
              f"levels of {args.factor} ({largest.power:.3f} ({largest.mcse:.3f})): try larger --sizes")
    else:
        best = search.results[chosen]
        note = " (undecided at --max-reps: its power is within Monte Carlo error of the target)" if best.decision == "undecided" else ""
        print(f"smallest size with power >= {args.target:g}: {chosen} levels of {args.factor}, "
              f"power {best.power:.3f} ({best.mcse:.3f}) over {best.reps} replicates{note}")
    print(f"wrote {args.out / 'power.csv'} and {args.out / 'power.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
