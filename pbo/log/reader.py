"""Reading a run log into plain numpy arrays: for users, `analysis/`, export and resume.

`read` works on a finished log, on one a run is still writing (SWMR: each call sees the rows committed so far)
and on one whose writer was killed.

The sense of the study (`minimize`), the metric it optimized (`key`) and the objective's known `optimum` are
read from the log's root attributes, as the run worked them out; logs of format 1, which lack them, fall back
on the rule that run used.

Intermediate reports are in `RunData.reports` (every row, in the order they came); `curve(trial_id)` gives one
trial's learning curve, from its latest attempt only (a trial in flight when a run was killed runs again from
its start after resume, and reports again).

Example:
    run = read("runs/soo-branin-20260101-120000.h5")
    ok = run.trials["status"] == "ok"
    run.trials["x"][ok], run.trials["value"][ok], run.config["budget"], run.minimize, run.optimum
    run.curve(3)["step"], run.curve(3)["value"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pbo.log.layout import (ASK_COLUMNS, ASKS, COLUMNS, DECISIONS, LOG_FORMAT, REPORTS, TREE, TRIAL_COLUMNS,
                            TRIALS, committed_rows, late_columns, latest_rows)
from pbo.log.storage import LogError, first_line, open_readable
from pbo.objectives.synthetic import FUNCTIONS
from pbo.space import Space, SpaceError

JSON_ATTRS = ("config", "space", "resumes")


@dataclass
class RunData:
    """A log's content. Tables map column names to arrays of equal length (text columns decoded to str)."""

    path: Path
    attrs: dict[str, Any]
    trials: dict[str, np.ndarray]
    asks: dict[str, np.ndarray]
    tree: dict[str, np.ndarray] | None
    metrics: list[str]
    #: One row per intermediate report (columns of layout.REPORT_COLUMNS and one per metric); empty in logs
    #: written before format 3.
    reports: dict[str, np.ndarray] = field(default_factory=dict)
    #: One row per decision a tree optimizer took for an ask (layout.DECISION_COLUMNS); empty in logs written
    #: before format 4.
    decisions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return self.attrs["config"]

    @property
    def space(self) -> Space:
        return Space.from_dict(self.attrs["space"])

    @property
    def n_trials(self) -> int:
        return len(self.trials["trial_id"])

    @property
    def minimize(self) -> bool:
        """Whether the study minimized its objective, as the run worked it out (root attribute `minimize`)."""
        if "minimize" in self.attrs:
            return bool(self.attrs["minimize"])
        return _legacy_minimize(self.config)

    @property
    def key(self) -> str | None:
        """The metric the study optimized (root attribute `key`; None in logs of format 1)."""
        key = self.attrs.get("key")
        return None if key is None else str(key)

    @property
    def optimum(self) -> float | None:
        """The objective's known optimum (synthetic functions), for regret; None when unknown."""
        if "optimum" in self.attrs:
            optimum = float(self.attrs["optimum"])
            return optimum if np.isfinite(optimum) else None
        function = FUNCTIONS.get(str(self.attrs.get("objective", "")))
        return None if function is None else float(function.optimum)

    def params(self, row: int) -> dict[str, Any]:
        """The hyperparameters of a trial row by name, categoricals as their choice (NaN for the baseline)."""
        params: dict[str, Any] = {}
        for var, value in zip(self.space.variables, self.trials["x"][row].tolist()):
            if var.kind != "float" and np.isfinite(value):
                value = var.choices[int(value)] if var.kind == "categorical" else int(value)
            params[var.name] = value
        return params

    def best(self) -> int | None:
        """Row of the best successful trial (in the run's sign; the baseline, trial 0, excluded), or None."""
        ok = np.flatnonzero((self.trials["status"] == "ok") & (self.trials["trial_id"] != 0)
                            & np.isfinite(self.trials["value"]))
        if not len(ok):
            return None
        values = self.trials["value"][ok]
        return int(ok[np.argmin(values) if self.minimize else np.argmax(values)])


    def latest_attempt(self) -> np.ndarray:
        """Which report rows belong to their trial's latest attempt: sent after the trial's last dispatch in
        /asks (a trial re-issued after a resume reports again from its start)."""
        last_ask: dict[int, int] = {}
        for cid, seq in zip(self.asks["trial_id"].tolist(), self.asks["seq"].tolist()):
            last_ask[cid] = max(seq, last_ask.get(cid, seq))
        return np.array([seq > last_ask.get(cid, -1) for cid, seq in
                         zip(self.reports["trial_id"].tolist(), self.reports["seq"].tolist())], dtype=bool)

    def curve(self, trial_id: int) -> dict[str, np.ndarray]:
        """One trial's reports from its latest attempt, in the order they came: `step`, `fidelity`, `value`,
        `t` and every report metric (NaN where that report lacked it)."""
        rows = np.flatnonzero((self.reports["trial_id"] == trial_id) & self.latest_attempt())
        rows = rows[np.argsort(self.reports["seq"][rows], kind="stable")]
        return {name: column[rows] for name, column in self.reports.items() if name not in ("trial_id", "seq")}


