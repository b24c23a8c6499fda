"""Who calls the optimizer's `ask` and `tell`, and when: the scheduler's own thread, or a thread of its own.

The scheduler hands out what an asker has ready and passes every result to it; the asker owns the optimizer
and the budget of asks left. `ThreadAsker` asks on a thread of its own, so that the scheduler's thread only
receives, records and dispatches: a result never waits behind an ask. It serves the idle workers and, while
asking ahead is wanted (asks slow next to trials: a GP optimizer with trials of a few seconds), keeps
candidates ready for the workers that will free next, so those wait for the recording of their result, not
for an ask. It runs whenever asking ahead is allowed and the backend allows threads (MPI workers).
`InlineAsker` asks on the scheduler's thread: with one worker, for optimizers that may not ask ahead, with
`ask_ahead: never`, on the simulated cluster (a virtual clock: a thread would make runs depend on real
timing) and with local workers (forked from the master: a child forked while the thread holds one of
torch's locks would hang); there it asks one ahead between results if wanted.

A candidate asked ahead was chosen without the results that came in while it waited (they were pending),
so asking ahead is off with one worker, by default on only when asks take more than `AskAhead.share` of a
trial, and never for an optimizer whose replay depends on when results arrived (`Optimizer.order_free_replay`).
It counts against the budget when asked and is recorded when dispatched, or, if the run stops first, as never
dispatched when it ends (see `pbo.scheduler.run_study`). The tree of a tree optimizer is read on the thread that
owns the optimizer (`tree()`).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from typing import Any

from pbo.optimizers.base import Candidate, Optimizer
from pbo.trial import TrialState
from pbo.trial import TrialResult

ASK_AHEAD_MODES = ("auto", "always", "never")


@dataclass
class AskAhead:
    """Decides whether to ask ahead: "always", "never", or "auto": when the recent asks' median compute time
    exceeds `share` of the recent trials' median duration. Never with one worker, and never for an optimizer
    whose replay depends on when results arrived.

    `share` is 1/1,000: BaMSOO's asks (a few milliseconds once its GP fits start warm) stayed under 1/100 of a
    1-second trial half the time, and its 8 workers waited for them (0.935 of the ideal utilization against
    0.955 asking ahead always, two runs each). With trials of minutes no ask reaches it."""

    mode: str = "auto"
    share: float = 0.001
    #: Whether the master's compute time delays the workers (not on a virtual clock that does not charge it):
    #: then each ask is told the time it may take (`Optimizer.time_per_ask`, see `time_per_ask`).
    paced: bool = False
    ask_seconds: deque = field(init=False, default_factory=lambda: deque(maxlen=5))
    trial_seconds: deque = field(init=False, default_factory=lambda: deque(maxlen=25))

    #: The share of the mean time between results (a trial's median duration over the workers) an ask may take:
    #: less than all of it, since results come in bursts and the master records them too.
    PACE_SHARE = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ASK_AHEAD_MODES:
            raise ValueError(f"ask_ahead must be one of {', '.join(ASK_AHEAD_MODES)}, got {self.mode!r}")

    def time_per_ask(self, n_workers: int) -> float | None:
        """The compute time an ask may take before workers wait for it, once trials have been timed."""
        if not self.paced or not self.trial_seconds:
            return None
        return self.PACE_SHARE * statistics.median(self.trial_seconds) / n_workers

    def ask(self, optimizer: Optimizer, n_workers: int) -> Candidate | None:
        """`optimizer.ask()`, timed, told the time it may take."""
        optimizer.time_per_ask = self.time_per_ask(n_workers)
        start = time.perf_counter()
        try:
            return optimizer.ask()
        finally:
            self.ask_seconds.append(time.perf_counter() - start)

    def observe(self, result: TrialResult) -> None:
        """Remember how long a successful trial took (failures may end early and say little)."""
        if result.status is TrialState.OK:
            self.trial_seconds.append(result.t_end - result.t_start)

    def allowed(self, optimizer: Optimizer, n_workers: int) -> bool:
        """Whether this run may ask ahead at all."""
        return self.mode != "never" and n_workers >= 2 and optimizer.order_free_replay

    def wanted(self, optimizer: Optimizer, n_workers: int) -> bool:
        if not self.allowed(optimizer, n_workers):
            return False
        if self.mode == "always":
            return True
        return bool(self.ask_seconds and self.trial_seconds) and (
            statistics.median(self.ask_seconds) > self.share * statistics.median(self.trial_seconds))


def tell(optimizer: Optimizer, result: TrialResult) -> None:
    if result.status is TrialState.OK:
        optimizer.tell(result.trial_id, result.value)
    elif result.status is TrialState.PRUNED:
        optimizer.tell_pruned(result.trial_id, result.value, result.step)
    else:
        optimizer.tell_failure(result.trial_id, result.error, result.status)


class InlineAsker:
    """Asks on the scheduler's thread when a worker is idle, or one ahead while all are busy, if wanted."""

    def __init__(self, optimizer: Optimizer, remaining: int, policy: AskAhead, n_workers: int) -> None:
        self.optimizer, self.remaining, self.policy, self.n_workers = optimizer, remaining, policy, n_workers
        self.held: deque[Candidate] = deque()
        self._exhausted = False

    def tell(self, result: TrialResult) -> None:
        tell(self.optimizer, result)
        self.policy.observe(result)

    def tree(self) -> dict[str, Any] | None:
        """The optimizer's tree table (`Optimizer.tree_table`) as of the results told so far."""
        return self.optimizer.tree_table()

    def take(self) -> Candidate | None:
        """A candidate for an idle worker, or None when the budget is spent or the optimizer has none now."""
        if self.held:
            return self.held.popleft()
        if self.remaining <= 0:
            return None
        candidate = self.policy.ask(self.optimizer, self.n_workers)
        if candidate is None:
            self._exhausted = not self.optimizer.pending()
        else:
            self.remaining -= 1
        return candidate

    def exhausted(self) -> bool:
        """The optimizer has nothing to propose and nothing pending: no result can change that."""
        return self._exhausted

    def before_wait(self, idle: int) -> None:
        """Called before waiting for a result, with the number of idle workers: ask ahead if wanted."""
        if not idle and not self.held and self.remaining > 0 and self.policy.wanted(self.optimizer, self.n_workers):
            candidate = self.policy.ask(self.optimizer, self.n_workers)
            if candidate is not None:
                self.held.append(candidate)
                self.remaining -= 1

    def ready(self) -> bool:
        return bool(self.held)

    def working(self) -> bool:
        """Whether a candidate may come without any new result."""
        return False

    def wait(self, timeout: float) -> None:
        """Nothing to wait for: an inline asker never works while the scheduler waits."""

    def close(self) -> None:
        """Nothing to stop."""


