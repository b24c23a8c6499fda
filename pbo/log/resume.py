"""Resume by replay: rebuild the optimizer's ask/tell history from a log and find what was in flight.

The log records each dispatch in `/asks` and each result in `/trials`, both stamped with one running `seq`,
and each ask notes how many results the optimizer had seen (`told`), so they give the events in the order the
optimizer saw them, even for asks made ahead and recorded later. Replaying those events, with the decisions
the tree methods recorded for each ask (/decisions), into a fresh optimizer built from the run's first settings
restores its state, taking every decision from the record (see Optimizer.replay); the candidates asked but
never finished stay pending in it and are issued again first. Finished evaluations are never re-run.

A trial pruned before the kill is replayed as pruned (event `prune`, with its last reported value and step);
the pruner's state is rebuilt by replaying every logged report in order (`ResumeState.reports`).

Example:
    state = load_resume("runs/x.h5")
    settings = resume_config(state, given={"budget": 80})   # refuses a changed algorithm, space, ...
    first = state.config                                    # what the optimizer was built from
    opt = make_optimizer(first["algorithm"], state.run.space, seed=first["seed"], budget=first["budget"])
    redo = state.restore(opt)                               # issue these again, then ask for more
    pruner.replay(state.reports())                          # the pruner as it was at the kill
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pbo.log.reader import RunData, read
from pbo.log.storage import LogError
from pbo.optimizers.base import Candidate, Optimizer, ReplayDivergence, ReplayError
from pbo.space import Space, SpaceError

#: Settings a resumed run must keep: changing any of them would replay into a different optimizer or objective.
FIXED_KEYS = ("algorithm", "objective", "objective_options", "space", "seed", "minimize", "optimizer")


@dataclass
class ResumeState:
    """What a killed run left: its config, the replayable events and the trials in flight at the kill."""

    path: Path
    run: RunData
    events: list[dict[str, Any]]
    #: Ids asked but never finished, in the order they were asked.
    in_flight: list[int]

    @property
    def config(self) -> dict[str, Any]:
        """The settings the run started with (what the optimizer must be built from for replay)."""
        return self.run.config

    @property
    def settings(self) -> dict[str, Any]:
        """The settings of the latest session: the first ones updated by what each resume changed."""
        settings = dict(self.config)
        for resume in self.run.attrs.get("resumes", []):
            settings.update(resume.get("settings", {}))
        return settings

    @property
    def n_asked(self) -> int:
        """Evaluations the budget already counts: finished ones plus those in flight (issued again, once)."""
        return sum(event["op"] == "ask" for event in self.events)

    @property
    def has_baseline(self) -> bool:
        return bool(np.any(self.run.trials["trial_id"] == 0))

    @property
    def start_time(self) -> float:
        """Unix time the run first started: trial times continue on this clock after resume."""
        return float(self.run.attrs["start_time"])

    def restore(self, optimizer: Optimizer) -> list[Candidate]:
        """Replay the history into a fresh optimizer; returns the candidates to issue again, in ask order.
        A replay that recomputed another decision than the recorded one warns (ReplayDivergence) and goes on
        from the record; a history that cannot be replayed raises LogError."""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN results were warned about the first time
                warnings.simplefilter("always", ReplayDivergence)
                optimizer.replay(self.events)
        except (ReplayError, KeyError, ValueError) as exc:
            raise LogError(f"cannot resume {self.path}: {exc}") from None
        for warning in caught:
            warnings.warn(f"resuming {self.path}: {warning.message}", ReplayDivergence, stacklevel=2)
        pending = {cand.id: cand for cand in optimizer.pending()}
        return [pending[cid] for cid in self.in_flight]

    def reports(self) -> list[tuple[int, float, float]]:
        """(trial id, step, value) of every logged report, in the order the pruner judged them: replayed into a
        fresh pruner, they give it its state at the kill. A trial in flight then runs again from its start; the
        rungs its first attempt reached are not judged again (ASHA), the decisions made stand."""
        table = self.run.reports
        rows = np.argsort(table["seq"], kind="stable")
        return [(int(table["trial_id"][r]), float(table["step"][r]), float(table["value"][r])) for r in rows]


def load_resume(path: str | Path) -> ResumeState:
    """Read a log for resume; a foreign or damaged file raises LogError with one line."""
    run = read(path)
    asks, trials = run.asks, run.trials
    decisions = _decisions_by_seq(run.decisions)
    events: list[tuple[int, dict[str, Any]]] = []
    asked: set[int] = set()
    for row in np.argsort(asks["seq"], kind="stable"):
        cid, u, seq = int(asks["trial_id"][row]), asks["u"][row], int(asks["seq"][row])
        if cid in asked or not np.all(np.isfinite(u)):
            continue  # a re-dispatch after an earlier resume, or not an optimizer candidate
        asked.add(cid)
        event: dict[str, Any] = {"op": "ask", "id": cid, "u": u.tolist()}
        if np.isfinite(asks["told"][row]):
            event["told"] = int(asks["told"][row])
        if seq in decisions:
            event["decisions"] = decisions[seq]
        events.append((seq, event))
    finished: set[int] = set()
    for row in range(run.n_trials):
        cid = int(trials["trial_id"][row])
        if cid not in asked or cid in finished:
            continue  # the baseline (trial 0) is never told to the optimizer
        finished.add(cid)
        status = str(trials["status"][row])
        if status == "ok":
            event = {"op": "tell", "id": cid, "value": float(trials["value"][row])}
        elif status == "pruned":
            event = {"op": "prune", "id": cid, "value": float(trials["value"][row]), "step": float(trials["step"][row])}
        else:
            event = {"op": "fail", "id": cid, "state": status, "reason": str(trials["error"][row])}
        events.append((int(trials["seq"][row]), event))
    events.sort(key=lambda item: item[0])
    ordered = _as_seen([event for _, event in events])
    in_flight = [e["id"] for e in ordered if e["op"] == "ask" and e["id"] not in finished]
    return ResumeState(Path(path), run, ordered, in_flight)


def _decisions_by_seq(table: dict[str, np.ndarray]) -> dict[int, list[list[Any]]]:
    """The /decisions rows grouped by the seq of their /asks row, as [kind, node, side, value] (value None
    where NaN), in the order they were taken."""
    grouped: dict[int, list[list[Any]]] = {}
    for row in range(len(table["trial_id"])):
        value = float(table["value"][row])
        grouped.setdefault(int(table["seq"][row]), []).append(
            [str(table["kind"][row]), int(table["node"][row]), int(table["side"][row]),
             None if np.isnan(value) else value])
    return grouped


def _as_seen(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events in the order the optimizer saw them: each ask right after the `told` results it had seen
    when it was asked, though the log records it at its dispatch, which may come after further results (asks
    ahead). An ask without `told` (logs before format 4) stays where its dispatch put it."""
    keyed = []
    results = 0
    for position, event in enumerate(events):
        if event["op"] == "ask":
            keyed.append(((event.get("told", results), 1, position), event))
        else:
            results += 1
            keyed.append(((results, 0, position), event))
    keyed.sort(key=lambda item: item[0])
    return [event for _, event in keyed]


def resume_config(state: ResumeState, given: Mapping[str, Any]) -> dict[str, Any]:
    """The latest settings updated with those given again; refuses changes to FIXED_KEYS in one line."""
    stored = state.settings
    stored_space = state.run.attrs["space"]
    changed = []
    for key in FIXED_KEYS:
        if key not in given or given[key] is None:
            continue
        old = stored_space if key == "space" else stored.get(key)
        if _canonical(key, given[key]) != _canonical(key, old):
            changed.append(key if isinstance(old, (dict, list)) or isinstance(given[key], (dict, list))
                           else f"{key} (stored {old!r}, given {given[key]!r})")
    if changed:
        raise LogError(f"cannot resume {state.path}: the new settings change {', '.join(changed)}; "
                       "start a new run (--out) to change them")
    return {**stored, **{key: value for key, value in given.items() if value is not None}}


def _canonical(key: str, value: Any) -> str:
    if key == "space" and value is not None:
        try:
            value = Space.from_dict(value).to_dict()
        except SpaceError:
            pass
    if key in ("objective_options", "optimizer") and not value:
        value = {}
    return json.dumps(value, sort_keys=key != "space", default=str)  # the space's order is its column order
