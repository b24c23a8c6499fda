"""The asynchronous scheduler: the only place that decides when to ask the optimizer.

Whenever a worker is free and the budget allows, it asks; whenever a result comes back it records it, tells
the optimizer and refills idle workers at once. It depends only on a small `Backend` (submit a task to a
worker, wait for the next outcome, read the clock), so the same loop drives in-process workers, MPI ranks
and the simulated cluster.

Asking ahead: when asks are slow next to trials (a GP optimizer with trials of a few seconds), a worker
would sit idle while the master computes its next point. Then the scheduler asks once more while every
worker is busy and hands that candidate to the next worker that frees, so a worker waits only for the
recording of its result. The price: that point was chosen without the result that just arrived (it was
pending instead), so this is off with one worker and, by default, only on when asks take more than
`AskAhead.share` of a trial.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from pbo.optimizers.base import Candidate, Optimizer, TrialState
from pbo.trial import TrialResult
from pbo.worker import Outcome, Task


class WorkerStartError(RuntimeError):
    """Workers that could not start (objective import, GPU setup, ...): one line each, naming rank and host."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class Backend(Protocol):
    """Moves tasks to workers and outcomes back; knows nothing of optimizers."""

    workers: list[int]

    def start(self, config: Mapping[str, Any]) -> list[str]:
        """Get the workers ready for the run's settings; returns warnings, raises WorkerStartError."""

    def now(self) -> float:
        """Seconds since the run started, on the clock the outcomes' times use."""

    def submit(self, worker: int, task: Task) -> None:
        """Start `task` on an idle `worker`."""

    def wait(self, should_stop: Callable[[], bool]) -> Outcome | None:
        """The next finished outcome; None once `should_stop()` turns true while waiting."""

    def close(self) -> None:
        """Stop the workers; work still running is abandoned."""


class Recorder(Protocol):
    """Where finished work goes (the HDF5 log); the scheduler calls it before handing the worker new work."""

    def record_submit(self, candidate: Candidate, worker: int, t_submit: float) -> None: ...

    def record_result(self, result: TrialResult) -> None: ...

    def record_tree(self, optimizer: Optimizer) -> None: ...


@dataclass
class RunSummary:
    n_workers: int
    evaluations: int = 0
    failures: int = 0
    best: TrialResult | None = None
    makespan: float = 0.0
    busy: float = 0.0
    #: Seconds from the end of a worker's trial to its next dispatch: the idle time the master causes
    #: (receiving, recording, telling, asking), including results queued while the master was busy.
    latencies: list[float] = field(default_factory=list)
    results: list[TrialResult] = field(default_factory=list)
    #: Why the run ended early: "" (budget spent), "exhausted", "max_failures" or "signal".
    stopped: str = ""

    @property
    def utilization(self) -> float:
        return self.busy / (self.n_workers * self.makespan) if self.makespan > 0 else 0.0

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latencies) if self.latencies else math.nan


ASK_AHEAD_MODES = ("auto", "always", "never")


@dataclass
class AskAhead:
    """Decides whether to ask ahead: "always", "never", or "auto": when the recent asks' median compute time
    exceeds `share` of the recent trials' median duration. Never with one worker, and never for an optimizer
    whose replay depends on when results arrived (see `Optimizer.order_free_replay`)."""

    mode: str = "auto"
    share: float = 0.01
    ask_seconds: deque = field(init=False, default_factory=lambda: deque(maxlen=5))
    trial_seconds: deque = field(init=False, default_factory=lambda: deque(maxlen=25))

    def __post_init__(self) -> None:
        if self.mode not in ASK_AHEAD_MODES:
            raise ValueError(f"ask_ahead must be one of {', '.join(ASK_AHEAD_MODES)}, got {self.mode!r}")

    def ask(self, optimizer: Optimizer) -> Candidate | None:
        """`optimizer.ask()`, timed."""
        start = time.perf_counter()
        try:
            return optimizer.ask()
        finally:
            self.ask_seconds.append(time.perf_counter() - start)

    def observe(self, result: TrialResult) -> None:
        """Remember how long a successful trial took (failures may end early and say little)."""
        if result.status is TrialState.OK:
            self.trial_seconds.append(result.t_end - result.t_start)

    def wanted(self, optimizer: Optimizer, n_workers: int) -> bool:
        if self.mode == "never" or n_workers < 2 or not optimizer.order_free_replay:
            return False
        if self.mode == "always":
            return True
        return bool(self.ask_seconds and self.trial_seconds) and (
            statistics.median(self.ask_seconds) > self.share * statistics.median(self.trial_seconds))


