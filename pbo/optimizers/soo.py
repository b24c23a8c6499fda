"""SOO, simultaneous optimistic optimization (Munos 2011), as an ask/tell state machine on the partition tree.

A sweep visits depths 0..min(depth of the tree, h_max(n)), n = expansions so far (by default no limit
while nothing is pending, sqrt(n) while results are pending: see H_MAX_RULES). At each depth it takes the
leaf with the largest value and expands it if that value is >= v_max, the largest value expanded at a
shallower depth in this sweep. Children are evaluated at their centres before the sweep moves on.

Parallel asks. With one worker (ask, tell, ask, ...) nothing is pending when the sweep moves, so this is
exactly the sequential algorithm. When results are pending the sweep does not wait. By default
(`expand_pending="idle"`) it splits the best leaves whose value is known (the next-best of each depth while
the best is being evaluated), and only when none can be split does a pending leaf take part, with a
placeholder value (SOO: its parent's value, the value its middle sibling inherits; root: -inf), and get
expanded speculatively: its side children are then evaluated and its middle child waits for the parent's
result. So an ask has work while some leaf can be split, and a point being evaluated is never proposed
again (a child whose centre is pending waits for that trial instead). `"always"` lets pending leaves
compete in every sweep; `"never"` keeps them out, and ask() then returns None until a result comes back,
which spends evaluations best but leaves workers waiting (figures in docs/benchmarks.md).

Pruned trials (stopped early by a pruner): the cell ranks by the trial's last reported value, state `pruned`
(a failure when it never reported); the point is not evaluated again.

Failures: a failed node ranks below every valued one (`failure="worst"`, so it is expanded only when it is
the best leaf at its depth and nothing shallower was expanded in that sweep, which keeps SOO's guarantee of
eventually refining every cell) or is never expanded (`failure="never"`). Failed points stay failed: a
cell whose centre failed is not evaluated again.

Example:
    >>> from pbo.space import Space
    >>> opt = SOO(Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}}))
    >>> for _ in range(30):
    ...     cand = opt.ask()
    ...     opt.tell(cand.id, -(cand.params["x"] - 0.3) ** 2)
    >>> abs(opt.best().candidate.params["x"] - 0.3) < 0.01
    True
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Callable

import numpy as np
from scipy.stats import qmc

from pbo.optimizers.base import Candidate, Optimizer, Proposal, ReplayError, Trial, TrialState
from pbo.optimizers.lhs import Design
from pbo.space import Space
from pbo.tree import EVALUATED, FAILED, INHERITED, PENDING, PRUNED, REAL, Node, Tree, share_edges, widest

FAILURE_POLICIES = ("worst", "never")
#: When a leaf whose centre is being evaluated may be split (see the module docstring).
EXPAND_PENDING = ("idle", "never", "always")
TIE_BREAKS = ("index", "variation")
#: Upper bound on sweep steps in one ask without finding a point to evaluate (BaMSOO may approximate many
#: children in a row); reaching it returns None rather than spinning.
MAX_STEPS_PER_ASK = 100_000


#: Named depth limits of a sweep, functions of the number of expansions n. On the BBOB suite (24 functions,
#: 2-, 5- and 10-D, 100 x D evaluations) "none" (every sweep may reach the deepest leaf) solved 30-150% more
#: (function, target) pairs than Munos's sqrt(n) with one worker, but with 8 asynchronous workers it fell to
#: little better than random search in 5-D and 10-D, where sqrt(n) kept its one-worker figures. "auto", the
#: default, is "none" while no result is pending (one worker: the sequential algorithm without a limit) and
#: sqrt(n) while the sweep runs ahead of results.
H_MAX_RULES: dict[str, Callable[[int], float]] = {"none": lambda n: math.inf, "sqrt": math.sqrt}
H_MAX_NAMES = ("auto", *H_MAX_RULES)

#: The decisions an ask records, in the order taken, as [kind, node, side, value] (`Candidate.meta["decisions"]`,
#: the log's /decisions table): "split" (the node the sweep split along `side`), "fill" (a node split along
#: `side` for idle workers while the sweep waits, which leaves the sweep where it is: BaMSOO), "approx"
#: (BaMSOO: the child valued by the GP instead of evaluated, given `value`), "ask" (the node whose centre is
#: proposed; `value`: BaMSOO's GP mean there, None without one), "sweep" (where the sweep stood then: `node`
#: its depth, `side` 1 if it had split something, `value` its v_max). Replay applies them instead of
#: recomputing them (see `_replay_ask`).
SPLIT, FILL, APPROX, ASK, SWEEP = "split", "fill", "approx", "ask", "sweep"
#: `design: blind`: the asks made while no result is known but the root's centre take points of a scrambled
#: Halton sequence instead of the tree's blind splits (see SOO's docstring).
BLIND = "blind"
#: Draws of the blind design tried before an ask gives up on it (a small discrete space may be used up).
BLIND_TRIES = 100
DECISION_KINDS = (SPLIT, FILL, APPROX, ASK, SWEEP)


class SOO(Optimizer):
    """Options: `k` children per split (odd keeps the parent's centre), `h_max` (a name of H_MAX_NAMES, a
    number, or a callable of the number of expansions), `failure` policy ("worst" or "never"),
    `expand_pending` (one of EXPAND_PENDING, see above), `tie_break` (which of equally wide sides to split:
    "variation", the default, the side along which the function was seen to vary most per unit width, sides
    not yet seen first (see `_side_scores`; on BBOB it did as well as or better than "index" in every
    dimension and worker count tried), and among sides seen alike the variable whose name comes first, so
    the tree does not depend on the order in which the space lists its variables; "index", the lowest, so
    results depend on that order); `design`, how many points of a Latin hypercube to ask before the tree's
    first centre (0: none, the textbook algorithm), drawn so as not to depend on the order of the variables,
    or "blind": the root's centre first, then, while no result is known (the first asks of several workers),
    points of a scrambled Halton sequence, so that a wide first batch covers the space instead of the tree's
    first levels along a few sides; with one worker nothing is asked blind and this is the textbook algorithm.
    A design point is no cell's centre, but it ranks the leaf that holds it: a leaf ranks by the best real value
    inside its box, its centre's or a design point's (see `_rank`)."""

    name = "soo"
    has_tree = True
    #: Each ask records the decisions it took and the results it had seen, and replay takes them from the
    #: record, so asks made ahead (logged at dispatch, after later results) resume to the same tree.
    order_free_replay = True

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 k: int = 3, h_max: Callable[[int], float] | float | str = "auto", failure: str = "worst",
                 expand_pending: str = "idle", tie_break: str = "variation", design: int | str = 0) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget)
        if design != BLIND and (isinstance(design, bool) or not isinstance(design, int) or design < 0):
            raise ValueError(f"{self.name}: design must be an integer >= 0 or {BLIND!r}, got {design!r}")
        if int(k) != k or k < 2:
            raise ValueError(f"{self.name}: k must be an integer >= 2, got {k!r}")
        if failure not in FAILURE_POLICIES:
            raise ValueError(f"{self.name}: failure must be one of {', '.join(FAILURE_POLICIES)}, got {failure!r}")
        if expand_pending not in EXPAND_PENDING:
            raise ValueError(f"{self.name}: expand_pending must be one of {', '.join(EXPAND_PENDING)}, "
                             f"got {expand_pending!r}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"{self.name}: tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
        valid = (h_max in H_MAX_NAMES if isinstance(h_max, str)
                 else callable(h_max) or (isinstance(h_max, (int, float)) and h_max >= 0))
        if not valid:
            raise ValueError(f"{self.name}: h_max must be one of {', '.join(H_MAX_NAMES)}, a non-negative number "
                             f"or a callable, got {h_max!r}")
        self.k = int(k)
        self.failure = failure
        self.expand_pending = expand_pending
        self._speculate = expand_pending == "always"  # within one ask: whether pending leaves may be split
        self._h_max = H_MAX_RULES.get(h_max, h_max) if isinstance(h_max, str) else h_max
        self.tie_break = tie_break
        self.tree = Tree(space.dim, share_edges(space), self._choose_side)
        self._variation: list[list[float]] = [[] for _ in range(space.dim)]  # per side, see _record_variation
        names = [var.name for var in space.variables]
        alphabetical = {name: rank for rank, name in enumerate(sorted(names))}
        self._name_rank = [alphabetical[name] for name in names]  # the last tie-break, order-free
        self.blind = design == BLIND
        self.design = Design(space.dim, 0 if self.blind else design, self.rng, columns=self._name_rank)
        self._halton = qmc.Halton(d=space.dim, rng=self.rng) if self.blind else None
        self._inside_u, self._inside_y = np.zeros((0, space.dim)), np.zeros(0)  # design points' real values
        self._inside: dict[int, float] = {}  # node id -> best of those inside its box (cleared as they come)
        self._varied: set[int] = set()  # parents whose children's variation is recorded
        self.n_expansions = 0
        self._queue: deque[int] = deque([0])  # nodes created but not yet resolved (evaluated or valued)
        self._waiters: dict[int, list[int]] = {}  # trial id -> nodes whose value that trial gives
        self._depth = 0  # where the current sweep stands
        self._v_max = -math.inf
        self._sweep_expanded = False
        self._decisions: list[list[Any]] = []  # taken since the last proposal (an ask may return None after some)

    # ---- public ------------------------------------------------------------------------------------------

    def h_max(self) -> float:
        rule = self._h_max
        if rule == "auto":
            rule = H_MAX_RULES["sqrt" if self.n_pending and not self._sweeps_in_order() else "none"]
        return float(rule(self.n_expansions)) if callable(rule) else float(rule)

    def tree_table(self) -> dict[str, np.ndarray]:
        """The node table with the /tree/ column names of the HDF5 log (values in the user's sign)."""
        return self.tree.table(-1.0 if self.minimize else 1.0)

    def ask(self) -> Candidate | None:
        cand = super().ask()
        if cand is not None:
            node_id = cand.meta.get("node")
            self._waiters[cand.id] = [] if node_id is None else [node_id]  # a design point: no node (yet)
            if node_id is not None:
                self.tree.nodes[node_id].candidate = cand.id
        return cand

    # ---- hooks -------------------------------------------------------------------------------------------

    def _ask(self) -> Proposal | None:
        if self._replay_decisions is not None:
            self.design.cursor = len(self.design)  # a tree ask: the design is over (or the log had none)
            return self._replay_ask(self._replay_decisions)
        design = self._design_proposal()
        if design is not None:
            return design
        self._speculate = self.expand_pending == "always"
        for _ in range(MAX_STEPS_PER_ASK):
            while self._queue:
                node = self.tree.nodes[self._queue.popleft()]
                if self._resolve(node):
                    return self._proposal(node)
            if not self._sweep_step():
                if self._speculate or self.expand_pending == "never" or not self.n_pending:
                    return None
                self._speculate = True  # no leaf with a known value can be split: a pending one may
        return None

    def _design_proposal(self) -> Proposal | None:
        """The next design point: of the Latin hypercube while any is left, or (`design: blind`) of the Halton
        sequence while asks are made with none but pending results; None when the tree's turn has come."""
        is_new = lambda u: self.lookup(u) is None  # noqa: E731
        nxt = self.design.next(is_new)
        if nxt is not None:
            return Proposal(nxt[1], {"phase": "design", "index": nxt[0]})
        if not self.blind or self.n_told or not self.n_pending:
            return None
        for _ in range(BLIND_TRIES):
            u = self._halton.random(1)[0][self._name_rank]
            if is_new(u):
                return Proposal(u, {"phase": "design"})
        return None

    def _tell(self, trial: Trial) -> None:
        by_node = "node" in trial.candidate.meta
        if not by_node:
            self._add_inside(trial)
        for i, node_id in enumerate(self._waiters.pop(trial.candidate.id)):
            self.tree.set_value(node_id, trial.score, EVALUATED if i == 0 and by_node else INHERITED)
            self._record_variation(self.tree.nodes[node_id])

    def _tell_failure(self, trial: Trial) -> None:
        for node_id in self._waiters.pop(trial.candidate.id):
            self.tree.set_value(node_id, math.nan, FAILED)

    def _tell_pruned(self, trial: Trial) -> None:
        """A pruned centre ranks by its last reported value (a failure when it never reported): see
        docs/algorithms.md, "Pruned trials"."""
        if trial.score is None:
            self._tell_failure(trial)
            return
        if "node" not in trial.candidate.meta:
            self._add_inside(trial)
        for node_id in self._waiters.pop(trial.candidate.id):
            self.tree.set_value(node_id, trial.score, PRUNED)

    def _adopt(self, proposal: Proposal | None, recorded: np.ndarray, divergence: str) -> Proposal:
        """A tree node's centre cannot be swapped for another point: without the recorded decisions that led to
        the recorded point (logs before format 4), or with decisions that lead elsewhere, the log is refused.
        A design point can (another scipy may draw another design): the recorded one is kept, with a warning."""
        if proposal is not None and proposal.meta.get("phase") == "design":
            self._diverged(divergence)
            return Proposal(recorded, proposal.meta)
        why = ("its recorded decisions lead to another point" if self._replay_decisions is not None
               else "the log records no tree decisions (written before log format 4)")
        raise ReplayError(f"{self.name}: cannot replay {divergence}: {why}")

    # ---- the algorithm -----------------------------------------------------------------------------------

    def _proposal(self, node: Node) -> Proposal:
        """Propose the node's centre, with the decisions taken since the last proposal."""
        self._decisions.append([SWEEP, self._depth, int(self._sweep_expanded), self._v_max])
        self._decisions.append([ASK, node.id, -1, self._estimate(node)])
        decisions, self._decisions = self._decisions, []
        return Proposal(node.center, {"node": node.id, "depth": node.depth, "phase": self.name,
                                      "decisions": decisions})

    def _estimate(self, node: Node) -> float | None:
        """The model's value at a node sent for evaluation (BaMSOO's GP mean); SOO has none."""
        return None

    def _replay_ask(self, decisions: list[list[Any]]) -> Proposal:
        """Replay one ask from its recorded decisions: split the recorded nodes along the recorded sides, give
        children the recorded values and propose the recorded node, resolving the rest from the known points
        as the ask did. Nothing is recomputed but for the comparisons in `_replay_split` and `_take_recorded`."""
        ask_id = self._replaying["id"]
        if any(d[0] not in DECISION_KINDS for d in decisions) or sum(d[0] == ASK for d in decisions) != 1:
            raise ReplayError(f"{self.name}: ask {ask_id} records decisions {decisions!r}, not one {ASK!r} among "
                              f"{', '.join(DECISION_KINDS)}")
        splits = deque((kind, int(node), int(side)) for kind, node, side, _ in decisions if kind in (SPLIT, FILL))
        valued = {int(node): value for kind, node, _, value in decisions if kind == APPROX}
        target, estimate = next((int(node), value) for kind, node, _, value in decisions if kind == ASK)
        sweep = next(((int(depth), bool(split), float(v_max)) for kind, depth, split, v_max in decisions
                      if kind == SWEEP), None)
        while True:
            while self._queue:
                node = self.tree.nodes[self._queue.popleft()]
                if node.id == target:
                    self._take_recorded(node, True, estimate)
                    if splits or valued:
                        raise self._unreachable(target, "decisions are left after it")
                    if sweep is not None:  # the sweep's depth and v_max need not follow from the splits alone
                        self._depth, self._sweep_expanded, self._v_max = sweep
                    return self._proposal(node)
                if node.id in valued:
                    self._take_recorded(node, False, valued.pop(node.id))
                elif self.lookup(node.center) is not None:
                    self._resolve(node)
                else:
                    raise self._unreachable(target, f"node {node.id} is left undecided")
            if not splits:
                raise self._unreachable(target, "the recorded splits run out first")
            kind, node_id, side = splits.popleft()
            if node_id >= len(self.tree.nodes):
                raise self._unreachable(target, f"node {node_id} does not exist")
            self._replay_split(self.tree.nodes[node_id], side, kind)

    def _unreachable(self, target: int, why: str) -> ReplayError:
        return ReplayError(f"{self.name}: the decisions recorded with ask {self._replaying['id']} do not lead to "
                           f"node {target}: {why}")

    def _replay_split(self, node: Node, side: int, kind: str = SPLIT) -> None:
        if self._replay_checks and not node.expanded:
            own = self.tree.split_side(node)
            if own != side:
                self._diverged(f"trial {self._replaying['id']}: node {node.id} split along side {side} recorded, "
                               f"{own} recomputed")
        try:
            self._split(node, side) if kind == SPLIT else self._expand(node, side, kind)
        except ValueError as exc:
            raise ReplayError(f"{self.name}: ask {self._replaying['id']} records a split that cannot be made: "
                              f"{exc}") from None

    def _take_recorded(self, node: Node, evaluate: bool, value: float | None) -> None:
        """Replay: take a new child's recorded decision (evaluate it, or give it `value`). SOO evaluates every
        child whose centre is new."""
        if not evaluate or value is not None:
            raise ReplayError(f"{self.name}: ask {self._replaying['id']} records a model's value at node {node.id}; "
                              f"{self.name} has no model")

    def _resolve(self, node: Node) -> bool:
        """Give a new node its value if it needs no evaluation; True if its centre must be evaluated."""
        known = self.lookup(node.center)
        if known is None:
            return self._should_evaluate(node)
        node.candidate = known.candidate.id
        if known.state is TrialState.PENDING:
            self._waiters[known.candidate.id].append(node.id)
        elif known.state is TrialState.OK:
            self.tree.set_value(node.id, known.score, INHERITED)
        elif known.state is TrialState.PRUNED and known.score is not None:
            self.tree.set_value(node.id, known.score, PRUNED)
        else:
            self.tree.set_value(node.id, math.nan, FAILED)
        return False

    def _should_evaluate(self, node: Node) -> bool:
        """Hook for BaMSOO: may value the node without evaluating it (return False)."""
        return True

    def _sweep_step(self) -> bool:
        """Visit one depth of the current sweep; False when a whole sweep found nothing to expand."""
        past_limit = self._depth > min(self.tree.depth, self.h_max())
        # Past h_max with nothing split yet in this sweep, look deeper rather than stall; the sweep ends past
        # h_max once it has split something, or past the deepest leaf.
        if past_limit and (self._sweep_expanded or self._depth > self.tree.depth):
            idle = not self._sweep_expanded
            self._depth, self._v_max, self._sweep_expanded = 0, -math.inf, False
            if idle:  # a whole sweep from depth 0, with v_max = -inf throughout, found no leaf to split
                return False
        if self._waits_at(self._depth):
            leaf = self._fill_leaf()
            if leaf is not None:  # the sweep stays at this depth until its pending leaves are valued
                self._expand(leaf, kind=FILL)
                return True
        best = self._best_leaf(self._depth)
        self._depth += 1
        if best is not None and self._rank(best) >= self._v_max + self._noise_margin():
            self._split(best)
        return True

    def _waits_at(self, depth: int) -> bool:
        """Hook: whether the sweep must wait at `depth` for pending values (and `_fill_leaf` gives the idle
        workers other work). SOO never waits: its sweep carries on without the pending leaves (see above)."""
        return False

    def _sweeps_in_order(self) -> bool:
        """Whether the sweep expands only what the sequential algorithm would (waiting for pending values)."""
        return False

    def _fill_leaf(self) -> Node | None:
        """Hook: a leaf to split while the sweep waits, or None to carry on as if it did not wait."""
        return None

    def _split(self, node: Node, side: int | None = None) -> None:
        """Expand the leaf the sweep chose (along `side`: replay's record) and move the sweep past its depth."""
        self._depth = node.depth + 1
        self._v_max = self._rank(node)
        self._sweep_expanded = True
        self._expand(node, side)

    def _expand(self, node: Node, side: int | None = None, kind: str = SPLIT) -> None:
        side = self.tree.split_side(node) if side is None else side
        children = self.tree.expand(node.id, self.k, side)
        self.n_expansions += 1
        self._decisions.append([kind, node.id, int(side), None])
        for child in children:
            if child.state == PENDING:
                self._queue.append(child.id)

    def _best_leaf(self, depth: int) -> Node | None:
        """The leaf to expand at `depth`: largest rank; on ties a known value first, then the oldest node."""
        best, best_key = None, None
        for node in self.tree.leaves(depth):
            excluded = ((node.state == FAILED and self.failure == "never")
                        or (node.state == PENDING and not self._speculate))
            if excluded or not self.tree.can_expand(node):
                continue
            key = (self._rank(node), node.state != PENDING, -node.id)
            if best_key is None or key > best_key:
                best, best_key = node, key
        return best

    def _record_variation(self, node: Node) -> None:
        """Once every child of the node's parent has a real value: how much they differ per unit width of the
        side the parent was split along."""
        if node.parent < 0 or node.parent in self._varied:
            return
        parent = self.tree.nodes[node.parent]
        if any(self.tree.nodes[c].state not in REAL for c in parent.children):
            return
        self._varied.add(parent.id)
        values = [self.tree.nodes[c].value for c in parent.children]
        side = self.tree.split_side(parent)
        self._variation[side].append((max(values) - min(values)) / (parent.upper[side] - parent.lower[side]))

    def _side_scores(self) -> np.ndarray:
        """Per side, how much the function varies along it (larger: split first among equally wide sides);
        +inf for a side never measured, so that each is measured once. SOO: the mean of the recorded
        variations."""
        return np.array([np.mean(v) if v else math.inf for v in self._variation])

    def _choose_side(self, node: Node, sides: list[int]) -> int:
        """The side to split among the splittable `sides`: the widest, ties broken by `tie_break`."""
        return self._break_tie(widest(node, sides))

    def _break_tie(self, tied: list[int]) -> int:
        if len(tied) == 1 or self.tie_break == "index":
            return tied[0]
        scores = self._side_scores()
        return max(tied, key=lambda side: (scores[side], -self._name_rank[side]))

    def _noise_margin(self) -> float:
        """How much better than the leaf the sweep split at a shallower depth a leaf must be to be split too:
        0 for SOO, which takes values as exact (BaMSOO: `noise_margin` noise sds of its GP)."""
        return 0.0

    def _rank(self, node: Node) -> float:
        """What a leaf competes with in a sweep: its centre's value, or the best design point's inside its box
        when that is better. Both are values of the function in the cell, so SOO's optimism holds for either;
        a design point lets a cell whose centre is poor (a collapsed step size next to the best ones) be split."""
        return max(self._value(node), self._inside_best(node))

    def _value(self, node: Node) -> float:
        if node.state == FAILED:
            return -math.inf
        if node.state == PENDING:
            return self._placeholder(node)
        return node.value

    def _placeholder(self, node: Node) -> float:
        """The value a pending leaf competes with in a sweep."""
        if node.parent < 0:
            return -math.inf
        return self._value(self.tree.nodes[node.parent])

    def _add_inside(self, trial: Trial) -> None:
        """A design point's value: it ranks the leaves whose box holds the point from now on."""
        self._inside_u = np.vstack([self._inside_u, trial.candidate.u])
        self._inside_y = np.append(self._inside_y, trial.score)
        self._inside.clear()

    def _inside_best(self, node: Node) -> float:
        if not len(self._inside_y):
            return -math.inf
        best = self._inside.get(node.id)
        if best is None:
            holds = np.all((self._inside_u >= node.lower) & (self._inside_u <= node.upper), axis=1)
            best = self._inside[node.id] = float(self._inside_y[holds].max(initial=-math.inf))
        return best
