"""The ask/tell contract every optimizer follows, and the bookkeeping they share.

An optimizer is a state machine with no knowledge of MPI, files or GPUs. `ask()` proposes a candidate or
returns None when nothing can be proposed until pending results come back; several candidates may be
outstanding at once. `tell()` / `tell_failure()` / `tell_pruned()` report a result. Subclasses override small
hooks only: `_ask()` returns a `Proposal` in the unit cube, `_tell()` / `_tell_failure()` / `_tell_pruned()`
take results (always as a
score to maximize), so the base class owns ids, pending candidates, duplicate detection, the minimize
sign, NaN -> failure, the incumbent and the replayable event history used for save/restore.

Example:
    >>> from pbo.space import Space
    >>> from pbo.optimizers import make_optimizer
    >>> opt = make_optimizer("random", Space.from_dict({"x": {"type": "float", "low": -1, "high": 1}}), seed=0)
    >>> cand = opt.ask()
    >>> opt.tell(cand.id, -cand.params["x"] ** 2)
    >>> opt.best().value <= 0
    True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from pbo.space import Space
from pbo.trial import TrialState  # defined in the low module pbo.trial; importable from here too


class ReplayError(RuntimeError):
    """A saved history cannot be replayed: another algorithm's, an unknown event, an ask out of sequence, or a
    recorded decision this optimizer could not have taken (the state cannot be restored)."""


class ReplayDivergence(RuntimeWarning):
    """Replaying a saved history recomputed a decision other than the recorded one (e.g. a GP fitted with another
    BLAS): the recorded decision is kept, so the run continues from the state it had."""


@dataclass(frozen=True)
class Proposal:
    """What an optimizer hook proposes: a unit point (shape (d,)) and algorithm metadata (node, depth, phase)."""

    u: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A point handed out for evaluation. `u` is the canonical unit point of `params` (see Space.snap)."""

    id: int
    u: np.ndarray
    params: dict[str, Any]
    meta: dict[str, Any]


@dataclass
class Trial:
    """A candidate and what became of it. `score` is the value in maximize sign (None unless OK, or pruned after
    a report: then the last reported value)."""

    candidate: Candidate
    state: TrialState = TrialState.PENDING
    value: float | None = None
    score: float | None = None
    reason: str = ""