def run_study(optimizer: Optimizer, backend: Backend, *, budget: int, recorder: Recorder | None = None,
              baseline: bool = False, max_failures: int | None = None, ask_ahead: str = "auto",
              should_stop: Callable[[], bool] = lambda: False,
              on_result: Callable[[TrialResult, RunSummary], None] | None = None,
              redo: Sequence[Candidate] = (), dispatched: int = 0) -> RunSummary:
    """Evaluate `budget` candidates (plus the objective's baseline as trial 0 if `baseline`).

    A resumed run passes the candidates that were in flight when it was killed as `redo` (issued again
    first, never asked again) and the evaluations the budget already counts, them included, as `dispatched`.
    `ask_ahead` is an `AskAhead` mode; a candidate asked ahead is recorded when it is dispatched, and
    abandoned, never recorded, if the run stops first.

    Ends when the budget is dispatched and nothing is in flight, or early (see `RunSummary.stopped`): when the
    optimizer has nothing to propose and nothing pending (the space is exhausted), when more than
    `max_failures` trials failed, or when `should_stop()` turns true (a signal); work still in flight is then
    abandoned, never told.
    """
    summary = RunSummary(len(backend.workers))
    idle: deque[int] = deque(backend.workers)
    in_flight: dict[int, tuple[Candidate | None, float]] = {}  # trial id -> (candidate, t_submit)
    finished: dict[int, float] = {}  # worker -> when its last trial ended
    queue = deque(redo)  # candidates that count against the budget already: redone, or asked ahead
    ahead = AskAhead(ask_ahead)
    sign = -1.0 if optimizer.minimize else 1.0

    def dispatch(worker: int, task: Task, candidate: Candidate | None) -> None:
        t_submit = backend.now()
        if worker in finished:
            summary.latencies.append(t_submit - finished.pop(worker))
        if recorder is not None and candidate is not None:
            recorder.record_submit(candidate, worker, t_submit)
        in_flight[task.trial_id] = (candidate, t_submit)
        backend.submit(worker, task)

    if baseline and idle:
        dispatch(idle.popleft(), Task(0, {}, baseline=True), None)
    while True:
        while idle and (queue or dispatched < budget) and not summary.stopped and not should_stop():
            if queue:
                candidate = queue.popleft()
                dispatch(idle.popleft(), Task(candidate.id, dict(candidate.params)), candidate)
                continue
            candidate = ahead.ask(optimizer)
            if candidate is None:
                if not optimizer.pending():
                    summary.stopped = "exhausted"
                break
            dispatch(idle.popleft(), Task(candidate.id, dict(candidate.params)), candidate)
            dispatched += 1
        if (not idle and not queue and dispatched < budget and not summary.stopped and not should_stop()
                and ahead.wanted(optimizer, len(backend.workers))):
            candidate = ahead.ask(optimizer)
            if candidate is not None:
                queue.append(candidate)
                dispatched += 1
        if should_stop():
            summary.stopped = "signal"
        if not in_flight or summary.stopped in ("signal", "max_failures"):
            break
        outcome = backend.wait(should_stop)
        if outcome is None:
            continue
        candidate, t_submit = in_flight.pop(outcome.trial_id)
        result = _result(outcome, candidate, t_submit)
        # The worker's clock may run a little ahead of the master's on another node (or be unknown: NaN).
        finished[outcome.worker] = outcome.t_end if outcome.t_end <= outcome.t_received else outcome.t_received
        if recorder is not None:
            recorder.record_result(result)
        if candidate is not None:
            _tell(optimizer, result)
            if recorder is not None and hasattr(optimizer, "tree_table"):
                recorder.record_tree(optimizer)
            summary.evaluations += 1
            if result.status is not TrialState.OK:
                summary.failures += 1
            elif summary.best is None or sign * result.value > sign * summary.best.value:
                summary.best = result
        summary.busy += max(0.0, result.t_end - result.t_start)
        ahead.observe(result)
        summary.results.append(result)
        idle.append(outcome.worker)
        if on_result is not None:
            on_result(result, summary)
        if max_failures is not None and summary.failures > max_failures:
            summary.stopped = "max_failures"
    summary.makespan = backend.now()
    return summary


def _result(outcome: Outcome, candidate: Candidate | None, t_submit: float) -> TrialResult:
    status, error = outcome.status, outcome.error
    if status is TrialState.OK and not math.isfinite(outcome.value):
        status, error = TrialState.FAILED, f"objective returned {outcome.value!r}"
    return TrialResult(
        trial_id=outcome.trial_id,
        params={} if candidate is None else dict(candidate.params),
        u=np.zeros(0) if candidate is None else candidate.u.copy(),
        status=status, value=outcome.value if status is TrialState.OK else math.nan,
        metrics=dict(outcome.metrics), worker=outcome.worker, device=outcome.device,
        t_submit=t_submit, t_start=outcome.t_start, t_end=outcome.t_end, error=error)


def _tell(optimizer: Optimizer, result: TrialResult) -> None:
    if result.status is TrialState.OK:
        optimizer.tell(result.trial_id, result.value)
    else:
        optimizer.tell_failure(result.trial_id, result.error, result.status)
