"""MPI master/worker transport with mpi4py point-to-point messages: rank 0 is the master, ranks 1.. workers.

Protocol (paired tags): the master sends SETUP (the settings, or None to quit) to every worker, each answers
READY (a GPU-sharing warning, or its start-up error with rank and host); then TASK -> RESULT as long as there is work,
and STOP to end. A worker polls for STOP while its trial runs, so an interrupted master stops busy workers.
A trial that reports sends REPORT messages (non-blocking) while it runs and waits for the master's ANSWER
(trial id, go on?); the master answers from its receive loop, so no other worker waits for it. An ANSWER
that arrives after its trial ended is dropped.

A worker rank knows nothing of the settings: `serve` hands them to the initializer it is given (as an
`mpi4py.futures` server runs its initializer), which returns the rank's `Evaluator`.

Nobody spins: MPICH's blocking receives busy-poll a core, so every receive here is an Iprobe with a sleep
that backs off from 0.5 ms to MAX_SLEEP.
"""

from __future__ import annotations

import signal
import time
from typing import Any, Callable, Mapping

from mpi4py import MPI

from pbo import gpu
from pbo.backends import Backend
from pbo.isolation import describe, wait_any
from pbo.objectives import Objective
from pbo.trial import Outcome, Report, Task, TrialState, WorkerStartError
from pbo.worker import Evaluator, Running, host

SETUP, READY, TASK, RESULT, STOP, REPORT, ANSWER = 1, 2, 3, 4, 5, 6, 7
#: The longest sleep between two looks for a message. Each message waits half of it on average, twice per trial
#: (the result up, the next task down): at 10 ms that was 30-40 ms of idle worker per trial and 8 one-second
#: workers ran at 0.95 of the ideal utilization with random search; at 2 ms, 0.98, for an idle master's CPU of
#: 3 % of a core instead of 1.5 %.
MAX_SLEEP = 0.002
#: How often a busy worker looks for STOP while its trial runs (seconds).
TICK = 0.05

#: Sets a worker rank up from the master's settings, its rank and a clock on the master's time: returns the
#: rank's Evaluator and a warning for the master to print ("" for none); raises if the rank cannot serve.
Initializer = Callable[[Mapping[str, Any], int, Callable[[], float]], tuple[Evaluator, str]]


def receive(comm: MPI.Comm, source: int, tag: int,
            should_stop: Callable[[], bool] = lambda: False) -> tuple[Any, MPI.Status] | None:
    """The next message from `source` with `tag` (ANY_* allowed), or None once `should_stop()` holds."""
    status = MPI.Status()
    delay = 0.0005
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if should_stop():
            return None
        time.sleep(delay)
        delay = min(2 * delay, MAX_SLEEP)
    return comm.recv(source=status.Get_source(), tag=status.Get_tag()), status


class MPIBackend(Backend):
    """The master's side."""
    name = "mpi"
    allows_threads = True

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.workers = list(range(1, comm.Get_size()))
        self.t0 = time.time()
        self._answers: list[MPI.Request] = []  # answers in flight, kept until sent

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], objective: Objective, *, comm: Any = None,
                      ranks_on_node: list[int] | None = None) -> "MPIBackend":
        gpu.bind(0, ranks_on_node, gpus_per_worker=settings["gpus_per_worker"], gpu_count=settings["gpus"],
                 master_gpu=settings["master_gpu"])  # no GPU for the master unless configured
        return cls(comm)

    @property
    def start_time(self) -> float:
        return self.t0

    def now(self) -> float:
        return time.time() - self.t0

    def start(self, config: Mapping[str, Any]) -> list[str]:
        """Send the settings to every worker and collect their READY answers (a warning or an error)."""
        for worker in self.workers:
            self.comm.send({"config": dict(config), "t0": self.t0}, dest=worker, tag=SETUP)
        hellos = {}
        while len(hellos) < len(self.workers):
            hello, status = receive(self.comm, MPI.ANY_SOURCE, READY)
            hellos[status.Get_source()] = hello
        errors = [hellos[w]["error"] for w in self.workers if hellos[w]["error"]]
        if errors:
            raise WorkerStartError(errors)
        return sorted({h["warning"] for h in hellos.values() if h["warning"]})

    def cancel(self) -> None:
        """Tell every worker, still waiting for its settings, that there is no run (bad settings, --help)."""
        for worker in self.workers:
            self.comm.send(None, dest=worker, tag=SETUP)

    def submit(self, worker: int, task: Task) -> None:
        self.comm.send(task, dest=worker, tag=TASK)

    def wait(self, should_stop: Callable[[], bool]) -> Outcome | Report | None:
        got = receive(self.comm, MPI.ANY_SOURCE, MPI.ANY_TAG, should_stop)  # RESULT or REPORT once started
        if got is None:
            return None
        message = got[0]
        if isinstance(message, Outcome):
            message.t_received = self.now()
        return message

    def answer(self, report: Report, go_on: bool) -> None:
        self._answers = [request for request in self._answers if not request.Test()]
        self._answers.append(self.comm.isend((report.trial_id, go_on), dest=report.worker, tag=ANSWER))

    def close(self) -> None:
        """Stop every worker (busy ones kill their trial)."""
        for worker in self.workers:
            self.comm.send(None, dest=worker, tag=STOP)


