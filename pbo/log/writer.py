"""The master's side of the log: one HDF5 file per run, appended per dispatch, per intermediate report and per
finished trial.

`record_submit`, `record_result`, `record_report` and `record_tree` are the recorder protocol the scheduler
calls. Each `record_result` and `record_report` is flushed (and fsynced) before it returns, so a trial or a
report the scheduler has acknowledged survives SIGKILL of the master. The file stays in SWMR mode, so other
processes can follow it live (see reader.py).

Example:
    log = RunLog.create("runs/demo.h5", config=config, space=space, algorithm="lhs", seed=0, n_workers=4)
    log.record_submit(candidate, worker=1, t_submit=0.2)
    log.record_result(result)
    log.close()
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

import pbo
from pbo.log.layout import (ASKS, CHUNK_ROWS, COLUMNS, COMMIT, DECISIONS, ERROR_BYTES, LOG_FORMAT, METRIC_TABLES,
                            REPORTS, RUN_TABLES, SEQ_TABLES, STUDY_ATTRS, TREE, TREE_COLUMNS, TREE_STATE, TRIALS,
                            committed_rows, complete, create_column, create_table, encode_text, latest_rows,
                            metric_column, missing, to_json, tree_changes)
from pbo.log.storage import (LogError, check_not_live, check_space, check_writable, detach, first_line, fsync,
                              open_for_append, open_readable, replacing, rewrite, writer_id)
from pbo.optimizers.base import Candidate
from pbo.space import Space
from pbo.trial import Report, TrialResult


def default_path(algorithm: str, objective: str, when: datetime | None = None) -> Path:
    """`runs/<algorithm>-<objective>-<YYYYmmdd-HHMMSS>.h5`, with characters unsafe in file names replaced."""
    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{algorithm}-{objective}")
    return Path("runs") / f"{slug}-{stamp}.h5"


class RunLog:
    """An open run log. Build it with `create` (new run) or `reopen` (resume); finish with `close`."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        #: Added to recorded times: a resumed session's clock starts later than the log's.
        self._offset = 0.0
        #: Set when a write failed and the file was cut off (see `_guarded`).
        self._detached = False
        try:
            self._open()
        except OSError as exc:
            raise LogError(f"cannot open log {path} for writing: {first_line(exc)}") from None
        self.space = Space.from_dict(json.loads(self._file.attrs["space"]))
        # /decisions too: its rows are written just before their /asks row, so a kill between leaves a seq that
        # no /asks row has, which must not be given to the next ask.
        seqs = [self._columns[table]["seq"][: self._rows[table]] for table in (*SEQ_TABLES, DECISIONS)
                if table in self._columns]
        self._seq = int(max((s.max() for s in seqs if len(s)), default=-1)) + 1

    def _open(self) -> None:
        """Open the file for appending and keep its columns at hand (looking them up costs more than writing)."""
        self._file = open_for_append(self.path)
        self._columns: dict[str, dict[str, h5py.Dataset]] = {}
        self._rows: dict[str, int] = {}
        self._tree: dict[str, np.ndarray] | None = None  # /tree's nodes as last written (see record_tree)
        for table, group in self._file.items():
            commit = COMMIT[table]
            self._columns[table] = {name: group[name] for name in [*(n for n in group if n != commit), commit]}
            self._rows[table] = committed_rows(group)
        self._metrics = {table: {name for name in self._columns[table] if name not in COLUMNS[table]}
                         for table in METRIC_TABLES}

    @classmethod
    def create(cls, path: str | Path, *, config: Mapping[str, Any], space: Space, algorithm: str, seed: int,
               n_workers: int, overwrite: bool = False, make_folder: bool = False, durable: bool = True,
               start_time: float | None = None, study: Mapping[str, Any] | None = None) -> "RunLog":
        """Start the log of a new run; refuses an existing file unless `overwrite`, and an unwritable place.
        `start_time` (Unix seconds) is the zero of the trials' times; by default now. `study` holds the
        attributes readers must not recompute (`pbo.study.study_attributes`: minimize, key, optimum)."""
        path = Path(path)
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        check_writable(path, overwrite=overwrite)
        try:
            with replacing(path) as handle:
                handle.attrs.update({
                    "pbo_version": pbo.__version__, "log_format": LOG_FORMAT, "config": to_json(dict(config)),
                    "algorithm": algorithm, "objective": str(config.get("objective", "")), "seed": int(seed),
                    "space": to_json(space.to_dict()),
                    "start_time": time.time() if start_time is None else float(start_time),
                    "hostname": socket.gethostname(), "n_workers": int(n_workers), "writer": writer_id(),
                    **_study_attrs(study),
                })
                for table in RUN_TABLES:
                    create_table(handle.create_group(table, track_order=True), table, space.dim)
        except OSError as exc:
            raise LogError(f"cannot create log {path}: {first_line(exc)}") from None
        return cls(path, durable=durable)

    @classmethod
    def reopen(cls, path: str | Path, *, n_workers: int, changes: Mapping[str, Any] | None = None,
               session_start: float | None = None, durable: bool = True,
               study: Mapping[str, Any] | None = None) -> "RunLog":
        """Continue an existing log (resume): its committed rows are kept, anything torn by a kill is dropped.
        The `config` attribute keeps the first settings (the optimizer is rebuilt from them); `changes` (e.g. a
        larger budget) go into the `resumes` attribute. Times recorded from now on count from `session_start`
        (Unix time, default now) and are shifted onto the log's clock. A log of an older format gets what it
        lacks (the `study` attributes, the tables and columns of `layout.ADDED`) and the current `log_format`."""
        path = Path(path)
        check_not_live(path)
        with open_readable(path) as handle:
            resumes = json.loads(handle.attrs.get("resumes", "[]"))
            start_time = float(handle.attrs["start_time"])
            no_study = study is not None and any(name not in handle.attrs for name in STUDY_ATTRS)
            old = bool(missing(handle)) or int(handle.attrs.get("log_format", 0)) < LOG_FORMAT
            dim = len(json.loads(handle.attrs["space"]))
        resumes.append({"time": time.time(), "hostname": socket.gethostname(), "n_workers": int(n_workers),
                        "settings": dict(changes or {})})
        attrs = {"resumes": to_json(resumes), "n_workers": int(n_workers), "writer": writer_id()}
        if no_study:
            attrs.update(_study_attrs(study))
        if no_study or old:
            attrs["log_format"] = LOG_FORMAT
        try:
            rewrite(path, attrs=attrs, change=(lambda handle: complete(handle, dim)) if old else None)
        except OSError as exc:
            raise LogError(f"cannot rewrite log {path} for resume: {first_line(exc)}") from None
        log = cls(path, durable=durable)
        log._offset = (time.time() if session_start is None else session_start) - start_time
        return log

    # ---- recorder protocol (called by the scheduler) -------------------------------------------------------

    def record_submit(self, candidate: Candidate, worker: int, t_submit: float) -> None:
        """A candidate was dispatched; flushed (not fsynced) so resume can re-issue it if the run dies. The
        decisions its ask took (tree methods) go to /decisions first, so an /asks row never lacks them."""
        decisions = candidate.meta.get("decisions") or []
        if decisions:
            rows = self._rows[DECISIONS] + len(decisions)
            columns = {"trial_id": np.full(len(decisions), candidate.id), "seq": np.full(len(decisions), self._seq),
                       "kind": np.array([str(d[0]).encode() for d in decisions]),
                       "node": np.array([d[1] for d in decisions], dtype=np.int64),
                       "side": np.array([d[2] for d in decisions], dtype=np.int64),
                       "value": np.array([math.nan if d[3] is None else d[3] for d in decisions], dtype=float)}
            self._guarded(lambda: self._write_columns(DECISIONS, columns, rows, sync=False,
                                                      at=slice(rows - len(decisions), rows)))
        row = {"trial_id": candidate.id, "u": self._vector(candidate.u), "x": self._numbers(candidate.params),
               "worker": worker, "t_submit": t_submit + self._offset, "told": candidate.meta.get("told", math.nan)}
        self._append(ASKS, row, sync=False)

    def record_result(self, result: TrialResult) -> None:
        """A trial finished; it is on disk when this returns. Raises LogError, before writing anything, when the
        disk is nearly full, so a run stops with its file intact rather than when a write fails half-way."""
        check_space(self.path.parent)
        metrics = self._metric_values(TRIALS, result.metrics)
        status = getattr(result.status, "value", result.status)
        row = {"trial_id": result.trial_id, "u": self._vector(result.u), "x": self._numbers(result.params),
               "value": result.value, "status": str(status), "worker": result.worker,
               "device": encode_text(result.device, 64), "t_submit": result.t_submit + self._offset,
               "t_start": result.t_start + self._offset, "t_end": result.t_end + self._offset,
               "error": encode_text(result.error, ERROR_BYTES), "step": result.step, **metrics}
        self._append(TRIALS, row, sync=self.durable)

    def record_report(self, report: Report) -> None:
        """An intermediate report of a running trial; on disk when this returns, like a result (the pruner's
        state is rebuilt from these rows on resume)."""
        check_space(self.path.parent)
        metrics = self._metric_values(REPORTS, report.metrics)
        row = {"trial_id": report.trial_id, "step": report.step, "fidelity": report.fidelity, "value": report.value,
               "worker": report.worker, "t": report.t + self._offset, **metrics}
        self._append(REPORTS, row, sync=self.durable)

    def record_tree(self, table: Mapping[str, Any] | None) -> None:
        """Bring /tree up to an optimizer's `tree_table()` (None, an optimizer without a tree, is ignored) by
        appending a row for each node that is new or whose value, state or expanded flag changed: rows are
        committed like any other (see layout.py), so a reader or a kill never sees a half-updated node, and
        the cost per result is that of the few nodes it changed, not of the whole tree. Readers take each
        node's last row (`layout.latest_rows`)."""
        if table is None:
            return
        if TREE not in self._columns:
            self._restructure(lambda handle: create_table(handle.create_group(TREE, track_order=True), TREE,
                                                          self.space.dim))
        if self._tree is None:
            self._tree = self._logged_tree()
        table = {name: np.asarray(table[name]) for name in TREE_COLUMNS}
        changed = tree_changes(self._tree, table)  # on the table as given: converting all of it costs more
        if not len(changed):
            return
        rows = self._rows[TREE] + len(changed)
        fresh = {name: table[name][changed].astype(dtype).reshape((len(changed), -1) if vector else (len(changed),))
                 for name, (dtype, vector) in TREE_COLUMNS.items()}
        self._guarded(lambda: self._write_columns(TREE, fresh, rows, sync=False, at=slice(rows - len(changed), rows)))
        self._tree = {name: table[name] for name in TREE_STATE}

    def _logged_tree(self) -> dict[str, np.ndarray]:
        """Each logged node's value, state and expanded flag (its last committed row), by node id."""
        logged = latest_rows({name: self._columns[TREE][name][: self._rows[TREE]] for name in ("node_id", *TREE_STATE)})
        return {**{name: logged[name] for name in TREE_STATE}, "state": np.char.decode(logged["state"], "utf-8")}

    def close(self) -> None:
        if self._file.id and not self._detached:
            try:
                self._file.close()
            except OSError as exc:
                raise LogError(f"cannot close log {self.path}: {first_line(exc)}") from None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------------------------------

    def _append(self, table: str, row: dict[str, Any], *, sync: bool) -> None:
        rows = self._rows[table] + 1
        row["seq"] = self._seq
        self._guarded(lambda: self._write_columns(table, row, rows, sync=sync, at=rows - 1))
        self._seq += 1

    def _write_columns(self, table: str, values: Mapping[str, Any], rows: int, *, sync: bool,
                       at: int | slice | None = None) -> None:
        """Size every column to `rows` and write `values` (rows `at`, or whole columns), commit column last."""
        where = slice(None) if at is None else at
        commit = COMMIT[table]
        for name, column in self._columns[table].items():
            if name == commit:
                self._file.flush()
            column.resize(rows, axis=0)
            if rows:
                column[where] = values.get(name, math.nan)
        if sync:
            fsync(self._file)
        else:
            self._file.flush()
        self._rows[table] = rows

    def _guarded(self, write: Callable[[], None]) -> None:
        """Run a write; if it fails (disk full), cut the file off and raise one line. What was committed before
        stays readable."""
        try:
            write()
        except (OSError, RuntimeError) as exc:
            detach(self._file)
            self._detached = True
            raise LogError(f"cannot write log {self.path}: {first_line(exc)}") from None

    def _metric_values(self, table: str, metrics: Mapping[str, Any]) -> dict[str, float]:
        """A row's metrics by column name; a metric seen for the first time gets its column (NaN before)."""
        values = {metric_column(k, table): _as_float(v) for k, v in metrics.items()}
        new = sorted(set(values) - self._metrics[table])
        if new:
            def add_columns(handle: h5py.File) -> None:
                for name in new:
                    create_column(handle[table], name, "f8", None, CHUNK_ROWS[table], length=self._rows[table])
            self._restructure(add_columns)
        return values

    def _restructure(self, change: Callable[[h5py.File], Any]) -> None:
        """Add datasets: SWMR cannot create them, so rewrite the file with them and reopen (see storage.py)."""
        self.close()
        try:
            rewrite(self.path, change=change)
            self._open()
        except OSError as exc:
            raise LogError(f"cannot write log {self.path}: {first_line(exc)}") from None

    def _vector(self, u: Any) -> np.ndarray:
        u = np.asarray(u, dtype=float).ravel()
        return u if u.shape == (self.space.dim,) else np.full(self.space.dim, math.nan)

    def _numbers(self, params: Mapping[str, Any]) -> np.ndarray:
        if not all(name in params for name in self.space.names):
            return np.full(self.space.dim, math.nan)
        return self.space.to_numbers(params)


def _study_attrs(study: Mapping[str, Any] | None) -> dict[str, Any]:
    """The STUDY_ATTRS as HDF5 attribute values; a log written without them (tests, tools) stays readable."""
    if study is None:
        return {}
    optimum = study.get("optimum")
    return {"minimize": bool(study["minimize"]), "key": str(study["key"]),
            "optimum": math.nan if optimum is None else float(optimum)}


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
