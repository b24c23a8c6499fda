"""Pruners: decide, from a running trial's intermediate report, whether it should stop early. By name in
`PRUNERS` (the `pruner` setting), with their options from `pruner_options`.

A pruner sees plain data only (trial id, step, value in the user's sign) and knows nothing of workers, MPI
or the log: the scheduler calls `should_stop` for every report as it arrives and answers the trial, so a
decision never waits for other trials (asynchronous: a rung is judged with whatever has reached it). Every
call also records the report, so replaying the logged reports in order rebuilds the state (`replay`).

Values are compared in maximize sign (`minimize=True` negates them); a NaN value ranks below everything.

Example:
    >>> asha = make_pruner("asha", minimize=True, eta=2, min_resource=1)
    >>> asha.should_stop(1, 1, 0.5), asha.should_stop(2, 1, 0.9), asha.should_stop(3, 1, 0.1)
    (False, True, False)
"""

from __future__ import annotations

import inspect
import math
import statistics
from collections import defaultdict
from typing import Any, ClassVar, Iterable


class Pruner:
    """Base class: `should_stop(trial_id, step, value)` records a report and says whether to stop its trial."""

    name: ClassVar[str] = "none"

    def __init__(self, *, minimize: bool = False) -> None:
        self.minimize = bool(minimize)

    def should_stop(self, trial_id: int, step: float, value: float) -> bool:
        """Record the report and decide: True stops the trial."""
        return False

    def replay(self, reports: Iterable[tuple[int, float, float]]) -> None:
        """Feed logged reports (trial id, step, value), in the order they came, ignoring the decisions."""
        for trial_id, step, value in reports:
            self.should_stop(trial_id, step, value)

    def score(self, value: float) -> float:
        """The value in maximize sign; NaN ranks below everything."""
        if not math.isfinite(value):
            return -math.inf if math.isnan(value) else (-value if self.minimize else value)
        return -value if self.minimize else value


class MedianPruner(Pruner):
    """Stop a trial whose value at a step is worse than the median of the other trials' values at that same
    step, once at least `warmup_trials` other trials reported at that step, and not before `warmup_steps`.
    Steps are matched exactly (objectives that report on a common schedule)."""

    name = "median"

    def __init__(self, *, minimize: bool = False, warmup_trials: int = 4, warmup_steps: float = 0) -> None:
        super().__init__(minimize=minimize)
        if isinstance(warmup_trials, bool) or not isinstance(warmup_trials, int) or warmup_trials < 1:
            raise ValueError(f"median pruner: warmup_trials must be an integer >= 1, got {warmup_trials!r}")
        self.warmup_trials, self.warmup_steps = warmup_trials, float(warmup_steps)
        self.at_step: dict[float, dict[int, float]] = defaultdict(dict)

    def should_stop(self, trial_id: int, step: float, value: float) -> bool:
        scores = self.at_step[float(step)]
        scores[trial_id] = score = self.score(value)
        others = [s for t, s in scores.items() if t != trial_id]
        if step < self.warmup_steps or len(others) < self.warmup_trials:
            return False
        return score < statistics.median(others)


class ASHA(Pruner):
    """Asynchronous successive halving (Li et al., MLSys 2020; Optuna's SuccessiveHalvingPruner). Rung k sits
    at step `min_resource * eta**k`. The first report at or past a rung records the trial's value there, and the
    trial goes on only if that value is in the top 1/eta of the values recorded at that rung so far (while the
    rung holds fewer than eta values, only if it is the best of them): no trial waits for a rung to fill."""

    name = "asha"

    def __init__(self, *, minimize: bool = False, eta: float = 3, min_resource: float = 1) -> None:
        super().__init__(minimize=minimize)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 2:
            raise ValueError(f"asha pruner: eta (the reduction factor) must be a number >= 2, got {eta!r}")
        if isinstance(min_resource, bool) or not isinstance(min_resource, (int, float)) or not min_resource > 0:
            raise ValueError(f"asha pruner: min_resource must be a number > 0, got {min_resource!r}")
        self.eta, self.min_resource = float(eta), float(min_resource)
        self.rungs: list[dict[int, float]] = []  # rung k -> trial id -> score recorded there
        self.reached: dict[int, int] = defaultdict(int)  # trial id -> rungs it has been judged at

    def rung_step(self, k: int) -> float:
        return self.min_resource * self.eta ** k

    def should_stop(self, trial_id: int, step: float, value: float) -> bool:
        score = self.score(value)
        while step >= self.rung_step(self.reached[trial_id]):
            k = self.reached[trial_id]
            self.reached[trial_id] += 1
            if k == len(self.rungs):
                self.rungs.append({})
            self.rungs[k][trial_id] = score
            if not self._promotable(score, list(self.rungs[k].values())):
                return True
        return False

    def _promotable(self, score: float, competing: list[float]) -> bool:
        """In the top 1/eta of `competing` (which holds `score`); the best one while fewer than eta compete."""
        top = max(int(len(competing) // self.eta), 1)
        return score >= sorted(competing, reverse=True)[top - 1]


#: Pruners by name (the `pruner` setting).
PRUNERS: dict[str, type[Pruner]] = {"none": Pruner, "median": MedianPruner, "asha": ASHA}


def make_pruner(name: str, *, minimize: bool = False, **options: Any) -> Pruner:
    """The pruner called `name` with its options; an unknown name or option raises ValueError in one line."""
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r} (choose from {', '.join(PRUNERS)})")
    cls = PRUNERS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "minimize"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"pruner {name!r} has no option(s) {unknown} (it takes {sorted(accepted) or 'none'})")
    return cls(minimize=minimize, **options)
