"""Scaling studies: speedup, parallel efficiency, worker utilization and solution quality against workers W.

Strong scaling keeps the budget fixed: speedup S(W) = T(W0) W0 / T(W) for the smallest W0 measured
(T(1) / T(W) when W0 = 1) and efficiency S(W) / W. Weak scaling grows the budget with W: efficiency is
T(W0) / T(W) (ideal: constant time) and the scaled speedup W x efficiency. T is the makespan (last result).
The last panel shows what parallelism costs in quality: the best value (or regret) each run reached.

Example:
    >>> runs = [load_run(p) for p in sorted(Path("runs/scaling/strong").glob("*.h5"))]
    >>> plot_scaling(runs, mode="strong").savefig("scaling.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from analysis.convergence import REGRET_FLOOR
from analysis.plotting import axis_label, by_algorithm, color_for, new_figure
from analysis.runs import Run
from analysis.tables import markdown_table

MODES = ("strong", "weak")


@dataclass(frozen=True)
class ScalingPoint:
    algorithm: str
    workers: int
    evaluations: int
    makespan: float
    speedup: float
    efficiency: float
    utilization: float
    best: float


def scaling_points(runs: Sequence[Run], mode: str = "strong") -> list[ScalingPoint]:
    """One point per run, relative to the run of the same algorithm with the fewest workers."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    points = []
    for algorithm, group in by_algorithm(runs).items():
        group = sorted(group, key=lambda run: run.n_workers)
        base = group[0]
        for run in group:
            time = run.makespan()
            ratio = base.makespan() / time if time > 0 else np.nan
            if mode == "strong":
                speedup = ratio * base.n_workers
                efficiency = speedup / run.n_workers
            else:
                efficiency = ratio
                speedup = efficiency * run.n_workers
            best = run.best_so_far()[-1] if len(run) else np.nan
            if run.optimum is not None:
                best = max(abs(run.optimum - best), REGRET_FLOOR)
            points.append(ScalingPoint(algorithm, run.n_workers, len(run), time, float(speedup), float(efficiency),
                                       run.utilization(), float(best)))
    return points


def scaling_markdown(points: Sequence[ScalingPoint]) -> str:
    header = ["algorithm", "W", "evaluations", "makespan (s)", "speedup", "efficiency", "utilization", "best / regret"]
    return markdown_table(header, [[p.algorithm, p.workers, p.evaluations, p.makespan, p.speedup, p.efficiency,
                                    p.utilization, p.best] for p in points])


def plot_scaling(runs: Sequence[Run], mode: str = "strong") -> Figure:
    """Four panels against W (log 2): speedup with the ideal line, efficiency, utilization, best value/regret."""
    points = scaling_points(runs, mode)
    fig, axes = new_figure(ncols=4, width=3.6, height=3.4)
    regret = all(run.optimum is not None for run in runs)
    workers = sorted({p.workers for p in points})
    for algorithm in dict.fromkeys(p.algorithm for p in points):
        mine = [p for p in points if p.algorithm == algorithm]
        w = [p.workers for p in mine]
        style = dict(color=color_for(algorithm), marker="o", label=algorithm)
        for ax, values in zip(axes, ([p.speedup for p in mine], [p.efficiency for p in mine],
                                     [p.utilization for p in mine], [p.best for p in mine])):
            ax.plot(w, values, **style)
    if workers:
        axes[0].plot(workers, workers, color="0.5", ls="--", label="ideal")
    titles = ["scaled speedup" if mode == "weak" else "speedup", "parallel efficiency", "worker utilization",
              "final simple regret" if regret else f"best {axis_label(runs[0]) if runs else 'value'}"]
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("workers W")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log", base=2)
    axes[0].yaxis.set_major_formatter(ScalarFormatter())
    axes[1].set_ylim(0, 1.1)
    axes[2].set_ylim(0, 1.05)
    if regret:
        axes[3].set_yscale("log")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{mode} scaling" + (" (budget proportional to W)" if mode == "weak" else " (fixed budget)"))
    return fig
