"""The vocabulary every layer shares, kept in one low module that imports nothing else of pbo: where a trial
stands (`TrialState`), what the master sends a worker (`Task`), what comes back (`Outcome`), the record the
scheduler tells the optimizer and the log appends (`TrialResult`), and the error of workers that cannot start
(`WorkerStartError`). Isolation, worker and backends import these from here, never from the optimizers or the
scheduler above them. Intermediate reports (`Report`) and the stop an objective may raise (`TrialPruned`) live
here too: see docs/runtime.md, "Intermediate reports and pruning".

Tasks, reports and outcomes are plain dataclasses, so they cross MPI and pipes as small pickles.

Example:
    >>> TrialState.TIMEOUT.value, TrialState.OK.is_finished()
    ('timeout', True)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class TrialState(str, enum.Enum):
    """Where a candidate stands. Values are the `status` strings of the HDF5 log."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    #: Stopped early by the pruner (or by the objective raising `TrialPruned`): its value is its last report.
    PRUNED = "pruned"

    def is_finished(self) -> bool:
        return self is not TrialState.PENDING


class TrialPruned(Exception):
    """Raised by an objective that stops early (or by `report` when `report_raises` is set and the master says
    stop): the trial ends as `pruned` with its last reported value, not as `failed`."""


@dataclass
class Report:
    """An intermediate result of a running trial: `value` (the objective's key, in the user's sign) at `step`,
    with `fidelity` (the fraction of the full trial, NaN when the objective does not say) and other metrics.
    `t` is when the worker sent it, on the master's clock."""

    trial_id: int
    worker: int
    step: float
    value: float
    fidelity: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    t: float = math.nan


@dataclass
class Task:
    """One evaluation to run. `baseline` asks for the objective's untuned baseline instead (trial 0)."""

    trial_id: int
    params: dict[str, Any]
    baseline: bool = False


@dataclass
class Outcome:
    """What came of a task. Times are seconds on the master's clock (see `pbo.worker.Evaluator.clock`)."""

    trial_id: int
    worker: int
    status: TrialState
    value: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    device: str = ""
    t_start: float = math.nan
    t_end: float = math.nan
    #: The step of the last report (pruned trials: the step the trial reached); NaN when it never reported.
    step: float = math.nan
    #: When the master received it (set by the backend).
    t_received: float = math.nan


@dataclass
class TrialResult:
    """One finished trial. Times are seconds since the run started, on the master's clock (t_start and
    t_end as measured by the worker, shifted onto that clock)."""

    trial_id: int
    params: dict[str, Any]
    u: np.ndarray
    status: TrialState
    value: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    worker: int = -1
    device: str = ""
    t_submit: float = math.nan
    t_start: float = math.nan
    t_end: float = math.nan
    error: str = ""
    #: The step of the trial's last report: where a pruned trial stopped (NaN when it never reported).
    step: float = math.nan


class WorkerStartError(RuntimeError):
    """Workers that could not start (objective import, GPU setup, ...): one line each, naming rank and host."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
