"""The SOO / BaMSOO partition tree: cells projected on pairs of variables, depth histogram, node counts.

A leaf cell is drawn as its rectangle on the two variables (edges only: projections of cells overlap) with
its centre coloured by value; the marker says how the value was obtained: evaluated (o), inherited from the
parent's centre (s), approximated by the GP's lower bound in BaMSOO (x, spent no evaluation).

Example:
    >>> plot_partition(load_run("runs/bamsoo.h5"), pairs=[(0, 1)]).savefig("tree.png")
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis.plotting import axes_or_new, axis_label, panels, value_colormap
from analysis.runs import Run

STATES = ("evaluated", "inherited", "approximated", "pending", "failed", "pruned")
MARKERS = {"evaluated": "o", "inherited": "s", "approximated": "X", "pending": "^", "failed": "v", "pruned": "D"}
STATE_COLORS = {"evaluated": "C0", "inherited": "C2", "approximated": "C1", "pending": "0.6", "failed": "C3",
              "pruned": "C4"}
MAX_PAIRS = 6


def has_tree(run: Run) -> bool:
    return run.tree is not None and len(run.tree.get("node_id", ())) > 0


def state_counts(run: Run) -> dict[str, int]:
    """Nodes of the tree per state (every state listed, 0 when absent)."""
    states = run.tree["state"] if has_tree(run) else np.array([])
    return {state: int(np.sum(states == state)) for state in STATES}


def default_pairs(dim: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(dim), 2))[:MAX_PAIRS] if dim > 1 else [(0, 0)]


def plot_partition(run: Run, pairs: Sequence[tuple[int, int]] | None = None, ncols: int = 3) -> Figure:
    """Leaf cells projected on each pair of variables (indices in space order), centres coloured by value."""
    if not has_tree(run):
        raise ValueError(f"{run.name}: the log has no partition tree ({run.algorithm} is not a tree method)")
    pairs = list(pairs or default_pairs(run.space.dim))
    fig, axes = panels(len(pairs), ncols, width=4.2, height=4.0)
    tree = run.tree
    leaf = ~tree["expanded"].astype(bool)
    value, state = tree["value"], tree["state"]
    known = leaf & np.isfinite(value)
    norm = Normalize(*(np.nanmin(value[known]), np.nanmax(value[known])) if known.any() else (0, 1))
    cmap = value_colormap(run)
    names = run.space.names
    for ax, (i, j) in zip(axes, pairs):
        rects = [Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j])
                 for lo, hi in zip(tree["lower"][leaf], tree["upper"][leaf])]
        ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor="0.5", lw=0.4, alpha=0.6))
        for name in STATES:
            rows = np.flatnonzero(leaf & (state == name))
            if not len(rows):
                continue
            colors = [cmap(norm(v)) if np.isfinite(v) else "0.6" for v in value[rows]]
            ax.scatter(tree["center"][rows, i], tree["center"][rows, j], c=colors, s=16,
                       marker=MARKERS[name], label=name, edgecolors="k", linewidths=0.2)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{names[i]} (unit)")
        ax.set_ylabel(f"{names[j]} (unit)")
    axes[0].legend(fontsize="x-small", loc="upper right")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=axis_label(run), shrink=0.8)
    fig.suptitle(f"{run.name}: leaf cells of the partition ({int(leaf.sum())} leaves)")
    return fig


def plot_depths(run: Run, ax=None) -> Figure:
    """Nodes per depth, stacked by how their value was obtained."""
    if not has_tree(run):
        raise ValueError(f"{run.name}: the log has no partition tree ({run.algorithm} is not a tree method)")
    fig, ax = axes_or_new(ax, width=6.0, height=3.5)
    depth, state = run.tree["depth"], run.tree["state"]
    depths = np.arange(int(depth.max()) + 1)
    bottom = np.zeros(len(depths))
    for name in STATES:
        counts = np.array([np.sum((depth == d) & (state == name)) for d in depths])
        if counts.any():
            ax.bar(depths, counts, bottom=bottom, color=STATE_COLORS[name], label=f"{name} ({counts.sum()})")
            bottom += counts
    ax.set_xlabel("depth")
    ax.set_ylabel("nodes")
    ax.legend(fontsize="small")
    ax.set_title(f"{run.name}: nodes per depth")
    return fig
