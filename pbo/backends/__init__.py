"""Backends move tasks to workers and outcomes back for the scheduler: local processes, MPI ranks, or a
simulated cluster on a virtual clock. By name in `BACKENDS`, like the optimizers' `ALGORITHMS`; imports are
lazy, because importing mpi4py initialises MPI.

Every backend follows `Backend`: the scheduler's contract (`start`, `now`, `submit`, `wait`, `answer`, `close`,
`workers`) and what `pbo.run` asks of it (`from_settings`, `virtual_clock`, `start_time`, `allows_threads`).

Example:
    >>> backend_class("simulated").virtual_clock, backend_class("local").allows_threads
    (True, False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

if TYPE_CHECKING:
    from pbo.objectives import Objective
    from pbo.trial import Outcome, Report, Task

BACKENDS = {
    "local": "pbo.backends.local:LocalBackend",
    "simulated": "pbo.backends.simulated:SimulatedBackend",
    "mpi": "pbo.backends.mpi:MPIBackend",
}


def backend_class(name: str) -> type["Backend"]:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


class Backend:
    """Moves tasks to workers and outcomes back; knows nothing of optimizers. Capabilities are class
    attributes, read by `pbo.run` and the scheduler instead of asking which backend this is."""

    #: The backend's name in `BACKENDS` (and in the run's first line).
    name: ClassVar[str] = ""
    #: Whether the master may run the optimizer on a thread of its own (see `pbo.asker`).
    allows_threads: ClassVar[bool] = False
    #: Whether `now()` is a virtual clock: trials take no real time (their cost model's sleep is skipped), and
    #: there is no wall-clock start for the log and no live progress.
    virtual_clock: ClassVar[bool] = False

    workers: list[int]

    @property
    def master_time_counts(self) -> bool:
        """Whether time the master spends computing is time the workers may wait (real time, or a virtual clock
        charged with the master's compute)."""
        return not self.virtual_clock

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], objective: "Objective", *, comm: Any = None,
                      ranks_on_node: list[int] | None = None) -> "Backend":
        """The backend for a run's checked settings (`pbo.config.Config`); under mpirun, `comm` and the node-local
        ranks. Raises ValueError, in one line, for settings it cannot serve."""
        raise NotImplementedError

    @property
    def start_time(self) -> float | None:
        """The Unix time `now()` counts from, or None on a virtual clock."""
        return None

    def start(self, config: Mapping[str, Any]) -> list[str]:
        """Get the workers ready for the run's settings; returns warnings, raises WorkerStartError."""
        return []

    def now(self) -> float:
        """Seconds since the run started, on the clock the outcomes' times use."""
        raise NotImplementedError

    def submit(self, worker: int, task: "Task") -> None:
        """Start `task` on an idle `worker`."""
        raise NotImplementedError

    def wait(self, should_stop: Callable[[], bool]) -> "Outcome | Report | None":
        """The next finished outcome, or an intermediate report of a running trial (which must be `answer`ed: its
        trial waits for the answer); None once `should_stop()` turns true while waiting (nothing is lost: a later
        `wait` returns it). A trial's reports come before its outcome."""
        raise NotImplementedError

    def answer(self, report: "Report", go_on: bool) -> None:
        """Tell the trial that sent `report` to go on or to stop; never blocks. An answer to a trial that has
        ended meanwhile is dropped. Backends whose objectives never report need not override it."""

    def close(self) -> None:
        """Stop the workers; work still running is abandoned and its processes killed."""
