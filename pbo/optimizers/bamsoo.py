"""BaMSOO (Wang, Shakibi, Jin, de Freitas, AISTATS 2014): SOO that skips evaluations a GP deems useless.

The tree, sweeps and parallel rule are SOO's. Before a new child is evaluated, a GP fitted on the real
evaluations only gives its mean and sd at the child's centre. With B_N = sqrt(2 log(pi^2 N^2 / (6 eta))),
N the number of children created so far (this child's ordinal, so the same child gets the same bound when
a run is replayed): if mean + B_N sd >= f+ (the best real value) the child is evaluated; otherwise it gets
the GP mean, is marked approximated, costs no evaluation and stays out of the GP. The decision is made
when the child's turn comes, so with one worker each child sees its elder siblings' values, as in the paper.

Two departures from the paper, both needed on functions with narrow peaks such as Shekel-4D (without them
BaMSOO stopped at a local peak, simple regret 6.5 after 500 evaluations; with them 2e-2):
- Calibrated bounds. The rule is only as safe as the GP's bounds, and hyperparameters fitted by marginal
  likelihood on mostly flat data give a prior sd so small that the best real value lies many sds above the
  prior mean: the model then rules out every unexplored cell, since far from data mean + B_N sd < f+.
  So the model must not have ruled out what was actually observed: each real value y_i must lie within
  B_{N_i} sds (N_i: its node) of the prior mean, and of its leave-one-out prediction from the other real
  values. When one does not, every posterior sd is scaled up by the smallest factor that makes all of them
  do so (for the prior check, the same as raising the kernel's output scale); the means do not change.
- Approximated value. The paper gives a skipped child mean - B_N sd. With B_N at 5-6, that ranks the cell
  below nearly every evaluated cell of its depth, so SOO's sweeps defer it for hundreds of evaluations, and
  on Shekel the cells on the way to the global peak (unremarkable centres, rightly skipped) were never
  expanded. The mean is the value SOO would rank it by had it been evaluated, and what a pending child
  competes with; it is below f+ as well (mean < mean + B_N sd < f+), so f+ stays a real value either way.
  `approximate_with="lcb"` restores the paper's rule.

Fewer than `min_points` real values, or a GP that cannot be fitted: the child is evaluated (SOO's step).
So is a child that comes after MAX_APPROXIMATIONS approximations in a row (MAX_APPROXIMATIONS_PENDING while
results are pending): a GP sure that nothing beats f+ would otherwise grow the tree forever without
evaluating anything.
Parallel asks (`parallel="ucb"`, the default). The sweep takes only the steps the sequential algorithm would:
at a depth where a leaf is still being evaluated it waits for that value (with one worker it never does).
Meanwhile idle workers get the leaf whose split would add the centre with the largest GP upper bound, mean +
`fill_beta` sd, the GP conditioned on the points being evaluated as if each had scored its predicted mean
(the kriging believer, as GP-BO does: the sd shrinks near them, so workers spread out); that leaf is split (its
children decided by the rule above) and the sweep stays where it was. A sweep that takes only sequential
steps needs no depth limit: `h_max="auto"` stays unlimited while it does. A centre the rule above would
approximate is not worth a worker: then, and while the GP has fewer than `min_points` values, asks fall back
on SOO's parallel rule. `parallel="sweep"` is SOO's rule throughout (see soo.py), with the GP mean as a
pending child's placeholder. On BBOB with 8 workers (5-D, 2 instances) the upper-bound rule ended ahead on
33 of 48 runs at 20 x D evaluations and behind on 3 (2-D: 11 and 11); `fill_beta` 1 against 2 (3 instances)
ahead on 24 and 20 of 72 runs, behind on 17 and 8 (5-D, 2-D), the same at 64 workers: docs/benchmarks.md.
With `pending="believer"` the evaluate/approximate rule also conditions the GP on the points being evaluated.

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
from pbo.optimizers.soo import APPROX, SOO
from pbo.space import Space
from pbo.surrogate import WARPS, GPSurrogate, ModelFittingError, unwarp, warm_up, window
from pbo.tree import APPROXIMATED, FAILED, PENDING, Node, widest

MAX_APPROXIMATIONS = 1000
#: The same limit while results are pending: the GP, conditioned on the pending points at their believed mean,
#: may rule out every cell near the data, and with 64 workers thousands of approximations per ask (seconds
#: each) bought nothing the next evaluation would not.
MAX_APPROXIMATIONS_PENDING = 20
APPROXIMATIONS = ("mean", "lcb")
PENDING_MODES = ("ignore", "believer")
PARALLEL_RULES = ("sweep", "ucb")
SPLIT_RULES = ("widest", "gp")


class Surrogate(Protocol):
    """What BaMSOO needs from a model; both methods may raise ModelFittingError."""

    def update(self, u: np.ndarray, y: np.ndarray) -> None: ...

    def predict(self, u: np.ndarray, pending: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def prior(self) -> tuple[float, float]: ...

    def loo(self) -> tuple[np.ndarray, np.ndarray]: ...


def confidence_bound(n: int, eta: float) -> float:
    """B_N = sqrt(2 log(pi^2 N^2 / (6 eta))): the width, in posterior sds, of BaMSOO's confidence interval; N is
    at least 1 (the root, node 0, is judged when a design came first)."""
    n = max(n, 1)
    return math.sqrt(2.0 * math.log(math.pi ** 2 * n ** 2 / (6.0 * eta)))


class BaMSOO(SOO):
    """Options: SOO's (`k`, `h_max`, `failure`, `expand_pending`, `tie_break`, `design`), `eta`
    in (0, 1) (smaller: wider bounds, more evaluations), `min_points` (real values before the GP is consulted),
    `refit_growth` and `kernel` (see GPSurrogate), `approximate_with` ("mean" or the paper's "lcb", see above),
    `pending` ("ignore" or "believer", see above), `parallel` ("ucb" or "sweep") and `fill_beta` (see above),
    `surrogate` (any object with update/predict/prior/loo, e.g. a stub in tests; default a GPSurrogate),
    `gp_points` (the GP keeps at most this many real values: `surrogate.window`, the best half and the latest; and
    is conditioned on at most this many pending points, the latest asked) and
    `fill_leaves` (the `ucb` rule considers at most this many leaves: the best of each depth, then the best
    valued), the two caps that keep asks cheap at thousands of points and leaves; `warp` (the transform of
    the scores the GP is fitted on, a name of pbo.surrogate.WARPS; the tree keeps raw scores, and a GP mean
    given to a node is mapped back onto their scale), `split` ("widest", SOO's side, or "gp", see
    `_choose_side`) and `noise_margin` (in sds of the GP's fitted noise: how much better than the leaf the
    sweep split at a shallower depth a leaf must be for the sweep to split it too; 0 takes values as exact)."""

    name = "bamsoo"

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 k: int = 3, h_max: Callable[[int], float] | float | str = "auto", failure: str = "worst",
                 expand_pending: str = "idle", tie_break: str = "variation", design: int | str = 0,
                 eta: float = 0.05, min_points: int = 3, refit_growth: float = 0.2, kernel: str = "matern",
                 approximate_with: str = "mean", pending: str = "believer", parallel: str = "ucb",
                 fill_beta: float = 1.0, gp_points: int = 512,
                 fill_leaves: int = 64, warp: str = "none", split: str = "widest", noise_margin: float = 0.0,
                 surrogate: Surrogate | None = None) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget, k=k, h_max=h_max, failure=failure,
                         expand_pending=expand_pending, tie_break=tie_break, design=design)
        if not 0 < eta < 1:
            raise ValueError(f"{self.name}: eta must lie in (0, 1), got {eta!r}")
        if min_points < 2:
            raise ValueError(f"{self.name}: min_points must be >= 2, got {min_points!r}")
        if approximate_with not in APPROXIMATIONS:
            raise ValueError(f"{self.name}: approximate_with must be one of {', '.join(APPROXIMATIONS)}, "
                             f"got {approximate_with!r}")
        if pending not in PENDING_MODES:
            raise ValueError(f"{self.name}: pending must be one of {', '.join(PENDING_MODES)}, got {pending!r}")
        if parallel not in PARALLEL_RULES:
            raise ValueError(f"{self.name}: parallel must be one of {', '.join(PARALLEL_RULES)}, got {parallel!r}")
        if not isinstance(gp_points, int) or gp_points < min_points:
            raise ValueError(f"{self.name}: gp_points must be an integer >= min_points ({min_points}), "
                             f"got {gp_points!r}")
        if not isinstance(fill_leaves, int) or fill_leaves < 1:
            raise ValueError(f"{self.name}: fill_leaves must be an integer >= 1, got {fill_leaves!r}")
        if split not in SPLIT_RULES:
            raise ValueError(f"{self.name}: split must be one of {', '.join(SPLIT_RULES)}, got {split!r}")
        if not noise_margin >= 0:
            raise ValueError(f"{self.name}: noise_margin must be >= 0, got {noise_margin!r}")
        if warp not in WARPS:
            raise ValueError(f"{self.name}: warp must be one of {', '.join(WARPS)}, got {warp!r}")
        self.gp_points, self.fill_leaves = gp_points, fill_leaves
        self.warp, self.split, self.noise_margin = warp, split, float(noise_margin)
        self.approximate_with = approximate_with
        self.parallel = parallel
        self.fill_beta = float(fill_beta)
        self.pending_mode = pending
        self.eta = float(eta)
        self.min_points = int(min_points)
        self.surrogate = surrogate if surrogate is not None else GPSurrogate(
            space.dim, min_points=self.min_points, refit_growth=refit_growth, kernel=kernel, seed=seed)
        self.n_approximated = 0
        self._streak = 0  # approximations since the last child sent for evaluation
        self._f_plus = -math.inf
        self._real_u: list[np.ndarray] = []  # real values in the order they were told, so that the
        self._real_y: list[float] = []  # surrogate sees its data only grow and extends its factor cheaply
        self._real_bound: list[float] = []  # B_N of each real value's node
        self._stale = True  # the surrogate has not seen the latest real values
        self._gp_ok = False
        self.sd_scale = 1.0  # factor on the surrogate's sds that makes its bounds cover the real values
        self._estimates: dict[int, float] = {}  # pending node -> GP mean when it was sent for evaluation
        self._kept = np.arange(0)  # the real values the surrogate holds (indices, see gp_points)
        self._scores = (np.zeros(0), np.zeros(0))  # those values, raw and as the surrogate holds them (`warp`)

    def _tell(self, trial: Trial) -> None:
        super()._tell(trial)
        self._f_plus = max(self._f_plus, trial.score)
        self._real_u.append(trial.candidate.u)
        self._real_y.append(trial.score)
        # B_N of the value's node; a design point's ordinal is its trial id
        self._real_bound.append(confidence_bound(trial.candidate.meta.get("node", trial.candidate.id), self.eta))
        self._stale = True

    def prepare(self) -> None:
        """Pay torch's one-time setup before the first fit (`surrogate.warm_up`), and nothing more: replay
        recomputes each decision to check it against the log, and a fit made between results, at a time no
        log records, would make that check fail."""
        if isinstance(self.surrogate, GPSurrogate):
            warm_up()

    def recommend(self) -> Trial | None:
        """The successful trial with the best GP mean at its point (the raw best without a GP): robust to one
        lucky draw of a noisy objective, the same as best() on a deterministic one."""
        u, _ = self.completed()
        if not self._gp_ready():
            return self.best()
        try:
            mean, _ = self.surrogate.predict(u)
        except ModelFittingError:
            return self.best()
        return self.successes()[int(np.argmax(mean))]

    def _should_evaluate(self, node: Node) -> bool:
        evaluate, value = self._judge(node)
        self._decide(node, evaluate, value)
        return evaluate

    def _judge(self, node: Node) -> tuple[bool, float | None]:
        """The rule for a new child: (True, its GP mean, None without a GP) to evaluate it, or (False, the value
        to give it) when mean + B_N sd < f+ at its centre."""
        limit = MAX_APPROXIMATIONS_PENDING if self.n_pending else MAX_APPROXIMATIONS
        if self._streak >= limit or not self._gp_ready():
            return True, None
        pending = self._believed() if self.pending_mode == "believer" and self.n_pending else None
        try:
            mean, sd = (float(a[0]) for a in self.surrogate.predict(self.space.snap(node.center)[None, :],
                                                                      pending=pending))
        except ModelFittingError:
            return True, None
        sd *= self.sd_scale
        if self._may_beat_f_plus(mean, sd, node.id):
            return True, self._raw(mean)
        if self.approximate_with == "lcb":
            mean -= confidence_bound(node.id, self.eta) * sd
        return False, self._raw(mean)

    def _decide(self, node: Node, evaluate: bool, value: float | None) -> None:
        """Apply a decision on a new child: send it for evaluation (remembering its GP mean, which it competes
        with while pending), or mark it approximated with `value`."""
        if evaluate:
            self._streak = 0
            if value is not None:
                self._estimates[node.id] = value
            return
        self.tree.set_value(node.id, value, APPROXIMATED)
        self.n_approximated += 1
        self._streak += 1
        self._decisions.append([APPROX, node.id, -1, float(value)])

    def _take_recorded(self, node: Node, evaluate: bool, value: float | None) -> None:
        """Replay: compare the rule's decision with the recorded one (a warning at the first that differs, see
        Optimizer.replay), then take the recorded one."""
        if self._replay_checks:
            own_evaluate, own_value = self._judge(node)
            same = own_evaluate == evaluate and (own_value is None) == (value is None) and (
                value is None or math.isclose(own_value, value, rel_tol=1e-9, abs_tol=1e-12))
            if not same:
                self._diverged(f"trial {self._replaying['id']}: node {node.id} {_decision(evaluate, value)} recorded, "
                               f"{_decision(own_evaluate, own_value)} recomputed")
        self._decide(node, evaluate, value)

    def _estimate(self, node: Node) -> float | None:
        return self._estimates.get(node.id)

    def _side_scores(self) -> np.ndarray:
        """With a fitted GP, how fast it says the function varies along each side: 1 / its lengthscale."""
        if self._gp_ready() and hasattr(self.surrogate, "lengthscales"):
            try:
                return 1.0 / self.surrogate.lengthscales()
            except ModelFittingError:
                pass
        return super()._side_scores()

    def _choose_side(self, node: Node, sides: list[int]) -> int:
        """`split="gp"`: the side of largest width / GP lengthscale, the one along which the model expects the
        function to change most across the cell (ties: `tie_break`); SOO's widest side without a GP."""
        if self.split == "gp" and self._gp_ready() and hasattr(self.surrogate, "lengthscales"):
            try:
                return self._break_tie(widest(node, sides, 1.0 / self.surrogate.lengthscales()))
            except ModelFittingError:
                pass
        return super()._choose_side(node, sides)

    def _noise_margin(self) -> float:
        if self.noise_margin == 0 or not self._gp_ready() or not hasattr(self.surrogate, "noise_sd"):
            return 0.0
        try:
            return self.noise_margin * self.surrogate.noise_sd()
        except ModelFittingError:
            return 0.0

    def _sweeps_in_order(self) -> bool:
        return self.parallel == "ucb" and self._gp_ready()

    def _waits_at(self, depth: int) -> bool:
        return self.parallel == "ucb" and self.n_pending > 0 and any(
            node.state == PENDING for node in self.tree.leaves(depth))

    def _fill_leaf(self) -> Node | None:
        """The leaf whose split adds the centre of largest GP upper bound (mean + fill_beta sd, the GP
        conditioned on the pending points at their believed mean); None without a GP or when no centre's
        upper bound reaches f+."""
        if not self._gp_ready():
            return None
        leaves, centers = [], []
        for node in self._fill_candidates():
            for center in self.tree.new_centers(node, self.k):
                if self.lookup(center) is None:
                    leaves.append(node)
                    centers.append(center)
        if not centers:
            return None
        try:
            mean, sd = self.surrogate.predict(np.array([self.space.snap(c) for c in centers]), pending=self._believed())
        except ModelFittingError:
            return None
        sd = sd * self.sd_scale
        best = int(np.argmax(mean + self.fill_beta * sd))
        if not self._may_beat_f_plus(mean[best], sd[best], len(self.tree.nodes)):
            return None  # BaMSOO's rule would approximate it: nothing worth an evaluation
        return leaves[best]

    def _raw(self, value: float) -> float:
        """A GP mean as a score: the surrogate holds the scores warped (`warp`), the tree holds them raw."""
        if self.warp == "none":
            return value
        return float(unwarp(np.array([value]), *self._scores)[0])

    def _may_beat_f_plus(self, mean: float, sd: float, node_id: int) -> bool:
        """BaMSOO's rule: a centre of node `node_id` is worth evaluating when mean + B_N sd reaches f+."""
        return mean + confidence_bound(node_id, self.eta) * sd >= self._f_plus

    def _believed(self) -> np.ndarray:
        """The pending points the GP is conditioned on: the latest `gp_points` asked (with a thousand workers,
        conditioning on all of them cost more than the rest of an ask)."""
        return np.array([c.u for c in self.pending()][-self.gp_points:]).reshape(-1, self.space.dim)

    def _fill_candidates(self) -> list[Node]:
        """The expandable leaves the `ucb` rule considers, at most `fill_leaves`: the best valued of each depth
        (those SOO's sweep would split), then the best valued of all, in tree order. Predicting at every
        leaf's centres cost more than the rest of an ask at thousands of leaves."""
        by_depth = [[node for node in self.tree.leaves(depth)
                     if node.state not in (PENDING, FAILED) and self.tree.can_expand(node)]
                    for depth in range(self.tree.depth + 1)]
        every = [node for nodes in by_depth for node in nodes]
        if len(every) <= self.fill_leaves:
            return every
        chosen = {max(nodes, key=self._rank).id for nodes in by_depth if nodes}
        chosen = set(sorted(chosen, key=lambda i: -self._rank(self.tree.nodes[i]))[: self.fill_leaves])
        for node in sorted(every, key=self._rank, reverse=True):
            if len(chosen) >= self.fill_leaves:
                break
            chosen.add(node.id)
        return [node for node in every if node.id in chosen]

    def _placeholder(self, node: Node) -> float:
        estimate = self._estimates.get(node.id)
        return super()._placeholder(node) if estimate is None else estimate

    def _gp_ready(self) -> bool:
        """Whether the GP may be consulted: `min_points` real values, conditioned on and fitted."""
        return len(self._real_y) >= self.min_points and self._surrogate_ready()

    def _surrogate_ready(self) -> bool:
        """Condition the surrogate on the real values told so far (once per change); False if it failed."""
        if self._stale:
            self._stale = False
            self._kept = window(np.array(self._real_y), self.gp_points)
            y = np.array(self._real_y)[self._kept]
            self._scores = (y, WARPS[self.warp](y))
            u = np.array(self._real_u)[self._kept]
            try:
                if isinstance(self.surrogate, GPSurrogate):
                    self.surrogate.update(u, self._scores[1], seen=len(self._real_y))
                else:
                    self.surrogate.update(u, self._scores[1])
                self.sd_scale = self._calibration()
                self._gp_ok = True
            except ModelFittingError:
                self._gp_ok = False
        return self._gp_ok

    def _calibration(self) -> float:
        """The smallest factor (>= 1) on the sds that puts every real value y_i inside its node's interval,
        both as the prior predicts it (c +- B_{N_i} s) and as the other real values do (leave-one-out)."""
        bounds, y = np.array(self._real_bound)[self._kept], self._scores[1]
        center, sd = self.surrogate.prior()
        residuals, loo_sd = self.surrogate.loo()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.concatenate([np.abs(y - center) / (sd * bounds),
                                     np.abs(residuals) / (loo_sd * bounds)])
        ratios = ratios[np.isfinite(ratios)]
        return max(1.0, float(ratios.max(initial=1.0)))


def _decision(evaluate: bool, value: float | None) -> str:
    if evaluate:
        return "evaluated" + ("" if value is None else f" (GP mean {value!r})")
    return f"approximated by {value!r}"
