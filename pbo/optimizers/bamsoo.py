"""BaMSOO (Wang, Shakibi, Jin, de Freitas, AISTATS 2014): SOO that skips evaluations a GP deems useless.

The tree, sweeps and parallel rule are SOO's. Before a new child is evaluated, a GP fitted on the real
evaluations only gives its mean and sd at the child's centre. With B_N = sqrt(2 log(pi^2 N^2 / (6 eta))),
N the number of children created so far (this child's ordinal, so the same child gets the same bound when
a run is replayed): if mean + B_N sd >= f+ (the best real value) the child is evaluated; otherwise it gets
mean - B_N sd, is marked approximated, costs no evaluation and stays out of the GP. The decision is made
when the child's turn comes, so with one worker each child sees its elder siblings' values, as in the paper.

Fewer than `min_points` real values, or a GP that cannot be fitted: the child is evaluated (SOO's step).
So is a child that comes after MAX_APPROXIMATIONS approximations in a row (a GP sure that nothing beats f+
would otherwise grow the tree forever without evaluating anything).
Parallel asks: a child sent for evaluation competes in sweeps, while pending, with its GP mean.

Example:
    >>> from pbo.space import Space
    >>> opt = BaMSOO(Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}}))
    >>> for _ in range(15):
    ...     cand = opt.ask()
    ...     opt.tell(cand.id, -(cand.params["x"] - 0.3) ** 2)
    >>> abs(opt.best().candidate.params["x"] - 0.3) < 0.05
    True
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np

from pbo.optimizers.base import Trial
from pbo.optimizers.soo import SOO
from pbo.space import Space
from pbo.surrogate import GPSurrogate, ModelFittingError
from pbo.tree import APPROXIMATED, Node

MAX_APPROXIMATIONS = 1000


class Surrogate(Protocol):
    """What BaMSOO needs from a model; both methods may raise ModelFittingError."""

    def update(self, u: np.ndarray, y: np.ndarray) -> None: ...

    def predict(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def confidence_bound(n: int, eta: float) -> float:
    """B_N = sqrt(2 log(pi^2 N^2 / (6 eta))): the width, in posterior sds, of BaMSOO's confidence interval."""
    return math.sqrt(2.0 * math.log(math.pi ** 2 * n ** 2 / (6.0 * eta)))


class BaMSOO(SOO):
    """Options: SOO's (`k`, `h_max`, `failure`), `eta` in (0, 1) (smaller: wider bounds, more evaluations),
    `min_points` (real values before the GP is consulted), `refit_growth` and `kernel` (see GPSurrogate),
    `surrogate` (any object with update/predict, e.g. a stub in tests; default a GPSurrogate)."""

    name = "bamsoo"

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 k: int = 3, h_max: Callable[[int], float] | float | None = None, failure: str = "worst",
                 eta: float = 0.05, min_points: int = 3, refit_growth: float = 0.2, kernel: str = "matern",
                 surrogate: Surrogate | None = None) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget, k=k, h_max=h_max, failure=failure)
        if not 0 < eta < 1:
            raise ValueError(f"{self.name}: eta must lie in (0, 1), got {eta!r}")
        if min_points < 2:
            raise ValueError(f"{self.name}: min_points must be >= 2, got {min_points!r}")
        self.eta = float(eta)
        self.min_points = int(min_points)
        self.surrogate = surrogate if surrogate is not None else GPSurrogate(
            space.dim, min_points=self.min_points, refit_growth=refit_growth, kernel=kernel, seed=seed)
        self.n_approximated = 0
        self._streak = 0  # approximations since the last child sent for evaluation
        self._f_plus = -math.inf
        self._real_u: list[np.ndarray] = []  # real values in the order they were told, so that the
        self._real_y: list[float] = []  # surrogate sees its data only grow and extends its factor cheaply
        self._stale = True  # the surrogate has not seen the latest real values
        self._gp_ok = False
        self._estimates: dict[int, float] = {}  # pending node -> GP mean when it was sent for evaluation

    def _tell(self, trial: Trial) -> None:
        super()._tell(trial)
        self._f_plus = max(self._f_plus, trial.score)
        self._real_u.append(trial.candidate.u)
        self._real_y.append(trial.score)
        self._stale = True

    def _should_evaluate(self, node: Node) -> bool:
        lower = None if self._streak >= MAX_APPROXIMATIONS else self._lower_bound_if_hopeless(node)
        if lower is None:
            self._streak = 0
            return True
        self.tree.set_value(node.id, lower, APPROXIMATED)
        self.n_approximated += 1
        self._streak += 1
        return False

    def _lower_bound_if_hopeless(self, node: Node) -> float | None:
        """mean - B_N sd at the node's centre when mean + B_N sd < f+; None when it must be evaluated."""
        if len(self._real_y) < self.min_points or not self._surrogate_ready():
            return None
        try:
            mean, sd = (float(a[0]) for a in self.surrogate.predict(self.space.snap(node.center)[None, :]))
        except ModelFittingError:
            return None
        bound = confidence_bound(node.id, self.eta)
        if mean + bound * sd >= self._f_plus:
            self._estimates[node.id] = mean
            return None
        return mean - bound * sd

    def _placeholder(self, node: Node) -> float:
        estimate = self._estimates.get(node.id)
        return super()._placeholder(node) if estimate is None else estimate

    def _surrogate_ready(self) -> bool:
        """Condition the surrogate on the real values told so far (once per change); False if it failed."""
        if self._stale:
            self._stale = False
            try:
                self.surrogate.update(np.array(self._real_u), np.array(self._real_y))
                self._gp_ok = True
            except ModelFittingError:
                self._gp_ok = False
        return self._gp_ok
