"""The asynchronous scheduler: the only place that decides when to ask the optimizer.

Whenever a worker is free and the budget allows, it asks; whenever a result comes back it records it, tells
the optimizer and refills idle workers at once. It depends only on a small `pbo.backends.Backend` (submit a task to a
worker, wait for the next outcome, read the clock), so the same loop drives in-process workers, MPI ranks
and the simulated cluster.

Asking ahead, the optimizer on a thread of its own: see `pbo.asker`.

Intermediate reports of running trials come through the same wait: each is recorded, judged by the pruner
(`pbo.pruners`) and answered at once (go on or stop), before the next result is looked at. A candidate whose
`meta` names a `fidelity` (a fraction of the full trial: a multi-fidelity optimizer's low-fidelity evaluation)
is stopped at its first report at or past that fidelity, and comes back `pruned` with that report's value.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from pbo.asker import AskAhead, InlineAsker, ThreadAsker
from pbo.backends import Backend
from pbo.optimizers.base import Candidate, Optimizer
from pbo.pruners import Pruner
from pbo.trial import Outcome, Report, Task, TrialResult, TrialState, WorkerStartError  # noqa: F401 - re-exported


#: Longest wait for an asker's thread before looking at the stop flag again (seconds).
_TICK = 0.01


class Recorder(Protocol):
    """Where finished work goes (the HDF5 log); the scheduler calls it before handing the worker new work."""

    def record_submit(self, candidate: Candidate, worker: int, t_submit: float) -> None: ...

    def record_result(self, result: TrialResult) -> None: ...

    def record_report(self, report: Report) -> None: ...

    def record_tree(self, table: dict[str, np.ndarray]) -> None: ...


@dataclass
class RunSummary:
    n_workers: int
    evaluations: int = 0
    failures: int = 0
    #: Trials stopped early (not failures: they count neither as successes nor towards max_failures).
    pruned: int = 0
    #: Intermediate reports received.
    reports: int = 0
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


def run_study(optimizer: Optimizer, backend: Backend, *, budget: int, recorder: Recorder | None = None,
              baseline: bool = False, max_failures: int | None = None, ask_ahead: str = "auto",
              should_stop: Callable[[], bool] = lambda: False,
              on_result: Callable[[TrialResult, RunSummary], None] | None = None,
              redo: Sequence[Candidate] = (), dispatched: int = 0, pruner: Pruner | None = None) -> RunSummary:
    """Evaluate `budget` candidates (plus the objective's baseline as trial 0 if `baseline`).

    A resumed run passes the candidates that were in flight when it was killed as `redo` (issued again
    first, never asked again) and the evaluations the budget already counts, them included, as `dispatched`.
    `ask_ahead` is an `AskAhead` mode; a candidate asked ahead is recorded when it is dispatched, or, if the
    run stops first, when it ends, as never dispatched (worker -1), so that resume issues it first.

    Ends when the budget is dispatched and nothing is in flight, or early (see `RunSummary.stopped`): when the
    optimizer has nothing to propose and nothing pending (the space is exhausted), when more than
    `max_failures` trials failed, or when `should_stop()` turns true (a signal); work still in flight is then
    abandoned, never told.

    A report of a running trial is recorded, given to `pruner` (if any) and answered; a trial told to stop (by
    the pruner, or at its candidate's target `fidelity`) is not judged again, and comes back as `pruned`.
    """
    summary = RunSummary(len(backend.workers))
    idle: deque[int] = deque(backend.workers)
    in_flight: dict[int, tuple[Candidate | None, float]] = {}  # trial id -> (candidate, t_submit)
    finished: dict[int, float] = {}  # worker -> when its last trial ended
    redo = deque(redo)
    n_workers = len(backend.workers)
    policy = AskAhead(ask_ahead, paced=backend.master_time_counts)
    threaded = backend.allows_threads and policy.allowed(optimizer, n_workers)
    asker = (ThreadAsker if threaded else InlineAsker)(optimizer, budget - dispatched, policy, n_workers)
    sign = -1.0 if optimizer.minimize else 1.0
    stopping: set[int] = set()  # trials told to stop, not back yet

    def dispatch(worker: int, task: Task, candidate: Candidate | None) -> None:
        t_submit = backend.now()
        if worker in finished:
            summary.latencies.append(t_submit - finished.pop(worker))
        if recorder is not None and candidate is not None:
            recorder.record_submit(candidate, worker, t_submit)
        in_flight[task.trial_id] = (candidate, t_submit)
        backend.submit(worker, task)

    def judge(report: Report) -> None:
        go_on = report.trial_id in in_flight and report.trial_id not in stopping
        if go_on:
            summary.reports += 1
            if recorder is not None:
                recorder.record_report(report)
            candidate = in_flight[report.trial_id][0]
            if candidate is not None and (
                    (pruner is not None and pruner.should_stop(report.trial_id, report.step, report.value))
                    or report.fidelity >= candidate.meta.get("fidelity", math.inf)):
                stopping.add(report.trial_id)
                go_on = False
        backend.answer(report, go_on)

    if baseline and idle:
        dispatch(idle.popleft(), Task(0, {}, baseline=True), None)
    try:
        while True:
            while idle and not summary.stopped and not should_stop():
                candidate = redo.popleft() if redo else asker.take()
                if candidate is None:
                    if asker.exhausted():
                        summary.stopped = "exhausted"
                    break
                dispatch(idle.popleft(), Task(candidate.id, dict(candidate.params)), candidate)
            asker.before_wait(len(idle))
            if should_stop():
                summary.stopped = "signal"
            if summary.stopped in ("signal", "max_failures"):
                break
            if not in_flight:
                if not asker.working():
                    break
                asker.wait(_TICK)
                continue
            outcome = backend.wait(lambda: should_stop() or bool(idle) and asker.ready())
            if outcome is None:
                continue
            if isinstance(outcome, Report):
                judge(outcome)
                continue
            candidate, t_submit = in_flight.pop(outcome.trial_id)
            stopping.discard(outcome.trial_id)
            result = _result(outcome, candidate, t_submit)
            # The worker's clock may run a little ahead of the master's on another node (or be unknown: NaN).
            finished[outcome.worker] = outcome.t_end if outcome.t_end <= outcome.t_received else outcome.t_received
            if recorder is not None:
                recorder.record_result(result)
            if candidate is not None:
                asker.tell(result)
                if recorder is not None and optimizer.has_tree:
                    table = asker.tree()  # on a thread: as of the results it has told so far
                    if table is not None:
                        recorder.record_tree(table)
                summary.evaluations += 1
                if result.status is TrialState.PRUNED:
                    summary.pruned += 1
                elif result.status is not TrialState.OK:
                    summary.failures += 1
                elif summary.best is None or sign * result.value > sign * summary.best.value:
                    summary.best = result
            summary.busy += max(0.0, result.t_end - result.t_start)
            summary.results.append(result)
            idle.append(outcome.worker)
            if on_result is not None:
                on_result(result, summary)
            if max_failures is not None and summary.failures > max_failures:
                summary.stopped = "max_failures"
    finally:
        asker.close()
    if recorder is not None:
        _record_undispatched(optimizer, recorder, set(in_flight) | {c.id for c in redo}, backend.now())
        if optimizer.has_tree:
            recorder.record_tree(optimizer.tree_table())  # the final tree, with every tell and ask applied
    summary.makespan = backend.now()
    return summary


def _record_undispatched(optimizer: Optimizer, recorder: Recorder, dispatched: set[int], now: float) -> None:
    """Record the candidates asked (ahead) but never dispatched when the run ended, as worker -1: the log then
    holds every ask the optimizer made, so resume rebuilds the very state it stopped in (a tree method's tree
    included) and issues them first."""
    for candidate in optimizer.pending():
        if candidate.id not in dispatched:
            recorder.record_submit(candidate, -1, now)


def _result(outcome: Outcome, candidate: Candidate | None, t_submit: float) -> TrialResult:
    status, error = outcome.status, outcome.error
    if status is TrialState.OK and not math.isfinite(outcome.value):
        status, error = TrialState.FAILED, f"objective returned {outcome.value!r}"
    return TrialResult(
        trial_id=outcome.trial_id,
        params={} if candidate is None else dict(candidate.params),
        u=np.zeros(0) if candidate is None else candidate.u.copy(),
        status=status, value=outcome.value if status in (TrialState.OK, TrialState.PRUNED) else math.nan,
        metrics=dict(outcome.metrics), worker=outcome.worker, device=outcome.device,
        t_submit=t_submit, t_start=outcome.t_start, t_end=outcome.t_end, error=error, step=outcome.step)
