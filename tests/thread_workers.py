"""A backend for tests whose workers are threads of the test process: a real clock, nothing forked, so the
scheduler may hand the optimizer to its asker thread (as on MPI workers)."""

import queue
import threading
import time

from pbo.backends import Backend
from pbo.trial import Outcome, TrialState


class ThreadWorkers(Backend):
    """`function(params)` evaluated on a thread per task; `submitted` lists the trial ids in dispatch order."""

    name = "thread"
    allows_threads = True

    def __init__(self, n_workers, function):
        self.workers, self.function = list(range(1, n_workers + 1)), function
        self.t0, self.outcomes, self.submitted = time.monotonic(), queue.Queue(), []

    def now(self):
        return time.monotonic() - self.t0

    def submit(self, worker, task):
        self.submitted.append(task.trial_id)

        def run():
            t_start = self.now()
            try:
                status, value, error = TrialState.OK, self.function(task.params), ""
            except Exception as exc:  # noqa: BLE001 - a failed trial, as a worker would report it
                status, value, error = TrialState.FAILED, float("nan"), f"{type(exc).__name__}: {exc}"
            self.outcomes.put(Outcome(task.trial_id, worker, status, value, error=error, t_start=t_start,
                                      t_end=self.now()))

        threading.Thread(target=run).start()

    def wait(self, should_stop):
        while not should_stop():
            try:
                outcome = self.outcomes.get(timeout=0.005)
            except queue.Empty:
                continue
            outcome.t_received = self.now()
            return outcome
        return None

    def close(self):
        pass