def _legacy_minimize(config: dict[str, Any]) -> bool:
    """A format-1 log's sense (it did not record it): the config's `minimize`, else a `module:function`
    objective's `minimize` option; built-in objectives maximize."""
    if config.get("minimize") is not None:
        return bool(config["minimize"])
    return bool((config.get("objective_options") or {}).get("minimize", False))


def read(path: str | Path) -> RunData:
    """Load a pbo log; a foreign or damaged file raises LogError naming what is wrong."""
    path = Path(path)
    with open_readable(path) as handle:
        try:
            return _load(handle, path)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise LogError(f"{path} is a damaged pbo log ({first_line(exc)})") from None


def _load(handle: h5py.File, path: Path) -> RunData:
    attrs = _attrs(handle, path)
    for table, columns in ((TRIALS, TRIAL_COLUMNS), (ASKS, ASK_COLUMNS)):
        missing = [name for name in columns if f"{table}/{name}" not in handle and name not in late_columns(table)]
        if missing:
            raise LogError(f"{path} is a damaged pbo log: /{table} lacks {', '.join(missing)}")
    trials, asks = _table(handle[TRIALS]), _table(handle[ASKS])
    for table, columns in ((TRIALS, trials), (ASKS, asks)):
        rows = len(columns["trial_id"])
        for name in late_columns(table):  # logs of an older format
            columns.setdefault(name, np.full(rows, np.nan))
    tree = latest_rows(_table(handle[TREE])) if TREE in handle else None
    reports, decisions = (_table(handle[table]) if table in handle else _empty(table) for table in (REPORTS, DECISIONS))
    metrics = [name for name in trials if name not in TRIAL_COLUMNS]
    return RunData(path, attrs, trials, asks, tree, metrics, reports, decisions)


def _empty(table: str) -> dict[str, np.ndarray]:
    """A table with no rows (one a log of an older format lacks)."""
    return {name: np.zeros(0, dtype=dtype) for name, (dtype, _) in COLUMNS[table].items()}


def _attrs(handle: h5py.File, path: Path) -> dict[str, Any]:
    if "pbo_version" not in handle.attrs:
        raise LogError(f"{path} is not a pbo log (it has no pbo_version attribute)")
    attrs = {key: value.item() if isinstance(value, np.generic) else value for key, value in handle.attrs.items()}
    if int(attrs.get("log_format", 0)) > LOG_FORMAT:
        raise LogError(f"{path} was written by a newer pbo ({attrs['pbo_version']}, log format "
                       f"{attrs['log_format']}); upgrade pbo to read it")
    for key in JSON_ATTRS:
        if key in attrs:
            try:
                attrs[key] = json.loads(attrs[key])
            except (TypeError, ValueError):
                raise LogError(f"{path} is a damaged pbo log: attribute {key!r} is not JSON") from None
    try:
        Space.from_dict(attrs.get("space"))
    except SpaceError as exc:
        raise LogError(f"{path} is a damaged pbo log: {exc}") from None
    return attrs


def _table(group: h5py.Group) -> dict[str, np.ndarray]:
    rows = committed_rows(group)
    table = {}
    for name, column in group.items():
        data = column[:rows]
        if data.dtype.kind == "S":
            data = np.char.decode(data, "utf-8", errors="replace")
        table[name] = data
    return table
