"""Early stopping at a glance, for runs whose objective reported while it ran: every trial's learning curve
coloured by how it ended (did the pruner stop the right ones?), and the compute spent on each kind of trial
over the study (what did pruning save?).

Example (a notebook):
    >>> run = load_run("runs/bamsoo-asha.h5")
    >>> plot_learning_curves(run), plot_compute(run), print(compute_markdown(run))
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.plotting import STATUS_COLORS, axes_or_new, axis_label, new_figure
from analysis.runs import OK, PRUNED, Run
from analysis.tables import fmt, markdown_table


def curve_axis(run: Run) -> str:
    """`fidelity` (the fraction of the trial done) when every report gave one, else `step`."""
    fidelity = run.reports.get("fidelity", np.array([]))
    return "fidelity" if len(fidelity) and np.isfinite(fidelity).all() else "step"


def plot_learning_curves(run: Run, ax=None) -> Figure:
    """One line per trial through its reports, coloured by final status; a completed trial's line ends at its
    final value (at fidelity 1 when the reports give fidelities)."""
    fig, ax = axes_or_new(ax, width=7.0)
    x_name = curve_axis(run)
    status = dict(zip(run.trials["trial_id"].tolist(), run.trials["status"].tolist()))
    final = dict(zip(run.trials["trial_id"].tolist(), run.trials["value"].tolist()))
    counts: dict[str, int] = {}
    for trial_id in dict.fromkeys(run.reports.get("trial_id", np.array([], int)).tolist()):
        points = run.curve(trial_id)
        x, y = list(points[x_name]), list(points["value"])
        state = status.get(trial_id, "running")
        if state == OK and x_name == "fidelity" and np.isfinite(final[trial_id]):
            x.append(1.0)
            y.append(final[trial_id])
        label = None if state in counts else state
        counts[state] = counts.get(state, 0) + 1
        ax.plot(x, y, marker=".", lw=1, alpha=0.6, color=STATUS_COLORS.get(state, "0.5"), label=label)
    if run.baseline and run.objective in run.baseline:
        ax.axhline(run.baseline[run.objective], color="0.3", ls=":", lw=1, label="untuned baseline")
    ax.set_xlabel("fraction of the trial done" if x_name == "fidelity" else "step")
    ax.set_ylabel(axis_label(run))
    ax.set_title(f"{run.name}: learning curves ({', '.join(f'{n} {s}' for s, n in counts.items())})")
    ax.legend(loc="best", fontsize="small")
    return fig


def compute_by_status(run: Run) -> dict[str, dict[str, float]]:
    """Per final status: trials, worker-hours (GPU-hours on GPUs) and the mean fraction of the trial done
    (1 for a trial that ran to its end, the last report's fidelity for a pruned one, NaN when unknown)."""
    hours = _hours(run)
    fidelity = _fidelity_reached(run)
    out = {}
    for state in dict.fromkeys(run.trials["status"].tolist()):
        rows = run.trials["status"] == state
        done = fidelity[rows]
        out[state] = {"trials": float(rows.sum()), "hours": float(hours[rows].sum()),
                      "fidelity": float(np.nanmean(done)) if np.isfinite(done).any() else float("nan")}
    return out


def compute_markdown(run: Run) -> str:
    """A table of `compute_by_status`, with each status's share of the hours."""
    parts = compute_by_status(run)
    total = sum(part["hours"] for part in parts.values()) or float("nan")
    unit = _unit(run)
    rows = [[state, int(p["trials"]), fmt(p["hours"], 3), fmt(p["hours"] / total, 2), fmt(p["fidelity"], 2)]
            for state, p in parts.items()]
    return markdown_table(["status", "trials", unit, "share", "mean fraction done"], rows)


def plot_compute(run: Run) -> Figure:
    """Left: cumulative compute over the study, stacked by final status. Right: its total per status."""
    fig, (left, right) = new_figure(ncols=2, width=5.5)
    hours, end = _hours(run), run.trials["t_end"]
    order = np.argsort(end)
    clock = end[order] / 3600.0
    states = list(dict.fromkeys([OK, PRUNED, *run.trials["status"].tolist()]))
    states = [s for s in states if (run.trials["status"] == s).any()]
    stacks = [np.cumsum(np.where(run.trials["status"][order] == s, hours[order], 0.0)) for s in states]
    colors = [STATUS_COLORS.get(s, "0.5") for s in states]
    left.stackplot(clock, stacks, labels=states, colors=colors, step="post", alpha=0.8)
    left.set_xlabel("study time (h)")
    left.set_ylabel(f"cumulative {_unit(run)}")
    left.legend(loc="upper left", fontsize="small")
    left.set_title(f"{run.name}: compute spent")
    totals = [hours[run.trials["status"] == s].sum() for s in states]
    right.bar(states, totals, color=colors)
    right.set_ylabel(_unit(run))
    right.set_title("by final status")
    return fig


def _hours(run: Run) -> np.ndarray:
    span = run.trials["t_end"] - run.trials["t_start"]
    gpus = run.gpus_per_worker if run.gpu_hours() > 0 else 1
    return np.where(np.isfinite(span) & (span > 0), span, 0.0) * gpus / 3600.0


def _unit(run: Run) -> str:
    return "GPU-hours" if run.gpu_hours() > 0 else "worker-hours"


def _fidelity_reached(run: Run) -> np.ndarray:
    last = {}
    if run.has_reports:
        for trial_id, fidelity in zip(run.reports["trial_id"].tolist(), run.reports["fidelity"].tolist()):
            last[trial_id] = fidelity
    status = run.trials["status"]
    reached = [1.0 if s == OK else last.get(t, float("nan")) if s == PRUNED else float("nan")
               for t, s in zip(run.trials["trial_id"].tolist(), status.tolist())]
    return np.array(reached, dtype=float)