class Optimizer:
    """Base class: owns the ask/tell bookkeeping; subclasses implement `_ask`, `_tell`, `_tell_failure`."""

    name: ClassVar[str] = "base"
    #: Ids start at 1: trial 0 is reserved for an objective's baseline (e.g. the untuned LLM).
    first_id: ClassVar[int] = 1
    #: Replay rebuilds this optimizer whatever the log's order of asks and results. Only then may the scheduler
    #: ask ahead (while every worker is busy): the log records such an ask at its dispatch, after results that
    #: arrived in between. Each ask's `told` puts it back in place (pbo.log.resume), which serves an optimizer
    #: whose asks depend only on the events before them; every built-in one declares it (SOO and BaMSOO since
    #: their decisions are recorded too), one written elsewhere must opt in.
    order_free_replay: ClassVar[bool] = False
    #: The optimizer keeps a partition tree: `tree_table()` returns it, and the log records it after each tell.
    has_tree: ClassVar[bool] = False

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None) -> None:
        self.space = space
        self.seed = int(seed)
        self.minimize = bool(minimize)
        self.budget = budget
        self.rng = np.random.default_rng(self.seed)
        self.trials: dict[int, Trial] = {}
        self._by_key: dict[bytes, int] = {}
        self._events: list[dict[str, Any]] = []
        self._next_id = self.first_id
        self._n_pending = 0
        self._n_told = 0
        #: During `replay`, the recorded ask event being replayed (see `_replay_u`, `_replay_decisions`).
        self._replaying: dict[str, Any] | None = None
        #: Whether replay still recomputes decisions to compare them with the record: until the first divergence.
        self._replay_checks = True
        #: Seconds of compute an ask may take before workers wait for it, or None (no limit): set by the scheduler
        #: from the trials' durations and the number of workers. An optimizer whose asks are costly may ask with
        #: less effort past it (GP-BO does); the rest ignore it.
        self.time_per_ask: float | None = None

    # ---- public protocol -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Spend time the asker has to spare on the next ask: do now what the results told so far decide (a
        model fit) or what it will need (a one-time setup), so that the ask itself is quicker. Called by an asker
        with nothing else to do, once the run began and after new results (`pbo.asker.ThreadAsker`); the ask
        redoes nothing that is still up to date. Default: nothing to prepare."""

    def ask(self) -> Candidate | None:
        proposal = self._ask()
        if self._replaying is not None:
            proposal = self._recorded(proposal)
        if proposal is None:
            return None
        u = self.space.snap(np.asarray(proposal.u, dtype=float))
        known = self.lookup(u)
        if known is not None:
            raise RuntimeError(
                f"{self.name} proposed {self.space.from_unit(u)} again (trial {known.candidate.id}, "
                f"{known.state.value}); an optimizer must check lookup() before proposing")
        # `told`: the results this ask had seen, so a log that records it at dispatch (after results that came
        # in meanwhile) is replayed in the order the optimizer saw (see pbo.log.resume).
        cand = Candidate(self._next_id, u, self.space.from_unit(u), {**proposal.meta, "told": self._n_told})
        self._next_id += 1
        self.trials[cand.id] = Trial(cand)
        self._n_pending += 1
        self._by_key[self._key(u)] = cand.id
        event = {"op": "ask", "id": cand.id, "u": u.tolist(), "told": self._n_told}
        if "decisions" in proposal.meta:
            event["decisions"] = [list(d) for d in proposal.meta["decisions"]]
        self._events.append(event)
        return cand

    def tell(self, candidate_id: int, value: float | None) -> None:
        """Report the objective value of a pending candidate; None or NaN counts as a failure."""
        trial = self._pending_trial(candidate_id)
        if value is None or not math.isfinite(float(value)):
            warnings.warn(f"trial {candidate_id} returned {value!r}: recorded as failed", RuntimeWarning,
                          stacklevel=2)
            self.tell_failure(candidate_id, f"objective returned {value!r}")
            return
        trial.value = float(value)
        trial.score = -trial.value if self.minimize else trial.value
        trial.state = TrialState.OK
        self._n_pending -= 1
        self._n_told += 1
        self._events.append({"op": "tell", "id": candidate_id, "value": trial.value})
        self._tell(trial)

    def tell_failure(self, candidate_id: int, reason: str = "", state: TrialState = TrialState.FAILED) -> None:
        """Report that a pending candidate could not be evaluated (exception, crash or timeout)."""
        state = TrialState(state)
        if not state.is_finished() or state is TrialState.OK:
            raise ValueError(f"tell_failure takes a failed or timeout state, got {state.value}")
        if state is TrialState.PRUNED:
            raise ValueError("a pruned trial is told with tell_pruned (it has a value and a step)")
        trial = self._pending_trial(candidate_id)
        trial.state, trial.reason = state, str(reason)
        self._n_pending -= 1
        self._n_told += 1
        self._events.append({"op": "fail", "id": candidate_id, "state": state.value, "reason": trial.reason})
        self._tell_failure(trial)

    def tell_pruned(self, candidate_id: int, value: float | None, step: float = math.nan) -> None:
        """Report that a pending candidate was stopped early at `step`, its last reported value being `value`.

        That value is a low-fidelity one: it never counts as a success (best(), completed() and the GP data
        leave it out) and the point is not proposed again. By default a pruned trial is treated as a failed
        one; tree methods give its cell the reported value instead (`_tell_pruned`, docs/algorithms.md)."""
        trial = self._pending_trial(candidate_id)
        trial.state, trial.reason = TrialState.PRUNED, f"pruned at step {step:g}"
        if value is not None and math.isfinite(float(value)):
            trial.value = float(value)
            trial.score = -trial.value if self.minimize else trial.value
        self._n_pending -= 1
        self._n_told += 1
        self._events.append({"op": "prune", "id": candidate_id, "value": trial.value, "step": float(step)})
        self._tell_pruned(trial)

    def best(self) -> Trial | None:
        """The best finished trial so far (in the user's sign), or None before the first success."""
        done = self.successes()
        return max(done, key=lambda t: t.score) if done else None

    def recommend(self) -> Trial | None:
        """The finished trial to recommend. On a noisy objective the best raw value is often a lucky draw;
        model-based optimizers override this with the trial whose modelled value is best. Default: best()."""
        return self.best()

    def tree_table(self) -> dict[str, np.ndarray] | None:
        """The partition tree as the log's /tree columns, for optimizers that keep one (`has_tree`: SOO,
        BaMSOO); None for the others."""
        return None

    # ---- views for subclasses and drivers ----------------------------------------------------------------

    def pending(self) -> list[Candidate]:
        return [t.candidate for t in self.trials.values() if t.state is TrialState.PENDING]

    def successes(self) -> list[Trial]:
        """The successful trials, in the order they were asked (the rows of `completed()`)."""
        return [t for t in self.trials.values() if t.state is TrialState.OK]

    def completed(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit points (n, d) and scores (n,) of successful trials, in the order they were asked."""
        done = self.successes()
        u = np.array([t.candidate.u for t in done]).reshape(len(done), self.space.dim)
        return u, np.array([t.score for t in done], dtype=float)

    @property
    def n_pending(self) -> int:
        """How many asked candidates have no result yet."""
        return self._n_pending

    @property
    def n_told(self) -> int:
        """How many asked candidates have a result (success or failure)."""
        return self._n_told

    def lookup(self, u: np.ndarray) -> Trial | None:
        """The trial already asked at the canonical point of `u`, if any (pending or finished)."""
        cid = self._by_key.get(self._key(self.space.snap(np.asarray(u, dtype=float))))
        return None if cid is None else self.trials[cid]

    # ---- save / restore by replay -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able history from which `load_state_dict` rebuilds this optimizer exactly."""
        return {"algorithm": self.name, "seed": self.seed, "minimize": self.minimize,
                "events": [dict(e) for e in self._events]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replay a history on a freshly built optimizer (same space, seed and options); see `replay`."""
        if self._events:
            raise ReplayError("load_state_dict needs a fresh optimizer (this one has already asked)")
        if state.get("algorithm") != self.name:
            raise ReplayError(f"saved state is for {state.get('algorithm')!r}, not {self.name!r}")
        self.replay(state["events"])

    def replay(self, events: list[dict[str, Any]]) -> None:
        """Rebuild the state from recorded asks and results, taking every decision from the record.

        Each ask is replayed through the same hooks, which may take the recorded decisions (`_replay_u`,
        `_replay_decisions`) instead of recomputing them; where a hook recomputes, a result other than the
        recorded one warns once (ReplayDivergence, naming the first divergence) and the record wins, so a run
        moved to another machine (another BLAS: a GP differing in the last bits) continues from the state it
        had. ReplayError is left for histories that cannot be replayed at all.
        """
        for event in events:
            op = event["op"]
            if op == "ask":
                if event["id"] != self._next_id:
                    raise ReplayError(f"ask {event['id']} is out of sequence (the next ask is {self._next_id})")
                self._replaying = event
                try:
                    self.ask()
                finally:
                    self._replaying = None
            elif op == "tell":
                self.tell(event["id"], event["value"])
            elif op == "fail":
                self.tell_failure(event["id"], event.get("reason", ""), TrialState(event.get("state", "failed")))
            elif op == "prune":
                self.tell_pruned(event["id"], event.get("value"), event.get("step", math.nan))
            else:
                raise ReplayError(f"unknown event {op!r} in saved state")

    @property
    def _replay_u(self) -> np.ndarray | None:
        """During `replay`, the recorded unit point of the ask being replayed: hooks whose proposals are
        expensive (acquisition optimization) return it instead of recomputing."""
        return None if self._replaying is None else np.asarray(self._replaying["u"], dtype=float)

    @property
    def _replay_decisions(self) -> list[list[Any]] | None:
        """During `replay`, the decisions recorded with the ask being replayed (tree methods), else None."""
        return None if self._replaying is None else self._replaying.get("decisions")

    def _diverged(self, what: str) -> None:
        """Warn about the first decision of a replay that differs from the record, then stop comparing."""
        if self._replay_checks:
            self._replay_checks = False
            warnings.warn(f"{self.name}: replay diverged from the record at {what}; continuing from the record",
                          ReplayDivergence, stacklevel=4)

    def _recorded(self, proposal: Proposal | None) -> Proposal:
        """The proposal of the ask being replayed: the hook's when it is the recorded point, else `_adopt`'s."""
        event = self._replaying
        recorded = self.space.snap(np.asarray(event["u"], dtype=float))
        if proposal is not None and np.allclose(self.space.snap(np.asarray(proposal.u, dtype=float)), recorded,
                                                atol=1e-9):
            return proposal
        known = self.lookup(recorded)
        if known is not None:
            raise ReplayError(f"ask {event['id']} records the point of trial {known.candidate.id} again")
        got = None if proposal is None else np.asarray(proposal.u, dtype=float).tolist()
        return self._adopt(proposal, recorded, f"trial {event['id']} (recorded {recorded.tolist()}, recomputed {got})")

    def _adopt(self, proposal: Proposal | None, recorded: np.ndarray, divergence: str) -> Proposal:
        """The replayed hook proposed another point than the record: warn and take the recorded one. Optimizers
        whose state depends on more than the point (a tree node) override this."""
        self._diverged(divergence)
        return Proposal(recorded, {"phase": "replay"})

    # ---- hooks --------------------------------------------------------------------------------------------

    def _ask(self) -> Proposal | None:
        raise NotImplementedError

    def _tell(self, trial: Trial) -> None:
        """A pending trial finished with `trial.score` (maximize sign)."""

    def _tell_failure(self, trial: Trial) -> None:
        """A pending trial failed or timed out; default: it simply stays out of the data."""

    def _tell_pruned(self, trial: Trial) -> None:
        """A pending trial was stopped early (`trial.score`: its last report, None if it never reported);
        default: as a failure, out of the data."""
        self._tell_failure(trial)

    # ---- internals ----------------------------------------------------------------------------------------

    @staticmethod
    def _key(u: np.ndarray) -> bytes:
        return np.round(np.asarray(u, dtype=float), 12).tobytes()

    def _pending_trial(self, candidate_id: int) -> Trial:
        trial = self.trials.get(candidate_id)
        if trial is None:
            raise KeyError(f"{self.name}: no candidate {candidate_id} was asked")
        if trial.state.is_finished():
            raise ValueError(f"{self.name}: candidate {candidate_id} is already {trial.state.value}; "
                             "finished trials are immutable")
        return trial
