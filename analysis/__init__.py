"""Reading results, Pareto fronts and the HTML comparison report."""

from analysis.load import Results, load_results

__all__ = ["Results", "load_results"]
