"""One command from HDF5 logs to a Markdown report with PNG figures, for finished and live runs alike.

    python -m analysis.report runs/*.h5 --out report/ [--threshold 0.47]

writes report/report.md (comparison table, convergence, LLM task metrics, then per run: worker timeline,
hyperparameter effects, partition tree) and the figures beside it. Every figure is also a function of
`analysis` for notebooks.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from analysis.convergence import plot_convergence
from analysis.effects import plot_effects, plot_parallel_coordinates
from analysis.partition import has_tree, plot_depths, plot_partition, state_counts
from analysis.runs import AnalysisError, Run, load_run
from analysis.tables import comparison_markdown, default_thresholds, fmt, metrics_markdown
from analysis.timeline import plot_timeline

DPI = 110


def problem(run: Run) -> str | None:
    """One line saying why a run has nothing to plot, or None when it has OK trials."""
    if len(run) == 0:
        return f"{run.path or run.name}: the log holds no finished trial yet"
    if not run.ok.any():
        first = next((str(e) for e in run.trials.get("error", []) if str(e)), "no error text")
        return f"{run.path or run.name}: all {len(run)} trials failed or timed out (first error: " \
               f"{first.splitlines()[-1] if first.strip() else first})"
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
    if plotted:
        md += ["\n## Convergence\n\n",
               figure(plot_convergence(plotted, x="evaluations"), "convergence-evaluations.png", "vs evaluations"),
               figure(plot_convergence(plotted, x="time"), "convergence-time.png", "vs time")]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", help="HDF5 logs written by pbo (finished or live)")
    parser.add_argument("--out", default="report", help="folder for report.md and its figures (default report/)")
    parser.add_argument("--threshold", type=float, help="value to reach for the 'to threshold' columns "
                                                         "(default: per objective, the worst run's best value)")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(path) for path in args.logs]
    except AnalysisError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    unique_names(runs)
    for run in runs:
        if (line := problem(run)) is not None:
            print(f"report: {line}", file=sys.stderr)
    if all(len(run) == 0 for run in runs):
        print("report: no log holds a finished trial: nothing to report", file=sys.stderr)
        return 1
    thresholds = None if args.threshold is None else {run.objective: args.threshold for run in runs}
    path = write_report(runs, args.out, thresholds)
    print(f"report: wrote {path} ({len(runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
