"""What every figure shares: figures built without pyplot (no global state, no display needed: headless
Agg rendering on save, and notebooks still show them), one colour per algorithm, grouping runs by algorithm."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

from matplotlib import colormaps
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from analysis.runs import FAILED, OK, PRUNED, TIMEOUT, Run

ALGORITHM_COLORS = {"soo": "C0", "bamsoo": "C1", "bo": "C2", "lhs": "C3", "random": "C4"}
STATUS_COLORS = {OK: "#4c9f70", FAILED: "#d1495b", TIMEOUT: "#edae49", PRUNED: "#7b6fb0"}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.0, height: float = 4.0, **kw) -> tuple[Figure, list]:
    """A figure and its axes as a flat list (row by row)."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def panels(n: int, ncols: int, width: float, height: float) -> tuple[Figure, list]:
    """A grid of `n` axes, `ncols` wide at most; grid cells beyond `n` are hidden."""
    ncols = max(1, min(ncols, n))
    fig, axes = new_figure(ncols=ncols, nrows=math.ceil(n / ncols), width=width, height=height)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def value_colormap(run: Run) -> Colormap:
    """Bright for good values whichever the objective's sense."""
    return colormaps["viridis_r" if run.minimize else "viridis"]


def axes_or_new(ax=None, width: float = 6.0, height: float = 4.0):
    """The given axes and their figure, or a new single-axes figure (so a notebook can compose figures)."""
    if ax is not None:
        return ax.figure, ax
    fig, (ax,) = new_figure(width=width, height=height)
    return fig, ax


def color_for(algorithm: str) -> str:
    if algorithm in ALGORITHM_COLORS:
        return ALGORITHM_COLORS[algorithm]
    return f"C{5 + sum(map(ord, algorithm)) % 5}"


def by_algorithm(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.algorithm].append(run)
    return dict(groups)


def axis_label(run: Run) -> str:
    return run.objective or "value"
