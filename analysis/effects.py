"""Hyperparameter effects: the value against each variable, and a parallel-coordinates view of all trials.

Failed and timed-out trials are drawn too (as red crosses under the OK points, grey lines), because where a
study fails says as much about the search space as where it succeeds.

Example:
    >>> plot_effects(load_run("runs/bamsoo.h5")).savefig("effects.png")
"""

from __future__ import annotations

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from analysis.plotting import STATUS_COLORS, axes_or_new, axis_label, panels, value_colormap
from analysis.runs import FAILED, Run
from pbo.space import Variable


def _format_axis(ax, var: Variable) -> None:
    """Natural units on x: log scale for log variables, choice names for categoricals (stored as indices)."""
    if var.kind == "categorical":
        ax.set_xticks(range(len(var.choices)), [str(c) for c in var.choices])
    elif var.log:
        ax.set_xscale("log")


def plot_effects(run: Run, ncols: int = 3) -> Figure:
    """One panel per variable: each OK trial's value against the variable's natural value, best trial ringed."""
    dim = run.space.dim
    fig, axes = panels(dim, ncols, width=4.0, height=3.2)
    ok, value, x = run.ok, run.trials["value"], run.trials["x"]
    best = run.best_index()
    floor = np.nanmin(value[ok]) if ok.any() else 0.0
    for j, (ax, var) in enumerate(zip(axes, run.space.variables)):
        ax.scatter(x[ok, j], value[ok], s=14, c=np.arange(len(run))[ok], cmap="viridis", alpha=0.8)
        if (~ok).any():
            ax.scatter(x[~ok, j], np.full((~ok).sum(), floor), marker="x", s=18, color=STATUS_COLORS[FAILED],
                       label="failed / timeout")
        if best is not None:
            ax.scatter([x[best, j]], [value[best]], s=90, facecolors="none", edgecolors="red", lw=1.5, label="best")
        _format_axis(ax, var)
        ax.set_xlabel(var.name)
        ax.set_ylabel(axis_label(run))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small")
    fig.suptitle(f"{run.name}: value against each hyperparameter (colour: trial order)")
    return fig


def plot_parallel_coordinates(run: Run, ax=None) -> Figure:
    """Every trial as a line across the variables (unit-cube position), coloured by value; failures grey."""
    fig, ax = axes_or_new(ax, width=max(6.0, 1.6 * run.space.dim), height=4.0)
    u, value, ok = run.trials["u"], run.trials["value"], run.ok
    positions = np.arange(run.space.dim)
    for row in np.flatnonzero(~ok):
        ax.plot(positions, u[row], color="0.75", lw=0.6, alpha=0.7)
    if ok.any():
        norm = Normalize(np.nanmin(value[ok]), np.nanmax(value[ok]))
        cmap = value_colormap(run)
        for row in np.flatnonzero(ok)[np.argsort(run.score(value[ok]))]:  # best drawn last, on top
            ax.plot(positions, u[row], color=cmap(norm(value[row])), lw=1.0, alpha=0.85)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=axis_label(run))
    ax.set_xticks(positions, [_bounds_label(var) for var in run.space.variables], fontsize="small")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("position in range (unit cube)")
    ax.grid(axis="x", color="0.3", lw=0.8)
    ax.set_title(f"{run.name}: parallel coordinates")
    return fig


def _bounds_label(var: Variable) -> str:
    if var.kind == "categorical":
        return f"{var.name}\n{var.choices[0]} .. {var.choices[-1]}"
    return f"{var.name}\n{var.low:g} .. {var.high:g}" + (" (log)" if var.log else "")
