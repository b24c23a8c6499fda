"""A simulated cluster: W virtual workers on a virtual clock. Each trial is evaluated at once in this
process and finishes after the cost model's duration, so 1024 workers x 4096 trials take seconds, and the
same seed gives the same run.

With `master_time`, the master's real compute time (asks, tells, recording) is added to the virtual clock, as
it delays dispatches in a real run: more faithful for model-based algorithms, but no longer deterministic."""

from __future__ import annotations

import heapq
import time
from typing import Any, Callable, Mapping

from pbo.backends import Backend
from pbo.objectives import Objective
from pbo.objectives.cost import CostModel
from pbo.trial import Outcome, Task, TrialState
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
        self._events: list[tuple[float, int, Outcome]] = []
        self._seq = 0  # ties finish in submission order

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], objective: Objective, *, comm: Any = None,
                      ranks_on_node: list[int] | None = None) -> "SimulatedBackend":
        if settings.get("cost") is None:
            raise ValueError("simulate needs a cost model: set `cost` (e.g. {kind: lognormal, mean: 60})")
        return cls(objective, settings["simulate"], CostModel.from_dict(settings["cost"]), timeout=settings["timeout"],
                   master_time=settings["simulate_master_time"])

    def now(self) -> float:
        return self.clock + (time.perf_counter() - self._mark if self.master_time else 0.0)

    def submit(self, worker: int, task: Task) -> None:
        self._resume()
        evaluator = self.evaluators[worker]
        running = evaluator.start(task)
        outcome = evaluator.finish(running, running.poll())
        duration = self.cost.duration(task.params)
        if self.timeout is not None and duration > self.timeout:
            duration = self.timeout
            outcome.status, outcome.error = TrialState.TIMEOUT, f"timed out after {self.timeout:g} s"
        outcome.t_end = self.clock + duration
        heapq.heappush(self._events, (outcome.t_end, self._seq, outcome))
        self._seq += 1
        self._mark = time.perf_counter()  # the evaluation itself costs the master nothing in a real run

    def wait(self, should_stop: Callable[[], bool]) -> Outcome | None:
        if should_stop():
            return None
        self._resume()
        t_end, _, outcome = heapq.heappop(self._events)
        self.clock = outcome.t_received = max(self.clock, t_end)
        self._mark = time.perf_counter()
        return outcome

    def _resume(self) -> None:
        """Fold the master's time since it last got control into the virtual clock."""
        self.clock = self.now()
        self._mark = time.perf_counter()

    def close(self) -> None:
        self._events.clear()
