"""Convergence: the best value found so far against evaluations or wall-clock time, runs grouped by algorithm.

With several runs of an algorithm (seeds), each run is a thin line and the group adds its median and the
band between its 25th and 75th percentiles. When every run optimizes the same function with a known optimum
(synthetic benchmarks), the y axis is the simple regret on a log scale.

Example:
    >>> fig = plot_convergence([load_run("runs/soo.h5"), load_run("runs/bo.h5")], x="time")
    >>> fig.savefig("convergence.png")
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis.plotting import axes_or_new, axis_label, by_algorithm, color_for
from analysis.runs import Run

#: Regrets below this are drawn at it (a log axis cannot show 0).
REGRET_FLOOR = 1e-12
TIME_POINTS = 200


def common_optimum(runs: Sequence[Run]) -> float | None:
    """The optimum shared by every run, or None (unknown, or runs on different functions)."""
    optima = {(run.objective, run.optimum) for run in runs}
    if len(optima) != 1:
        return None
    return next(iter(optima))[1]


def curve(run: Run, x: str, grid: np.ndarray, optimum: float | None) -> np.ndarray:
    """The run's best-so-far (or regret) sampled on `grid` (evaluation counts or seconds); NaN where unknown."""
    if not len(run):
        return np.full(len(grid), np.nan)
    best = run.best_so_far()
    if optimum is not None:
        best = np.maximum(np.abs(optimum - best), REGRET_FLOOR)
    where = run.trials["t_end"] if x == "time" else np.arange(1, len(run) + 1)
    index = np.searchsorted(where, grid, side="right") - 1  # the last result at or before each grid point
    out = np.where(index >= 0, best[np.maximum(index, 0)], np.nan)
    if x == "evaluations":
        out[grid > len(run)] = np.nan  # a live run has not got there yet
    return out


def plot_convergence(runs: Sequence[Run], x: str = "evaluations", ax=None) -> Figure:
    """Best-so-far against `x` = "evaluations" or "time" (seconds), one colour per algorithm."""
    if x not in ("evaluations", "time"):
        raise ValueError(f"x must be 'evaluations' or 'time', got {x!r}")
    fig, ax = axes_or_new(ax)
    runs = [run for run in runs if run.ok.any()]
    optimum = common_optimum(runs)
    if x == "time":
        grid = np.linspace(0.0, max((run.makespan() for run in runs), default=1.0), TIME_POINTS)
    else:
        grid = np.arange(1, max((len(run) for run in runs), default=1) + 1, dtype=float)
    for algorithm, group in by_algorithm(runs).items():
        color = color_for(algorithm)
        curves = np.array([curve(run, x, grid, optimum) for run in group])
        several = len(group) > 1
        for run, values in zip(group, curves):
            ax.step(grid, values, where="post", color=color, alpha=0.35 if several else 1.0,
                    lw=0.8 if several else 1.6, label=None if several else f"{algorithm} ({run.name})")
        if several:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first result
                lo, mid, hi = np.nanpercentile(curves, [25, 50, 75], axis=0)
            ax.step(grid, mid, where="post", color=color, lw=2.0, label=f"{algorithm} (median of {len(group)})")
            ax.fill_between(grid, lo, hi, step="post", color=color, alpha=0.2)
    ax.set_xlabel("evaluations" if x == "evaluations" else "wall-clock time (s)")
    if optimum is not None:
        ax.set_yscale("log")
        ax.set_ylabel(f"simple regret ({runs[0].objective})")
    else:
        ax.set_ylabel(f"best {axis_label(runs[0]) if runs else 'value'} so far")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize="small")
    ax.set_title(f"convergence vs {'evaluations' if x == 'evaluations' else 'wall-clock time'}")
    return fig
