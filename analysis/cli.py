"""Console commands on finished runs.

``clustersim-check DIR...``: the calibration check (:mod:`analysis.calibration`) on the run in
each DIR; a DIR without ``results.zarr`` stands for its run subdirectories (a Hydra multirun's
sweep directory), and all checks form one table (and one Holm family). Prints the PASS/FAIL
table; exit code 0 when every check passes, 1 when any fails, 2 for bad usage or a directory
without results (one line on stderr).

``clustersim-report DIR...``: writes ``report.html`` into each run directory (see
:mod:`analysis.report`); exit code 2 for a directory without results.

Also ``python -m analysis.cli check DIR`` and ``python -m analysis.cli report DIR``.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.calibration import CalibrationResult, apply_verdicts, check_calibration, format_calibration
from analysis.integrity import DamagedStore, verify_run
from analysis.schema import RESULTS, find_runs, open_results


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _fail(program: str, message: str) -> int:
    print(f"{program}: error: {message}", file=sys.stderr)
    return 2


def _runs(directories: Sequence[str]) -> list[Path]:
    runs: list[Path] = []
    for directory in directories:
        found = find_runs(directory)
        if not found:
            what = "does not exist" if not Path(directory).exists() else f"holds no {RESULTS} (nor do its subdirectories)"
            raise UsageError(f"{directory}: {what}; pass a run directory of clustersim")
        runs.extend(found)
    for run in runs:
        try:
            verify_run(run)
        except DamagedStore as error:
            raise UsageError(str(error)) from None
    return runs


def _overrides(run: Path) -> list[str]:
    import yaml

    try:
        return [str(item) for item in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []]
    except (OSError, ValueError, TypeError):
        return []


def run_labels(runs: Sequence[Path]) -> list[str]:
    """A short label per run: the Hydra overrides that differ between the runs (a multirun's
    swept values), else the directory name."""
    overrides = [_overrides(run) for run in runs]
    common = set.intersection(*(set(o) for o in overrides)) if overrides else set()
    labels = []
    for run, items in zip(runs, overrides):
        differing = [item for item in items if item not in common]
        labels.append(" ".join(differing) if differing else run.name)
    return labels


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clustersim-check",
        description="Is each estimator's coverage, and its Type I error where the truth is 0, consistent with "
                    "nominal? Exact binomial tests with Holm's correction plus a practical band (Bradley's "
                    "liberal criterion by default). Exit code 1 when any check fails.")
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="a run directory (holding results.zarr) or a multirun sweep directory")
    parser.add_argument("--alpha", type=_probability, help="Type I error level tested (default: the study's alpha)")
    parser.add_argument("--level", type=_probability, default=0.05,
                        help="familywise level of the Holm-corrected binomial tests (default 0.05)")
    parser.add_argument("--band", type=_pair, default=(0.5, 1.5), metavar="LOW,HIGH",
                        help="practical band for Type I error, as multiples of alpha (default 0.5,1.5: Bradley)")
    parser.add_argument("--coverage-band", type=_pair, metavar="LOW,HIGH",
                        help="practical band for the miss rate 1 - coverage, as multiples of the nominal miss "
                             "rate (default: same as --band)")
    parser.add_argument("--rule", choices=("both", "test", "band", "either"), default="both",
                        help="FAIL when the test rejects and the rate is outside the band (both, default), "
                             "on one criterion (test, band), or on any (either)")
    parser.add_argument("--family", choices=("all", "estimator"), default="all",
                        help="Holm over all checks (default) or per estimator and term across cells")
    parser.add_argument("--count-failures", action="store_true",
                        help="use all replicates, a failed fit counted as a non-cover / non-rejection")
    parser.add_argument("--max-failure-rate", type=float,
                        help="also FAIL a check whose estimator fails on more than this share of replicates")
    parser.add_argument("--estimators", help="comma-separated estimators to check (default: all)")
    parser.add_argument("--terms", help="comma-separated terms to check (default: all)")
    parser.add_argument("--csv", type=Path, help="also write the table of checks to this CSV file")
    return parser


def run_check(args: argparse.Namespace) -> CalibrationResult:
    options = dict(alpha=args.alpha, level=args.level, band=args.band, coverage_band=args.coverage_band,
                   rule=args.rule, family=args.family, failures="count" if args.count_failures else "exclude",
                   max_failure_rate=args.max_failure_rate,
                   estimators=args.estimators.split(",") if args.estimators else None,
                   terms=args.terms.split(",") if args.terms else None)
    runs = _runs(args.directories)
    results = []
    for run in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = open_results(run / RESULTS)
        results.append(check_calibration(ds, **options))
    if len(results) == 1:
        return results[0]
    tables = []
    for label, result in zip(run_labels(runs), results):
        table = result.table.copy()
        table.insert(0, "run", label)
        tables.append(table)
    settings = dict(results[0].settings)
    settings["interval_alphas"] = {f"{k}@{i}": v for i, r in enumerate(results)
                                   for k, v in r.settings["interval_alphas"].items()}
    combined = pd.concat(tables, ignore_index=True).drop(columns=["p_holm", "in_band", "consistent", "verdict"])
    return CalibrationResult(apply_verdicts(combined, settings), settings)


def check_main(argv: Sequence[str] | None = None) -> int:
    """``clustersim-check``: returns (and, as a console script, exits with) 0, 1 or 2."""
    parser = check_parser()
    args = parser.parse_args(argv)
    try:
        result = run_check(args)
    except UsageError as error:
        return _fail(parser.prog, str(error))
    except (ValueError, KeyError) as error:
        return _fail(parser.prog, str(error).splitlines()[0] if str(error) else type(error).__name__)
    with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_columns", None):
        try:
            print(format_calibration(result))
        except BrokenPipeError:  # e.g. piped into `head`; the exit code still tells the verdict
            sys.stdout = open(os.devnull, "w")
    if args.csv is not None:
        result.table.to_csv(args.csv, index=False)
    return 0 if result.passed else 1


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clustersim-report",
        description="Write report.html (config, provenance, summary tables, calibration check, figures; "
                    "self-contained) into each run directory.")
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="a run directory (holding results.zarr) or a multirun sweep directory")
    parser.add_argument("--output", type=Path, help="write the report here instead (one run directory only)")
    parser.add_argument("--figures", action="store_true",
                        help="also save every figure as PNG and SVG into DIR/figures/")
    return parser


def report_main(argv: Sequence[str] | None = None) -> int:
    """``clustersim-report``: returns 0, or 2 for bad usage."""
    from analysis.report import write_report

    parser = report_parser()
    args = parser.parse_args(argv)
    try:
        runs = _runs(args.directories)
        if args.output is not None and len(runs) != 1:
            raise UsageError(f"--output: needs exactly one run directory, got {len(runs)}")
    except UsageError as error:
        return _fail(parser.prog, str(error))
    for run in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = write_report(run, output=args.output, figures_dir=run / "figures" if args.figures else None)
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"check": check_main, "report": report_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m analysis.cli {check,report} DIR...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
