"""Workers on this machine without MPI: each running trial is a child process of the master (W at once), or,
with isolation off and one worker, a plain call in the master itself."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any, Callable, Mapping

from pbo import gpu
from pbo.backends import Backend
from pbo.isolation import wait_any
from pbo.objectives import Objective
from pbo.trial import Outcome, Report, Task
from pbo.worker import DEFAULT_GRACE, Evaluator, Running, host

#: Longest wait between two looks at the stop flag (seconds).
TICK = 0.1


class LocalBackend(Backend):
    name = "local"
    #: Trials are forked from this process: a child forked while the asker thread holds a lock (one of torch's)
    #: would hang on it, so the optimizer stays on the main thread.
    allows_threads = False

    def __init__(self, objective: Objective, n_workers: int = 1, *, isolate: bool = True,
                 timeout: float | None = None, gpus_per_worker: int = 1, gpu_count: int | None = None,
                 master_gpu: bool = False, grace: float = DEFAULT_GRACE, report_raises: bool = False) -> None:
        if n_workers < 1:
            raise ValueError(f"workers must be >= 1, got {n_workers}")
        if not isolate and n_workers > 1:
            raise ValueError("isolate: false runs the single worker inside the master; use isolate: true for "
                             "more than one local worker")
        if not isolate and timeout is not None:
            raise ValueError("a timeout needs isolate: true (an inline trial cannot be stopped)")
        self.workers = list(range(1, n_workers + 1))
        self.t0 = time.time()
        gpus = gpu.gpu_ids(os.environ, gpu_count)
        ranks = [0, *self.workers]
        self.bindings = {w: gpu.assign(*gpu.node_slot(ranks, w, master_gpu), gpus, gpus_per_worker)
                         for w in self.workers}
        self.warnings = sorted({b.warning for b in self.bindings.values() if b.warning})
        if not isolate:  # the worker is this process
            gpu.pin(self.bindings[1], os.environ)
        self.evaluators = {
            w: Evaluator(objective, w, isolate=isolate, timeout=timeout, device=b.label(host()),
                         prepare=(lambda b=b: gpu.pin(b, os.environ)), clock=self.now, grace=grace,
                         report_raises=report_raises)
            for w, b in self.bindings.items()}
        self.running: dict[int, Running] = {}
        self._reports: deque[Report] = deque()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], objective: Objective, *, comm: Any = None,
                      ranks_on_node: list[int] | None = None) -> "LocalBackend":
        return cls(objective, settings["workers"], isolate=settings["isolate"], timeout=settings["timeout"],
                   gpus_per_worker=settings["gpus_per_worker"], gpu_count=settings["gpus"],
                   master_gpu=settings["master_gpu"], grace=settings["prune_grace"],
                   report_raises=settings["report_raises"])

    @property
    def start_time(self) -> float:
        return self.t0

    def start(self, config: Mapping[str, Any]) -> list[str]:
        return list(self.warnings)

    def now(self) -> float:
        return time.time() - self.t0

    def submit(self, worker: int, task: Task) -> None:
        if worker in self.running:
            raise RuntimeError(f"worker {worker} is busy")
        self.running[worker] = self.evaluators[worker].start(task)

    def wait(self, should_stop: Callable[[], bool]) -> Outcome | Report | None:
        while self.running:
            for running in self.running.values():
                self._reports.extend(running.reports())
            if self._reports:  # a child that sent one waits for its answer: it cannot have finished since
                return self._reports.popleft()
            for worker, running in self.running.items():
                finished = running.poll()
                if finished is not None:
                    del self.running[worker]
                    outcome = self.evaluators[worker].finish(running, finished)
                    outcome.t_received = self.now()
                    return outcome
            if should_stop():
                return None
            wait_any([r.child for r in self.running.values() if r.child is not None], TICK)
        raise RuntimeError("wait() with no task running")

    def answer(self, report: Report, go_on: bool) -> None:
        """Answer the child through its pipe. Without isolation the trial has already ended when its reports
        come: they are judged and recorded, but a stop changes nothing."""
        running = self.running.get(report.worker)
        if running is not None and running.task.trial_id == report.trial_id and running.child is not None:
            running.answer(go_on)

    def close(self) -> None:
        """Kill what is still running (after an interrupted run)."""
        for running in self.running.values():
            if running.child is not None:
                running.child.kill()
        self.running.clear()
