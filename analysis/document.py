"""The Markdown report: comparison table, convergence, LLM task metrics, then per run the worker timeline,
learning curves and compute by final status (runs whose objective reported), hyperparameter effects and
partition tree, with every figure saved as a PNG beside report.md.

Example:
    >>> write_report([load_run(p) for p in ["runs/soo.h5", "runs/bo.h5"]], "report/")   # report/report.md
"""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from analysis.convergence import plot_convergence
from analysis.effects import plot_effects, plot_parallel_coordinates
from analysis.partition import has_tree, plot_depths, plot_partition, state_counts
from analysis.pruning import compute_markdown, plot_compute, plot_learning_curves
from analysis.runs import Run
from analysis.tables import comparison_markdown, default_thresholds, fmt, metrics_markdown
from analysis.timeline import plot_timeline

DPI = 110


def problem(run: Run) -> str | None:
    """One line saying why a run has nothing to plot, or None when it has OK trials."""
    if len(run) == 0:
        return f"{run.path or run.name}: the log holds no finished trial yet"
    if not run.ok.any():
        errors = [str(e).strip() for e in run.trials.get("error", []) if str(e).strip()]
        first = errors[0].splitlines()[-1] if errors else "no error text"
        return f"{run.path or run.name}: all {len(run)} trials failed or timed out (first error: {first})"
    return None


def unique_names(runs: Sequence[Run]) -> None:
    """Give runs whose file names collide (same stem in different folders) distinct names for their figures."""
    seen: collections.Counter[str] = collections.Counter(run.name for run in runs)
    index: collections.Counter[str] = collections.Counter()
    for run in runs:
        if seen[run.name] > 1:
            index[run.name] += 1
            run.name = f"{run.name}-{index[run.name]}"


def write_report(runs: Sequence[Run], out: str | Path, thresholds: dict[str, float] | None = None) -> Path:
    """Write report.md and its figures into `out`; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = default_thresholds(runs) if thresholds is None else thresholds

    def figure(fig: Figure, name: str, alt: str) -> str:
        fig.savefig(out / name, dpi=DPI)
        return f"![{alt}]({name})\n"

    md = ["# pbo report\n\n", f"{len(runs)} run(s):\n\n"]
    md += [f"- **{run.name}**: {run.algorithm}, seed {run.seed}, objective {run.objective or '?'}, "
           f"{len(run)} trials on {run.n_workers} worker(s){_note(run)}" + (f" (`{run.path}`)" if run.path else "")
           + "\n" for run in runs]
    md += ["\n## Comparison\n\n", _threshold_note(thresholds), "\n", comparison_markdown(runs, thresholds)]
    md += [_errors_markdown(runs)]
    plotted = [run for run in runs if problem(run) is None]
    objectives = collections.defaultdict(list)
    for run in plotted:
        objectives[run.objective].append(run)
    if plotted:
        md.append("\n## Convergence\n")
    for objective, group in objectives.items():  # values of different objectives do not share an axis
        suffix = "" if len(objectives) == 1 else "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", objective or "objective")
        md.append(f"\n### {objective}\n\n" if len(objectives) > 1 else "\n")
        for x in ("evaluations", "time"):
            md.append(figure(plot_convergence(group, x=x), f"convergence-{x}{suffix}.png", f"vs {x}"))
    metric_tables = [(run, metrics_markdown(run)) for run in plotted]
    if any(table for _, table in metric_tables):
        md.append("\n## Task metrics (best trial and untuned baseline)\n")
        md += [f"\n### {run.name}\n\n{table}" for run, table in metric_tables if table]
    for run in runs:
        md.append(f"\n## {run.name}\n\n")
        if len(run) == 0:
            md.append("No finished trial yet.\n")
            continue
        md.append(figure(plot_timeline(run), f"{run.name}-timeline.png", "worker timeline"))
        if run.has_reports:
            md.append(figure(plot_learning_curves(run), f"{run.name}-curves.png", "learning curves by final status"))
            md.append(f"\nCompute by final status:\n\n{compute_markdown(run)}\n")
            md.append(figure(plot_compute(run), f"{run.name}-compute.png", "compute spent by final status"))
        if run.ok.any():
            md.append(figure(plot_effects(run), f"{run.name}-effects.png", "value against each variable"))
            md.append(figure(plot_parallel_coordinates(run), f"{run.name}-parallel.png", "parallel coordinates"))
        if has_tree(run):
            counts = ", ".join(f"{name} {n}" for name, n in state_counts(run).items())
            md.append(f"\nPartition tree: {len(run.tree['node_id'])} nodes ({counts}).\n\n")
            md.append(figure(plot_partition(run), f"{run.name}-partition.png", "partition cells"))
            md.append(figure(plot_depths(run), f"{run.name}-depths.png", "nodes per depth"))
    path = out / "report.md"
    path.write_text("".join(md))
    return path


def _note(run: Run) -> str:
    if len(run) == 0:
        return " (no finished trial yet)"
    return " (only failures)" if not run.ok.any() else ""


def _threshold_note(thresholds: dict[str, float]) -> str:
    if not thresholds:
        return "No run has an OK trial, so there is no threshold to reach.\n"
    parts = ", ".join(f"{fmt(value)} for {objective or 'the objective'}" for objective, value in thresholds.items())
    return f"Threshold (evaluations and time to reach it): {parts}.\n"


def _errors_markdown(runs: Sequence[Run]) -> str:
    lines = []
    for run in runs:
        errors = [str(e).strip().splitlines()[-1] for e, ok in zip(run.trials.get("error", []), run.ok)
                  if not ok and str(e).strip()]
        for text, n in collections.Counter(errors).most_common(3):
            lines.append(f"- {run.name}: {n} x `{text[:200]}`\n")
    return "\nMost common errors:\n\n" + "".join(lines) if lines else ""
