"""The worker side of every backend: turn a task (trial id and parameters) into an outcome (status, value,
metrics, times, device), isolated in a child process or inline.

Tasks and outcomes (`pbo.trial`) are plain dataclasses, so they cross MPI and pipes as small pickles.
"""

from __future__ import annotations

import numbers
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pbo.isolation import Child, Finished, run_inline
from pbo.objectives import Objective
from pbo.trial import Outcome, Task, TrialState


def split_output(output: Any, key: str) -> tuple[float, dict[str, float]]:
    """The optimized value and the numeric metrics of what an objective returned (a float or a mapping)."""
    if isinstance(output, Mapping):
        metrics = {str(k): float(v) for k, v in output.items()
                   if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        if key not in output:
            raise KeyError(f"the objective returned no {key!r} (it returned {sorted(map(str, output))})")
        return float(output[key]), metrics
    if isinstance(output, numbers.Real) and not isinstance(output, bool):
        return float(output), {}
    raise TypeError(f"the objective returned {type(output).__name__}, expected a float or a mapping of metrics")


def evaluate(objective: Objective, task: Task) -> tuple[float, dict[str, float]]:
    if task.baseline:
        if objective.baseline is None:
            raise ValueError(f"objective {objective.name!r} has no baseline")
        return split_output(objective.baseline(), objective.key)
    return split_output(objective.function(task.params), objective.key)


class Evaluator:
    """Runs tasks for one worker: `start()` a task, then `finish()` what its child (or inline run) gave."""

    def __init__(self, objective: Objective, worker: int, *, isolate: bool = True, timeout: float | None = None,
                 device: str = "cpu", prepare: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.objective = objective
        self.worker = worker
        self.isolate = isolate
        self.timeout = timeout
        self.device = device
        self.prepare = prepare
        self.clock = clock

    def start(self, task: Task) -> "Running":
        t_start = self.clock()
        job = lambda: evaluate(self.objective, task)  # noqa: E731 - runs in the child
        if self.isolate:
            return Running(task, t_start, Child(job, self.timeout, self.prepare))
        return Running(task, t_start, None, run_inline(job))

    def finish(self, running: "Running", finished: Finished) -> Outcome:
        out = Outcome(running.task.trial_id, self.worker, finished.status, error=finished.error,
                      device=self.device, t_start=running.t_start, t_end=self.clock())
        if finished.status is TrialState.OK:
            out.value, out.metrics = finished.payload
        return out


@dataclass
class Running:
    """A task in progress: its child process, or the result of an inline run."""

    task: Task
    t_start: float
    child: Child | None
    inline: Finished | None = None

    def poll(self) -> Finished | None:
        return self.inline if self.child is None else self.child.poll()


def host() -> str:
    return socket.gethostname()