class ThreadAsker:
    """Owns the optimizer on a thread of its own: tells results in the order they were passed and keeps as many
    candidates ready as there are idle workers, plus `AHEAD` while asking ahead is wanted. Once results were told,
    and once before the first, it has the optimizer `prepare()` the next ask (a GP fit) as soon as it has nothing
    else to do: an ask that came first may have done that work already, and `prepare` then costs nothing.

    Only this thread touches the optimizer until `close()` returns; an exception it raises is raised again on
    the scheduler's thread by the next `take()` or by `close()`.
    """

    #: Candidates kept ready while asking ahead: one for the next result, one for a result that comes while
    #: the thread is still asking (or refitting its model). With one, GP-BO at 8 one-second workers left
    #: workers waiting twice as long (median dispatch latency 43 ms against 22 ms); three gained little.
    AHEAD = 2

    def __init__(self, optimizer: Optimizer, remaining: int, policy: AskAhead, n_workers: int) -> None:
        self.optimizer, self.policy, self.n_workers = optimizer, policy, n_workers
        self._ready: deque[Candidate] = deque()
        self._remaining = remaining
        self._tells: deque[TrialResult] = deque()
        self._idle = 0
        self._asking = False
        self._stalled = False  # the last ask returned None: only a result can change that
        self._began = False  # the scheduler called before_wait()
        self._unprepared = False  # results were told since the latest prepare(), or the run began
        self._ahead = self.policy.wanted(self.optimizer, self.n_workers)  # the policy's deques are this thread's
        self._exhausted = False
        self._closing = False
        self._tree: dict[str, Any] | None = None  # the tree table taken after the latest tells, until fetched
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="pbo-asker", daemon=True)
        self._thread.start()

    def tell(self, result: TrialResult) -> None:
        """Queue a result; its worker is idle from now on, so the thread asks for it at once rather than prepare
        while the scheduler hands it a ready candidate."""
        with self._cond:
            self._tells.append(result)
            self._idle += 1
            self._cond.notify_all()

    def tree(self) -> dict[str, Any] | None:
        """The tree table this thread took after the tells it applied last, once (None until it has a newer one):
        the scheduler's thread must not read a tree this thread may be changing."""
        with self._cond:
            table, self._tree = self._tree, None
            return table

    def take(self) -> Candidate | None:
        with self._cond:
            self._raise()
            if not self._ready:
                return None
            self._idle = max(0, self._idle - 1)
            return self._ready.popleft()

    def exhausted(self) -> bool:
        with self._cond:
            return self._exhausted

    def before_wait(self, idle: int) -> None:
        """The scheduler dispatched what it could and waits, with `idle` workers idle. The first call (the run
        began) also allows a first prepare, after the asks for those workers."""
        with self._cond:
            self._unprepared = self._unprepared or not self._began
            self._idle, self._began = idle, True
            self._cond.notify_all()

    def ready(self) -> bool:
        with self._cond:
            return bool(self._ready) or self._error is not None

    def working(self) -> bool:
        with self._cond:
            return self._error is None and (self._asking or bool(self._tells) or self._should_ask())

    def wait(self, timeout: float) -> None:
        """Until a candidate is ready, the thread has nothing left to do, or `timeout` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._error is not None or not (
                self._asking or self._tells or self._should_ask()), timeout)

    def close(self) -> None:
        """Tell what is still queued, finish the ask under way (its candidate is abandoned), stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _should_ask(self) -> bool:
        if self._closing or self._stalled or self._remaining <= 0:
            return False
        return len(self._ready) < self._idle + self.AHEAD * self._ahead

    def _should_prepare(self) -> bool:
        return self._unprepared and not self._closing and self._remaining > 0

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closing or self._tells or self._should_ask() or self._should_prepare())
                results = list(self._tells)
                self._tells.clear()
                if self._closing and not results:
                    return
                self._stalled = self._stalled and not results
                ask = self._should_ask()
                prepare = not ask and not results and self._should_prepare()
                self._unprepared = (self._unprepared or bool(results)) and not prepare
                self._asking = True
            candidate, table = None, None
            try:
                for result in results:
                    tell(self.optimizer, result)
                    self.policy.observe(result)
                if results and self.optimizer.has_tree:
                    table = self.optimizer.tree_table()
                if ask:
                    candidate = self.policy.ask(self.optimizer, self.n_workers)
                    exhausted = candidate is None and not self.optimizer.pending()
                elif prepare:
                    self.optimizer.prepare()
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler's thread
                with self._cond:
                    self._error, self._asking = exc, False
                    self._cond.notify_all()
                return
            ahead = self.policy.wanted(self.optimizer, self.n_workers)
            with self._cond:
                self._asking, self._ahead = False, ahead
                self._tree = table if table is not None else self._tree
                if candidate is not None:
                    self._ready.append(candidate)
                    self._remaining -= 1
                elif ask:
                    self._stalled, self._exhausted = True, exhausted
                self._cond.notify_all()
