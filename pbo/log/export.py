"""A log as CSV, one row per finished trial, for people who live in spreadsheets."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from pbo.log.reader import RunData

LEADING = ("trial_id", "status", "value")
TRAILING = ("worker", "device", "t_submit", "t_start", "t_end", "step")


def csv_header(run: RunData) -> list[str]:
    """Columns: id, status, value, each hyperparameter by name, worker, times and step (where a reporting trial
    ended), metrics, error."""
    return [*LEADING, *run.space.names, *TRAILING, *run.metrics, "error"]


def write_csv(run: RunData, path: str | Path) -> int:
    """Write the trials of `run` to `path`; categoricals by their choice, missing numbers as empty cells.
    Returns the number of rows."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(csv_header(run))
        for row in range(run.n_trials):
            cells = [run.trials[name][row] for name in LEADING] + list(run.params(row).values())
            cells += [run.trials[name][row] for name in (*TRAILING, *run.metrics, "error")]
            writer.writerow([_cell(cell) for cell in cells])
    return run.n_trials


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value.item() if hasattr(value, "item") else value
