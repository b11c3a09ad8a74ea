"""Summaries of a results dataset: performance measures with Monte Carlo SEs, paired comparisons,
the calibration check, tables, figures (:mod:`analysis.plots`) and the HTML report
(:func:`analysis.report.write_report`). See docs/analysis.md."""
import importlib

from analysis.compare import compare  # eagerly: the submodule's name would shadow the function

# Where each name lives, imported when first asked for, so that importing one module of the
# package (``analysis.measures``) does not import the others (the calibration check's
# scipy.stats, the report's matplotlib).
_HOMES = {
    "MEASURES": "analysis.measures", "check_calibration": "analysis.calibration",
    "format_table": "analysis.table", "measure_names": "analysis.measures", "open_results": "analysis.schema",
    "summarise": "analysis.measures", "to_tidy": "analysis.measures", "write_report": "analysis.report",
}
__all__ = sorted([*_HOMES, "compare"])


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
