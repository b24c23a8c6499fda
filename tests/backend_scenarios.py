"""What the backend conformance suite (test_backend_conformance.py) does to a backend, scenario by scenario,
with the objective `faulty:behave`: each scenario drives a started backend through its public methods only and
returns plain facts (JSON), which the suite checks the same way for every backend.

Run as a script under mpirun, it is the MPI side: rank 0 plays every scenario on an MPIBackend (close last, as
it ends the workers) and writes the facts to a JSON file; the other ranks serve with pbo.run's initializer.

    mpirun -np 3 python tests/backend_scenarios.py FACTS.json PID_DIR
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from pbo.trial import Outcome, Report, Task
from pbo_process import alive

#: Every backend under test runs with this trial timeout (seconds).
TIMEOUT = 2.0
#: Seconds a trial told to stop may take to end (prune_grace).
GRACE = 0.5
#: The workers every backend under test has.
WORKERS = [1, 2]


def settings(pid_dir: str) -> dict[str, Any]:
    """The run settings (pbo.config) of the local and MPI backends under test."""
    return {"objective": "faulty:behave", "objective_options": {"key": "score", "pid_dir": pid_dir},
            "space": {"mode": {"type": "categorical", "choices": ["ok"]}, "x": {"type": "float", "low": 0, "high": 1}},
            "timeout": TIMEOUT, "workers": len(WORKERS), "algorithm": "random", "prune_grace": GRACE}


def fact(outcome: Outcome, t_submit: float) -> dict[str, Any]:
    return {"trial_id": outcome.trial_id, "worker": outcome.worker, "status": outcome.status.value,
            "value": outcome.value, "error": outcome.error, "t_submit": t_submit, "t_start": outcome.t_start,
            "t_end": outcome.t_end, "t_received": outcome.t_received}


def one(backend: Any, worker: int, trial_id: int, mode: str, x: float = 0.5) -> dict[str, Any]:
    t_submit = backend.now()
    backend.submit(worker, Task(trial_id, {"mode": mode, "x": x}))
    return fact(backend.wait(lambda: False), t_submit)


def raises(backend: Any, pid_dir: str) -> dict[str, Any]:
    return one(backend, 1, 1, "raise")


def exits(backend: Any, pid_dir: str) -> dict[str, Any]:
    return one(backend, 2, 2, "exit")


def segfault(backend: Any, pid_dir: str) -> dict[str, Any]:
    return one(backend, 1, 3, "segfault")


def timeout(backend: Any, pid_dir: str) -> dict[str, Any]:
    return one(backend, 2, 4, "hang")


def stop(backend: Any, pid_dir: str) -> dict[str, Any]:
    """A stop request while a trial runs: wait() gives None at once, and the trial still comes back later."""
    t_submit = backend.now()
    backend.submit(1, Task(5, {"mode": "slow", "x": 0.25}))
    start = time.monotonic()
    stopped = backend.wait(lambda: True)
    waited = time.monotonic() - start
    return {"stopped": stopped is None, "waited": waited, **fact(backend.wait(lambda: False), t_submit)}


def workers(backend: Any, pid_dir: str) -> dict[str, Any]:
    """Six trials on the two workers, each freed worker given the next one: who ran what, and when."""
    ids = iter(range(10, 16))
    sent: dict[int, tuple[int, float]] = {}

    def send(worker: int) -> None:
        trial_id = next(ids, None)
        if trial_id is not None:
            sent[trial_id] = (worker, backend.now())
            backend.submit(worker, Task(trial_id, {"mode": "ok", "x": trial_id / 100}))

    for worker in backend.workers:
        send(worker)
    outcomes = []
    for _ in range(6):
        outcome = backend.wait(lambda: False)
        worker, t_submit = sent[outcome.trial_id]
        outcomes.append({**fact(outcome, t_submit), "sent_to": worker})
        send(outcome.worker)
    return {"workers": list(backend.workers), "outcomes": outcomes, "now": backend.now()}


def reporting(backend: Any, worker: int, trial_id: int, mode: str, stop_at: float) -> dict[str, Any]:
    """One reporting trial, answered "go on" until step `stop_at`: its reports and its outcome."""
    t_submit = backend.now()
    backend.submit(worker, Task(trial_id, {"mode": mode, "x": 0.5}))
    reports = []
    while True:
        got = backend.wait(lambda: False)
        if isinstance(got, Outcome):
            return {"reports": reports, "step": got.step, "metrics": got.metrics, **fact(got, t_submit)}
        assert isinstance(got, Report)
        reports.append({"trial_id": got.trial_id, "worker": got.worker, "step": got.step, "value": got.value,
                        "metrics": got.metrics, "t": got.t})
        backend.answer(got, got.step < stop_at)


def report(backend: Any, pid_dir: str) -> dict[str, Any]:
    """A trial reporting steps 1, 2, 3, told to stop at step 2."""
    return reporting(backend, 1, 30, "report", stop_at=2)


def ignore(backend: Any, pid_dir: str) -> dict[str, Any]:
    """A trial that reports once, is told to stop and sleeps on regardless."""
    return reporting(backend, 2, 31, "ignore", stop_at=1)


def close(backend: Any, pid_dir: str) -> dict[str, Any]:
    """close() while every worker runs a hanging trial: how soon after it their processes are gone."""
    for old in Path(pid_dir).glob("*.pid"):
        old.unlink()
    start = time.monotonic()
    for worker in backend.workers:
        backend.submit(worker, Task(20 + worker, {"mode": "hang", "x": 0.0}))
    while len(list(Path(pid_dir).glob("*.pid"))) < len(backend.workers) and time.monotonic() - start < 30:
        time.sleep(0.01)
    pids = sorted(int(p.stem) for p in Path(pid_dir).glob("*.pid"))
    closed = time.monotonic()
    backend.close()
    while any(alive(pid) for pid in pids) and time.monotonic() - closed < 10:
        time.sleep(0.01)
    gone = None if any(alive(pid) for pid in pids) else time.monotonic() - closed
    return {"pids": pids, "since_submit": closed - start, "gone_after": gone}


#: Every scenario by name, in the order the MPI driver plays them (close ends the workers: last).
SCENARIOS = {"raise": raises, "exit": exits, "segfault": segfault, "timeout": timeout, "stop": stop,
             "workers": workers, "report": report, "ignore": ignore, "close": close}


def main(out: str, pid_dir: str) -> int:
    from pbo import gpu
    from pbo.backends import backend_class, mpi
    from pbo.config import build_config
    from pbo.run import initialize_worker

    comm = mpi.world()
    ranks = gpu.node_ranks(comm)
    if comm.Get_rank() > 0:
        return mpi.serve(comm, functools.partial(initialize_worker, ranks))
    config = build_config(settings(pid_dir))
    backend = backend_class("mpi").from_settings(config, None, comm=comm, ranks_on_node=ranks)
    backend.start(config)
    facts = {name: scenario(backend, pid_dir) for name, scenario in SCENARIOS.items()}
    Path(out).write_text(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
