"""Post-hoc analysis of pbo's HDF5 logs: figures (as functions returning matplotlib Figures), tables, a report.

Example (a notebook):
    >>> from analysis import load_run, plot_convergence, plot_timeline
    >>> runs = [load_run(p) for p in ["runs/soo-s0.h5", "runs/bo-s0.h5"]]
    >>> plot_convergence(runs, x="time")
"""

from analysis.convergence import plot_convergence
from analysis.effects import plot_effects, plot_parallel_coordinates
from analysis.partition import plot_depths, plot_partition, state_counts
from analysis.pruning import compute_markdown, plot_compute, plot_learning_curves
from analysis.document import write_report
from analysis.runs import AnalysisError, Run, load_run
from analysis.scaling import plot_scaling, scaling_markdown, scaling_points
from analysis.tables import comparison_markdown, metrics_markdown
from analysis.timeline import plot_gantt, plot_timeline, plot_utilization

__all__ = ["AnalysisError", "Run", "comparison_markdown", "compute_markdown", "load_run", "metrics_markdown",
           "plot_compute", "plot_convergence", "plot_depths", "plot_effects", "plot_gantt", "plot_learning_curves",
           "plot_parallel_coordinates", "plot_partition", "plot_scaling", "plot_timeline", "plot_utilization",
           "scaling_markdown", "scaling_points", "state_counts", "write_report"]