def serve(comm: MPI.Comm, initializer: Initializer) -> int:
    """A worker rank's whole life: set up through `initializer`, run tasks until STOP. Returns its exit code."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the master decides when the run ends
        signal.signal(sig, signal.SIG_IGN)
    rank = comm.Get_rank()
    setup, _ = receive(comm, 0, SETUP)
    if setup is None:
        return 0
    t0 = setup["t0"]
    try:
        evaluator, warning = initializer(setup["config"], rank, lambda: time.time() - t0)
        comm.send({"warning": warning, "error": ""}, dest=0, tag=READY)
    except Exception as exc:  # noqa: BLE001 - reported to the master, which stops the run
        comm.send({"warning": "", "error": f"rank {rank} on {host()}: {describe(exc)}"}, dest=0, tag=READY)
        evaluator = None
    while True:
        message, status = receive(comm, 0, MPI.ANY_TAG)
        if status.Get_tag() == STOP:
            return 0
        if status.Get_tag() == ANSWER:  # to a report of a trial that has ended since
            continue
        outcome = _run(comm, evaluator, message)
        if outcome is None:  # stopped mid-trial
            return 0
        comm.send(outcome, dest=0, tag=RESULT)


def _run(comm: MPI.Comm, evaluator: Evaluator | None, task: Task) -> Outcome | None:
    if evaluator is None:
        return Outcome(task.trial_id, comm.Get_rank(), TrialState.FAILED, error="worker failed to start")
    running = evaluator.start(task)
    sent: list[MPI.Request] = []
    tick = TICK
    while True:
        ready = running.child is None or wait_any([running.child], tick)
        reports = running.reports()
        sent += [comm.isend(report, dest=0, tag=REPORT) for report in reports]
        # While the child waits for an answer, look for it often (backing off as `receive` does).
        answered = _take_answers(comm, running)
        if reports:
            tick = 0.0005
        elif answered:
            tick = TICK
        elif tick < TICK:
            tick = min(2 * tick, MAX_SLEEP)
        if ready and running.poll() is not None:
            break
        if comm.Iprobe(source=0, tag=STOP):
            running.child.kill()
            comm.recv(source=0, tag=STOP)
            return None
    MPI.Request.Waitall(sent)
    return evaluator.finish(running, running.poll())


def _take_answers(comm: MPI.Comm, running: Running) -> bool:
    """Pass the master's answers to the running trial (answers meant for an earlier trial are dropped); True if
    one came."""
    came = False
    while comm.Iprobe(source=0, tag=ANSWER):
        trial_id, go_on = comm.recv(source=0, tag=ANSWER)
        if trial_id == running.task.trial_id:
            running.answer(go_on)
            came = True
    return came


def world() -> MPI.Comm | None:
    """COMM_WORLD when started by mpirun with more than one rank, else None."""
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None

