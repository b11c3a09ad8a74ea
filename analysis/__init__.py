"""Summaries of a results dataset: performance measures with Monte Carlo SEs, and tables."""
from analysis.measures import MEASURES, summarise, to_tidy
from analysis.schema import open_results
from analysis.table import format_table

__all__ = ["MEASURES", "format_table", "open_results", "summarise", "to_tidy"]
