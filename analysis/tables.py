"""Comparison tables as Markdown: one row per run, and per-task metrics of LLM studies beside their baseline.

The threshold for "evaluations / time to reach" defaults, per objective, to the worst of the runs' best
values: the level every run reached, so the columns compare how fast each got there.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from analysis.runs import FAILED, TIMEOUT, Run

STDERR_SUFFIX = "_stderr"
#: (column title, key of a `run_rows` row), in table order.
COMPARISON_COLUMNS = [(key, key) for key in ("run", "algorithm", "seed", "trials", "failed", "timeout", "best",
                                             "best trial", "threshold", "evals to threshold")] + [
    ("time to threshold (s)", "time to threshold"), ("workers", "workers"), ("utilization", "utilization"),
    ("GPU-h", "GPU-h"), ("best parameters", "params")]


def default_thresholds(runs: Sequence[Run]) -> dict[str, float]:
    """Per objective, the worst best value among its runs that have one."""
    thresholds: dict[str, float] = {}
    for run in runs:
        i = run.best_index()
        if i is None:
            continue
        best = float(run.trials["value"][i])
        old = thresholds.get(run.objective)
        thresholds[run.objective] = best if old is None else (max if run.minimize else min)(old, best)
    return thresholds


def run_rows(runs: Sequence[Run], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        i = run.best_index()
        threshold = thresholds.get(run.objective)
        evals, seconds = run.reached(threshold) if threshold is not None and i is not None else (None, None)
        rows.append({
            "run": run.name, "algorithm": run.algorithm, "seed": run.seed, "trials": len(run),
            "failed": run.count(FAILED), "timeout": run.count(TIMEOUT), "workers": run.n_workers,
            "best": None if i is None else float(run.trials["value"][i]),
            "best trial": None if i is None else int(run.trials["trial_id"][i]),
            "params": run.best_params(), "threshold": threshold, "evals to threshold": evals,
            "time to threshold": seconds, "utilization": run.utilization(), "GPU-h": run.gpu_hours(),
        })
    return rows


def task_metrics(run: Run) -> list[str]:
    """Metrics that come with a `<name>_stderr` companion (lm-eval task scores), in log order."""
    names = set(run.metrics)
    return [m for m in run.metrics if not m.endswith(STDERR_SUFFIX) and m + STDERR_SUFFIX in names]


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v, 3)}" for k, v in value.items())
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def comparison_markdown(runs: Sequence[Run], thresholds: dict[str, float] | None = None) -> str:
    """The per-run comparison table (best value and parameters, reaching the threshold, failures, use)."""
    thresholds = default_thresholds(runs) if thresholds is None else thresholds
    rows = run_rows(runs, thresholds)
    return markdown_table([title for title, _ in COMPARISON_COLUMNS],
                          [[row[key] for _, key in COMPARISON_COLUMNS] for row in rows])


def metrics_markdown(run: Run) -> str:
    """Each task metric of the run's best trial with its stderr, beside the baseline (trial 0) when logged."""
    i = run.best_index()
    tasks = task_metrics(run)
    if i is None or not tasks:
        return ""
    rows = []
    for name in tasks:
        tuned = _with_stderr(run.trials[name][i], run.trials[name + STDERR_SUFFIX][i])
        base = run.baseline or {}
        untuned = _with_stderr(base.get(name), base.get(name + STDERR_SUFFIX)) if name in base else "–"
        rows.append([name, tuned, untuned])
    return markdown_table(["metric", f"best trial {int(run.trials['trial_id'][i])}", "baseline (trial 0)"], rows)


def _with_stderr(value: Any, stderr: Any) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.4f} ± {stderr:.4f}" if stderr is not None and np.isfinite(stderr) else f"{value:.4f}"
