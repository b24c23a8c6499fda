"""A simulated cluster: W virtual workers on a virtual clock. Each trial is evaluated at once in this
process and finishes after the cost model's duration, so 1024 workers x 4096 trials take seconds, and the
same seed gives the same run.

With `master_time`, the master's real compute time (asks, tells, recording) is added to the virtual clock, as
it delays dispatches in a real run: more faithful for model-based algorithms, but no longer deterministic.

A reporting objective runs to its end at once too (its `report` always answers "go on"); its reports are then
spread over the trial's virtual duration (at `fidelity` x duration when it gives a fidelity, else evenly, the
last at the end) and come out of `wait` in clock order. A stop answered to a report ends the trial there, on
the virtual clock, as `pruned` with that report's value: what a real worker would have recorded."""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from typing import Any, Callable, Mapping

from pbo.backends import Backend
from pbo.objectives import Objective
from pbo.objectives.cost import CostModel
from pbo.trial import Outcome, Report, Task, TrialState
from pbo.worker import Evaluator


class SimulatedBackend(Backend):
    name = "simulated"
    allows_threads = False  # a virtual clock: a thread would make runs depend on real timing
    virtual_clock = True

    def __init__(self, objective: Objective, n_workers: int, cost: CostModel, *,
                 timeout: float | None = None, master_time: bool = False) -> None:
        if n_workers < 1:
            raise ValueError(f"simulate needs >= 1 worker, got {n_workers}")
        self.evaluators = {w: Evaluator(objective, w, isolate=False, device="simulated", clock=self.now)
                           for w in range(1, n_workers + 1)}
        self.cost = cost
        self.timeout = timeout
        self.workers = list(self.evaluators)
        self.clock = 0.0
        self.master_time = master_time
        self._mark = time.perf_counter()  # when the master last got control back from this backend
        self._events: list[tuple[float, int, Outcome | Report]] = []
        self._seq = 0  # ties finish in submission order
        self._outcomes: dict[int, Outcome] = {}  # trial id -> the outcome its last event delivers
        self._stopped: set[int] = set()  # trials told to stop: their later reports are dropped

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], objective: Objective, *, comm: Any = None,
                      ranks_on_node: list[int] | None = None) -> "SimulatedBackend":
        if settings.get("cost") is None:
            raise ValueError("simulate needs a cost model: set `cost` (e.g. {kind: lognormal, mean: 60})")
        return cls(objective, settings["simulate"], CostModel.from_dict(settings["cost"]), timeout=settings["timeout"],
                   master_time=settings["simulate_master_time"])

    @property
    def master_time_counts(self) -> bool:
        return self.master_time

    def now(self) -> float:
        return self.clock + (time.perf_counter() - self._mark if self.master_time else 0.0)

    def submit(self, worker: int, task: Task) -> None:
        self._resume()
        evaluator = self.evaluators[worker]
        running = evaluator.start(task)
        finished = running.poll()
        reports = running.reports()
        outcome = evaluator.finish(running, finished)
        duration = self.cost.duration(task.params)
        for i, report in enumerate(reports):
            share = report.fidelity if 0 <= report.fidelity <= 1 else (i + 1) / len(reports)
            report.t = self.clock + share * duration
        if outcome.status is TrialState.PRUNED and reports:  # it stopped itself (TrialPruned) at its last report
            duration = reports[-1].t - self.clock
        if self.timeout is not None and duration > self.timeout:
            duration = self.timeout
            outcome.status, outcome.error = TrialState.TIMEOUT, f"timed out after {self.timeout:g} s"
        outcome.t_end = self.clock + duration
        for report in reports:
            if report.t <= outcome.t_end:
                self._push(report.t, report)
        self._outcomes[task.trial_id] = outcome
        self._push(outcome.t_end, outcome)
        self._mark = time.perf_counter()  # the evaluation itself costs the master nothing in a real run

    def wait(self, should_stop: Callable[[], bool]) -> Outcome | Report | None:
        if should_stop():
            return None
        self._resume()
        while True:
            t, _, event = heapq.heappop(self._events)
            if self._outcomes.get(event.trial_id) is event or (
                    isinstance(event, Report) and event.trial_id in self._outcomes
                    and event.trial_id not in self._stopped):
                break  # else an event of a trial stopped earlier
        self.clock = max(self.clock, t)
        self._mark = time.perf_counter()
        if isinstance(event, Outcome):
            del self._outcomes[event.trial_id]
            self._stopped.discard(event.trial_id)
            event.t_received = self.clock
        return event

    def answer(self, report: Report, go_on: bool) -> None:
        """A stop ends the trial at this report: its pruned outcome replaces the one due at its end."""
        final = self._outcomes.get(report.trial_id)
        if go_on or final is None:
            return
        pruned = dataclasses.replace(final, status=TrialState.PRUNED, value=report.value, metrics=dict(report.metrics),
                                     step=report.step, error="", t_end=report.t, t_received=math.nan)
        self._outcomes[report.trial_id] = pruned
        self._stopped.add(report.trial_id)
        self._push(report.t, pruned)

    def _push(self, t: float, event: Outcome | Report) -> None:
        heapq.heappush(self._events, (t, self._seq, event))
        self._seq += 1

    def _resume(self) -> None:
        """Fold the master's time since it last got control into the virtual clock."""
        self.clock = self.now()
        self._mark = time.perf_counter()

    def close(self) -> None:
        self._events.clear()
        self._outcomes.clear()
        self._stopped.clear()
