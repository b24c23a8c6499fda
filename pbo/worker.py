"""The worker side of every backend: turn a task (trial id and parameters) into an outcome (status, value,
metrics, times, device), isolated in a child process or inline.

An objective with a parameter named `report` is called as `function(params, report=report)` and may call
`report(step, value, fidelity=None, **metrics)` while it runs: each call travels to the backend as a `Report`,
and returns False once the master says stop (or raises `TrialPruned` with `report_raises`). A trial told to
stop ends as `pruned` with its last report, however it ends (returns, raises, or is killed after the grace
period).

Tasks, reports and outcomes (`pbo.trial`) are plain dataclasses, so they cross MPI and pipes as small pickles.
"""

from __future__ import annotations

import inspect
import math
import numbers
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pbo.isolation import Channel, Child, Finished, InlineChannel, run_inline
from pbo.objectives import Objective
from pbo.trial import Outcome, Report, Task, TrialPruned, TrialState

#: Seconds a trial told to stop may take to end before it is killed (and recorded as pruned all the same).
DEFAULT_GRACE = 30.0

#: What an objective's `report` looks like: report(step, value, fidelity=None, **metrics) -> continue?
ReportFunction = Callable[..., bool]


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


def takes_report(function: Callable[..., Any]) -> bool:
    """Whether an objective wants the `report` function: it has a parameter named `report`."""
    try:
        parameter = inspect.signature(function).parameters.get("report")
    except (TypeError, ValueError):  # a builtin or extension without a signature
        return False
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"report: {name} must be a number, got {type(value).__name__}")
    return float(value)


def make_report(channel: Channel, clock: Callable[[], float], raises: bool = False) -> ReportFunction:
    """The `report` an objective gets: checks its arguments, sends them through `channel` as a plain dict and
    returns the master's answer (True: go on; False: stop, or TrialPruned raised when `raises`)."""

    def report(step: float, value: float, fidelity: float | None = None, **metrics: float) -> bool:
        message = {"step": _number("step", step), "value": _number("value", value),
                   "fidelity": math.nan if fidelity is None else _number("fidelity", fidelity),
                   "metrics": {str(k): _number(str(k), v) for k, v in metrics.items()}, "t": clock()}
        go_on = channel.send(message)
        if not go_on and raises:
            raise TrialPruned(f"stopped by the master at step {message['step']:g}")
        return go_on

    return report


def evaluate(objective: Objective, task: Task, report: ReportFunction | None = None) -> tuple[float, dict[str, float]]:
    if task.baseline:
        if objective.baseline is None:
            raise ValueError(f"objective {objective.name!r} has no baseline")
        return split_output(objective.baseline(), objective.key)
    if report is not None:
        return split_output(objective.function(task.params, report=report), objective.key)
    return split_output(objective.function(task.params), objective.key)


class Evaluator:
    """Runs tasks for one worker: `start()` a task, then `finish()` what its child (or inline run) gave."""

    def __init__(self, objective: Objective, worker: int, *, isolate: bool = True, timeout: float | None = None,
                 device: str = "cpu", prepare: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time, grace: float = DEFAULT_GRACE,
                 report_raises: bool = False) -> None:
        self.objective = objective
        self.worker = worker
        self.isolate = isolate
        self.timeout = timeout
        self.device = device
        self.prepare = prepare
        self.clock = clock
        self.grace = grace
        self.report_raises = report_raises
        self.reporting = takes_report(objective.function)

    def start(self, task: Task) -> "Running":
        t_start = self.clock()
        reporting = self.reporting and not task.baseline

        def job(channel: Channel | None = None) -> tuple[float, dict[str, float]]:  # runs in the child
            report = None if channel is None else make_report(channel, self.clock, self.report_raises)
            return evaluate(self.objective, task, report)

        if self.isolate:
            return Running(task, self.worker, t_start, self.grace,
                           Child(job, self.timeout, self.prepare, reporting=reporting))
        channel = InlineChannel() if reporting else None
        return Running(task, self.worker, t_start, self.grace, None, run_inline(job, channel), channel)

    def finish(self, running: "Running", finished: Finished) -> Outcome:
        running.reports()  # the last messages, if the backend did not take them
        out = Outcome(running.task.trial_id, self.worker, finished.status, error=finished.error,
                      device=self.device, t_start=running.t_start, t_end=self.clock())
        if running.stopped or finished.status is TrialState.PRUNED:
            out.status = TrialState.PRUNED
            out.error = finished.error if finished.status is TrialState.PRUNED else ""
            running.last_into(out)
        elif finished.status is TrialState.OK:
            out.value, out.metrics = finished.payload
            if running.last is not None:
                out.step = running.last.step
        return out


@dataclass
class Running:
    """A task in progress: its child process, or the result of an inline run, and the reports it sent."""

    task: Task
    worker: int
    t_start: float
    grace: float
    child: Child | None
    inline: Finished | None = None
    channel: InlineChannel | None = None
    #: The last report taken (what a pruned trial keeps), and whether the master said stop.
    last: Report | None = None
    stopped: bool = False
    _taken: int = field(default=0, repr=False)

    def poll(self) -> Finished | None:
        return self.inline if self.child is None else self.child.poll()

    def reports(self) -> list[Report]:
        """The reports sent since the last call, in order. After a stop, later messages are answered "stop"
        here and dropped: the master has judged the trial."""
        if self.child is not None:
            messages, self.child.inbox = self.child.inbox, []
        else:
            messages = [] if self.channel is None else self.channel.messages[self._taken:]
            self._taken += len(messages)
        taken = []
        for message in messages:
            if self.stopped:
                self.answer(False)
                continue
            report = Report(self.task.trial_id, self.worker, message["step"], message["value"], message["fidelity"],
                            message["metrics"], message["t"])
            self.last = report
            taken.append(report)
        return taken

    def answer(self, go_on: bool) -> None:
        """The master's answer to the last report: go on, or stop (then the child is killed after the grace).
        An inline run has ended before its reports are judged: its answers change nothing."""
        if self.child is None:
            return
        self.child.answer(go_on)
        if not go_on:
            self.stopped = True
            self.child.stop(self.grace)

    def last_into(self, outcome: Outcome) -> None:
        """Give a pruned outcome the value, metrics and step of the last report (NaN if none)."""
        if self.last is not None:
            outcome.value, outcome.step = self.last.value, self.last.step
            outcome.metrics = dict(self.last.metrics)


def host() -> str:
    return socket.gethostname()
