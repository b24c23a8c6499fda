"""The HDF5 layout of a run log: tables, their columns and types, and how a committed row is recognised.

A table is a group of datasets of equal length, one row per record. Rows are written in two flushes: first
every column but the table's commit column (`trial_id` or `node_id`), then the commit column. The number of
rows of a table is the length of its shortest column: after a crash (or, for a moment, while a live reader
looks) other columns may hold one more row than the commit column, which readers ignore.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: Bumped when the layout changes in a way old readers would misread. 1: the first layout; 2: the root
#: attributes `minimize`, `key` and `optimum` (logs of format 1 lack them: readers then fall back on the config);
#: 3: the status `pruned`, the /trials column `step` and the /reports table (older logs lack them: readers see
#: NaN steps and no reports, and resume adds them); 4: the /asks column `told` and the /decisions table, which
#: resume replays instead of recomputing (older logs lack them: their asks read told NaN, and the tree methods'
#: asks are recomputed); 5: /tree gains a row for a node each time it changes, and a node is its last row (older
#: logs hold one row per node, which reads the same).
LOG_FORMAT = 5

#: Root attributes every log has (docs/log-format.md says what each holds).
RUN_ATTRS = ("pbo_version", "log_format", "config", "algorithm", "objective", "seed", "space", "start_time",
             "hostname", "n_workers", "writer")
#: Root attributes that say how to read the values, worked out once by the run (`pbo.study.study_attributes`):
#: the effective `minimize`, the objective's `key` and its known `optimum` (NaN when unknown). Since format 2.
STUDY_ATTRS = ("minimize", "key", "optimum")

TRIALS, ASKS, TREE, REPORTS, DECISIONS = "trials", "asks", "tree", "reports", "decisions"
COMMIT = {TRIALS: "trial_id", ASKS: "trial_id", TREE: "node_id", REPORTS: "trial_id", DECISIONS: "trial_id"}

#: Bytes kept of a trial's error text (fixed-length strings: SWMR readers cannot follow variable-length ones).
ERROR_BYTES = 1024

#: Per-row columns: name -> (numpy dtype, True when the row is a vector of the space's dimension).
TRIAL_COLUMNS: dict[str, tuple[str, bool]] = {
    "trial_id": ("i8", False), "u": ("f8", True), "x": ("f8", True), "value": ("f8", False),
    "status": ("S8", False), "worker": ("i8", False), "device": ("S64", False), "t_submit": ("f8", False),
    "t_start": ("f8", False), "t_end": ("f8", False), "error": (f"S{ERROR_BYTES}", False), "seq": ("i8", False),
    "step": ("f8", False),
}
ASK_COLUMNS: dict[str, tuple[str, bool]] = {
    "trial_id": ("i8", False), "u": ("f8", True), "x": ("f8", True), "worker": ("i8", False),
    "t_submit": ("f8", False), "seq": ("i8", False), "told": ("f8", False),
}
TREE_COLUMNS: dict[str, tuple[str, bool]] = {
    "node_id": ("i8", False), "parent": ("i8", False), "depth": ("i8", False), "lower": ("f8", True),
    "upper": ("f8", True), "center": ("f8", True), "value": ("f8", False), "state": ("S16", False),
    "expanded": ("?", False),
}
#: The /tree columns that change after a node is created: a change appends a row for the node (format 5).
TREE_STATE = ("value", "state", "expanded")
REPORT_COLUMNS: dict[str, tuple[str, bool]] = {
    "trial_id": ("i8", False), "step": ("f8", False), "fidelity": ("f8", False), "value": ("f8", False),
    "worker": ("i8", False), "t": ("f8", False), "seq": ("i8", False),
}
#: One row per decision a tree optimizer took for an ask (pbo.optimizers.soo.DECISION_KINDS), written just before
#: the ask's /asks row: `seq` is that row's; `side` -1 and `value` NaN where the kind has none.
DECISION_COLUMNS: dict[str, tuple[str, bool]] = {
    "trial_id": ("i8", False), "seq": ("i8", False), "kind": ("S8", False), "node": ("i8", False),
    "side": ("i8", False), "value": ("f8", False),
}
COLUMNS = {TRIALS: TRIAL_COLUMNS, ASKS: ASK_COLUMNS, TREE: TREE_COLUMNS, REPORTS: REPORT_COLUMNS,
           DECISIONS: DECISION_COLUMNS}
CHUNK_ROWS = {TRIALS: 64, ASKS: 64, TREE: 256, REPORTS: 256, DECISIONS: 256}
#: Tables every log has from its creation (/tree comes with the first tree).
RUN_TABLES = (TRIALS, ASKS, REPORTS, DECISIONS)
#: Tables whose rows carry metrics as extra columns, and the one counter `seq` (see resume.py).
METRIC_TABLES = (TRIALS, REPORTS)
SEQ_TABLES = (TRIALS, ASKS, REPORTS)
#: What logs of an older format lack, by table: column names, or None for the whole table. Readers fill them
#: (NaN columns, an empty table); resume adds them.
ADDED = {3: {TRIALS: ["step"], REPORTS: None}, 4: {ASKS: ["told"], DECISIONS: None}}


def metric_column(name: str, table: str = TRIALS) -> str:
    """The dataset name of a metric in `table`: '/' (an HDF5 path separator) becomes '.', and a name taken by
    a fixed column gets the prefix `metric_`."""
    column = str(name).replace("/", ".")
    fixed = COLUMNS[table]
    if column in fixed or column.startswith("metric_") and column[7:] in fixed:
        column = "metric_" + column
    return column or "metric_"


def late_columns(table: str) -> list[str]:
    """Columns of `table` that logs of an older format lack (readers fill them with NaN)."""
    return [name for added in ADDED.values() for name in (added.get(table) or [])]


def missing(handle: Any) -> dict[str, list[str] | None]:
    """What an open log of an older format lacks of the current layout (see ADDED): table -> columns, or None
    when the whole table is missing."""
    lacking: dict[str, list[str] | None] = {}
    for added in ADDED.values():
        for table, columns in added.items():
            if table not in handle:
                lacking[table] = None
            elif columns is not None:
                absent = [name for name in columns if name not in handle[table]]
                if absent:
                    lacking[table] = absent
    return lacking


def complete(handle: Any, dim: int) -> None:
    """Add to a writable log what an older format lacks: empty tables, and columns of NaN for existing rows."""
    for table, columns in missing(handle).items():
        if columns is None:
            create_table(handle.create_group(table, track_order=True), table, dim)
            continue
        rows = committed_rows(handle[table])
        for name in columns:
            dtype, vector = COLUMNS[table][name]
            create_column(handle[table], name, dtype, dim if vector else None, CHUNK_ROWS[table], length=rows)


def create_column(group: Any, name: str, dtype: str, width: int | None, chunk_rows: int, length: int = 0) -> Any:
    """An extensible, chunked column of `length` rows; floats default to NaN, so the rows before a metric
    first appeared read as missing."""
    kind = np.dtype(dtype)
    shape = (length,) if width is None else (length, width)
    chunks = (chunk_rows,) if width is None else (chunk_rows, max(width, 1))
    extra: dict[str, Any] = {"compression": "gzip"} if kind.kind == "S" else {}
    fill = np.nan if kind.kind == "f" else None
    return group.create_dataset(name, shape=shape, maxshape=(None,) + shape[1:], chunks=chunks, dtype=kind,
                                fillvalue=fill, **extra)


def create_table(group: Any, table: str, dim: int) -> None:
    for name, (dtype, vector) in COLUMNS[table].items():
        create_column(group, name, dtype, dim if vector else None, CHUNK_ROWS[table])


def committed_rows(group: Any) -> int:
    """Rows every column of a table holds (see the module docstring)."""
    return min((len(column) for column in group.values()), default=0)


def latest_rows(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """/tree as nodes: the last row of each `node_id`, in node order (a node gets a row each time it changes)."""
    ids = np.asarray(table["node_id"])
    if not len(ids):
        return table
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    if len(last) == len(ids) and np.array_equal(last, np.arange(len(ids))):
        return table  # one row per node, in order: a tree of format 4 or older, or one never changed
    return {name: column[last] for name, column in table.items()}


def tree_changes(logged: dict[str, np.ndarray], table: dict[str, np.ndarray]) -> np.ndarray:
    """Rows of the node table `table` (one per node, in node order) that are new or differ from `logged`
    (TREE_STATE columns of the nodes as written, in node order): those that /tree must append."""
    n, old = len(table["node_id"]), min(len(logged["value"]), len(table["node_id"]))
    value, before = table["value"][:old], logged["value"][:old]
    differ = (value != before) & ~(np.isnan(value) & np.isnan(before))
    differ |= (table["state"][:old] != logged["state"][:old]) | (table["expanded"][:old] != logged["expanded"][:old])
    return np.concatenate([np.flatnonzero(differ), np.arange(old, n)])


def encode_text(text: str, size: int) -> bytes:
    """UTF-8 bytes cut to `size` without splitting a character."""
    raw = str(text).encode("utf-8")
    return raw if len(raw) <= size else raw[:size].decode("utf-8", "ignore").encode("utf-8")


def to_json(value: Any) -> str:
    """JSON keeping mapping order (the space's order is its column order)."""
    return json.dumps(value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
