"""Summaries of a results dataset: performance measures with Monte Carlo SEs, paired comparisons,
the calibration check, tables, figures (:mod:`analysis.plots`) and the HTML report
(:func:`analysis.report.write_report`). See docs/analysis.md."""
from analysis.calibration import check_calibration
from analysis.compare import compare
from analysis.measures import MEASURES, measure_names, summarise, to_tidy
from analysis.schema import open_results
from analysis.table import format_table

__all__ = ["MEASURES", "check_calibration", "compare", "format_table", "measure_names", "open_results", "summarise",
           "to_tidy", "write_report"]


def __getattr__(name: str):
    # The report needs matplotlib; import it only when asked, so that `import analysis` stays light.
    if name == "write_report":
        from analysis.report import write_report

        return write_report
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
