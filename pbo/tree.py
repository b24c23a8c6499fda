"""The partition tree shared by SOO and BaMSOO, as plain data.

Each node is a box of the unit cube [0, 1]^d with the point at its centre. Expanding a node splits its box
into K equal parts along one side: by default the widest (the lowest index among equally wide ones), or
the one the `choose_side` callable picks among the splittable sides; with odd K the middle child keeps
the parent's centre, so it inherits the parent's value when that value is real (evaluated or inherited).

Integer and categorical sides are cut only at the edges of their values' shares of [0, 1] (as equal as
the values allow; fewer than K children when the box holds fewer than K values), so every child holds at
least one value, a box with one value per discrete side and no continuous side is a leaf for good, and
the tree over a discrete space is finite.

Example:
    >>> tree = Tree(dim=2)
    >>> tree.set_value(0, 1.5, EVALUATED)
    >>> [c.center.tolist() for c in tree.expand(0, k=3)]
    [[0.16666666666666666, 0.5], [0.5, 0.5], [0.8333333333333333, 0.5]]
    >>> tree.nodes[2].state, tree.nodes[2].value
    ('inherited', 1.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from pbo.space import Space

EVALUATED, INHERITED, APPROXIMATED, PENDING, FAILED = "evaluated", "inherited", "approximated", "pending", "failed"
#: A centre whose trial was stopped early: its value is the trial's last report (a low-fidelity value).
PRUNED = "pruned"
STATES = (EVALUATED, INHERITED, APPROXIMATED, PENDING, FAILED, PRUNED)
#: States whose value came from a real evaluation of the objective at the node's centre.
REAL = (EVALUATED, INHERITED)
#: Below this unit-cube width a side is not split again: centres would collide within the 1e-12 rounding
#: that identifies points.
MIN_WIDTH = 1e-9


@dataclass
class Node:
    """One cell. `value` is NaN until known; `candidate` is the id of the trial evaluating the centre."""

    id: int
    parent: int
    depth: int
    lower: np.ndarray
    upper: np.ndarray
    center: np.ndarray
    value: float = math.nan
    state: str = PENDING
    expanded: bool = False
    candidate: int = -1
    children: list[int] = field(default_factory=list)


class Tree:
    """Nodes in creation order (node id = index), with the leaves of each depth kept for the sweeps.

    `edges[side]` is None for a continuous side, or the sorted share edges (0, ..., 1) of a discrete one
    (see `share_edges`).
    """

    def __init__(self, dim: int, edges: Sequence[np.ndarray | None] | None = None,
                 choose_side: Callable[[Node, list[int]], int] | None = None) -> None:
        self.dim = int(dim)
        self.edges = list(edges) if edges is not None else [None] * self.dim
        if len(self.edges) != self.dim:
            raise ValueError(f"edges name {len(self.edges)} sides for a {self.dim}-dimensional tree")
        lower, upper = np.zeros(self.dim), np.ones(self.dim)
        self.nodes: list[Node] = [Node(0, -1, 0, lower, upper, (lower + upper) / 2)]
        self._leaves: dict[int, dict[int, None]] = {0: {0: None}}  # depth -> leaf ids (ordered set)
        self.choose_side = choose_side
        self._sides: dict[int, int | None] = {}  # node id -> side split (see split_side), fixed at expansion
        self._can_split: dict[int, bool] = {}  # node id -> whether some side is splittable
        # What table() stacks once per node, since it never changes: boxes, parent and depth.
        self._boxes = {"parent": np.empty(0, np.int64), "depth": np.empty(0, np.int64),
                       **{key: np.empty((0, self.dim)) for key in ("lower", "upper", "center")}}

    @property
    def root(self) -> Node:
        return self.nodes[0]

    @property
    def depth(self) -> int:
        return max(d for d, leaves in self._leaves.items() if leaves)

    def leaves(self, depth: int) -> Iterator[Node]:
        return (self.nodes[i] for i in self._leaves.get(depth, ()))

    def split_side(self, node: Node) -> int | None:
        """The side to split: `choose_side`'s choice among the splittable sides (without one, the widest, the
        lowest index among equally wide ones); None if no side is splittable. Decided when the node is split."""
        if node.id in self._sides:
            return self._sides[node.id]
        sides = [side for side in range(self.dim) if self._splittable(node, side)]
        if not sides:
            return None
        return widest(node, sides)[0] if self.choose_side is None else self.choose_side(node, sides)

    def can_expand(self, node: Node) -> bool:
        if node.expanded:
            return False
        if node.id not in self._can_split:
            self._can_split[node.id] = any(self._splittable(node, side) for side in range(self.dim))
        return self._can_split[node.id]

    def _splittable(self, node: Node, side: int) -> bool:
        """A continuous side wider than MIN_WIDTH, or a discrete side that holds two values or more."""
        edges = self.edges[side]
        if edges is None:
            return node.upper[side] - node.lower[side] > MIN_WIDTH
        return np.searchsorted(edges, node.upper[side]) - np.searchsorted(edges, node.lower[side]) >= 2

    def _cuts(self, node: Node, side: int, k: int) -> np.ndarray:
        """Where to cut a splittable side into (at most) k parts: from its lower to its upper end."""
        lo, hi = node.lower[side], node.upper[side]
        edges = self.edges[side]
        if edges is None:
            return np.linspace(lo, hi, k + 1)
        first, last = int(np.searchsorted(edges, lo)), int(np.searchsorted(edges, hi))
        parts = min(k, last - first)
        return edges[[first + round(j * (last - first) / parts) for j in range(parts + 1)]]

    def _child_boxes(self, node: Node, side: int, k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
        """(lower, upper, center, is the middle child) of each child a split along `side` would create."""
        cuts = self._cuts(node, side, k)
        n = len(cuts) - 1
        for i in range(n):
            lower, upper = node.lower.copy(), node.upper.copy()
            lower[side], upper[side] = cuts[i], cuts[i + 1]
            middle = n == k and k % 2 == 1 and i == k // 2
            yield lower, upper, node.center.copy() if middle else (lower + upper) / 2, middle

    def new_centers(self, node: Node, k: int = 3) -> list[np.ndarray]:
        """The centres that splitting an expandable leaf would add (all its children's but the middle one's,
        which is the leaf's own), without splitting it."""
        side = self.split_side(node)
        return [] if side is None else [c for _, _, c, middle in self._child_boxes(node, side, k) if not middle]

    def expand(self, node_id: int, k: int = 3, side: int | None = None) -> list[Node]:
        """Split a leaf into k children (fewer on a discrete side with fewer values), in coordinate order, along
        `side` (default: `split_side`; replay passes the recorded one)."""
        node = self.nodes[node_id]
        if node.expanded:
            raise ValueError(f"node {node_id} is already expanded")
        side = self.split_side(node) if side is None else int(side)
        if side is None or not (0 <= side < self.dim and self._splittable(node, side)):
            raise ValueError(f"node {node_id} cannot be split further" if side is None
                             else f"node {node_id} cannot be split along side {side}")
        self._sides[node.id] = side
        children = []
        for lower, upper, center, middle in self._child_boxes(node, side, k):
            child = Node(len(self.nodes), node.id, node.depth + 1, lower, upper, center)
            if middle and node.state in REAL:
                child.value, child.state = node.value, INHERITED
            self.nodes.append(child)
            children.append(child)
        node.expanded = True
        node.children = [c.id for c in children]
        del self._leaves[node.depth][node.id]
        self._leaves.setdefault(node.depth + 1, {}).update((c.id, None) for c in children)
        return children

    def set_value(self, node_id: int, value: float, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown node state {state!r} (use one of {', '.join(STATES)})")
        node = self.nodes[node_id]
        node.value, node.state = float(value), state

    def table(self, sign: float = 1.0) -> dict[str, np.ndarray]:
        """One row per node with the /tree/ column names of the HDF5 log; values multiplied by `sign`.

        Called after every result, so what is fixed once a node exists (box, parent, depth) is stacked only for
        new nodes.
        """
        nodes, n = self.nodes, len(self.nodes)
        cached = len(self._boxes["lower"])
        if cached < n:
            for key in self._boxes:
                fresh = [getattr(x, key) for x in nodes[cached:]]
                self._boxes[key] = np.concatenate([self._boxes[key], np.stack(fresh) if key not in ("parent", "depth")
                                                   else np.array(fresh, dtype=np.int64)])
        states = np.empty(n, dtype=object)
        states[:] = [x.state for x in nodes]
        return {
            "node_id": np.arange(n, dtype=np.int64),
            **{key: column.copy() for key, column in self._boxes.items()},
            "value": sign * np.fromiter((x.value for x in nodes), float, n),
            "state": states,
            "expanded": np.fromiter((x.expanded for x in nodes), bool, n),
        }


def widest(node: Node, sides: list[int], weights: np.ndarray | None = None) -> list[int]:
    """The sides (of `sides`, in their order) of largest width, times `weights` when given: equal up to
    rounding count as equal."""
    widths = (node.upper - node.lower) * (1.0 if weights is None else weights)
    top = max(widths[side] for side in sides)
    return [side for side in sides if widths[side] >= top * (1 - 1e-9)]


def share_edges(space: Space) -> list[np.ndarray | None]:
    """Per variable: None if continuous, else the unit-cube edges of its values' equal shares (see Space)."""
    edges: list[np.ndarray | None] = []
    for var in space.variables:
        if var.n_values is None:
            edges.append(None)
        elif var.kind == "int" and var.log:
            lo, hi = int(var.low), int(var.high)
            e = (np.log(np.arange(lo, hi + 2)) - math.log(lo)) / (math.log(hi + 1) - math.log(lo))
            edges.append(np.clip(e, 0.0, 1.0))
        else:
            edges.append(np.arange(var.n_values + 1) / var.n_values)
    return edges
