"""Where the workers' time went: a Gantt chart of trials per worker, and the fraction of workers busy over time.

Idle gaps between a worker's bars are the scheduler's (and optimizer's) overhead or a lack of parallelism
in the algorithm; a falling utilization curve at the end is the last trials draining.

Example:
    >>> plot_timeline(load_run("runs/bamsoo.h5")).savefig("timeline.png")
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis.plotting import STATUS_COLORS, axes_or_new, new_figure
from analysis.runs import Run

BASELINE_COLOR = "0.55"


def busy_workers(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Step function (times, number of trials running from each time on), from the trials' start/end times."""
    _, start, end = run.spans()
    keep = np.isfinite(start) & np.isfinite(end)
    times = np.concatenate([start[keep], end[keep]])
    steps = np.concatenate([np.ones(keep.sum()), -np.ones(keep.sum())])
    order = np.lexsort((steps, times))  # at equal times, ends before starts
    return np.concatenate([[0.0], times[order]]), np.concatenate([[0.0], np.cumsum(steps[order])])


def plot_gantt(run: Run, ax=None) -> Figure:
    """One row per worker, one bar per trial from its start to its end, coloured by status."""
    fig, ax = axes_or_new(ax, width=8.0, height=max(2.5, 0.3 * run.n_workers + 1.5))
    worker, status = run.trials["worker"], run.trials["status"]
    start, end = run.trials["t_start"], run.trials["t_end"]
    for state, color in STATUS_COLORS.items():
        rows = np.flatnonzero((status == state) & np.isfinite(start) & np.isfinite(end))
        ax.barh(worker[rows], end[rows] - start[rows], left=start[rows], height=0.8, color=color,
                edgecolor="white", linewidth=0.3)
    if run.baseline_span is not None:
        worker_0, start_0, end_0 = run.baseline_span
        ax.barh([worker_0], [end_0 - start_0], left=[start_0], height=0.8, color=BASELINE_COLOR, edgecolor="white")
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel("worker")
    workers = np.unique(run.spans()[0])
    if len(workers):
        ax.set_yticks(workers)
    ax.invert_yaxis()
    handles = [Patch(color=STATUS_COLORS[s], label=s) for s in STATUS_COLORS if (status == s).any()]
    if run.baseline_span is not None:
        handles.append(Patch(color=BASELINE_COLOR, label="baseline (trial 0)"))
    ax.legend(handles=handles, fontsize="small", loc="lower right")
    ax.set_title(f"{run.name}: trials per worker")
    return fig


def plot_utilization(run: Run, ax=None) -> Figure:
    """Fraction of the run's workers busy over time, with its mean over the whole run."""
    fig, ax = axes_or_new(ax, width=8.0, height=3.0)
    times, busy = busy_workers(run)
    ax.step(times, busy / run.n_workers, where="post", color="C0", lw=1.2)
    ax.axhline(run.utilization(), color="C3", ls="--", lw=1.0, label=f"mean {run.utilization():.2f}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel(f"busy fraction of {run.n_workers} workers")
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_timeline(run: Run) -> Figure:
    """The Gantt chart above the utilization curve, on a shared time axis."""
    fig, (gantt, util) = new_figure(nrows=2, width=8.0, height=2.0 + 0.15 * run.n_workers, sharex=True)
    plot_gantt(run, ax=gantt)
    gantt.set_xlabel("")
    plot_utilization(run, ax=util)
    return fig
