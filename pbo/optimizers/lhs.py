"""Latin hypercube design of `budget` points (scipy.stats.qmc), handed out in order."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.stats import qmc

from pbo.optimizers.base import Optimizer, Proposal
from pbo.optimizers.random import random_unvisited
from pbo.space import Space


class Design:
    """A seeded Latin hypercube of `n` unit points, handed out in order; points that an earlier one already
    took (same integers and categoricals after snapping) are skipped. With `columns` (variable i takes the
    design's column columns[i], e.g. its name's rank) the points do not depend on the order in which the
    space lists its variables.

    Example:
        >>> a = Design(2, 4, np.random.default_rng(0), columns=[0, 1]).points
        >>> b = Design(2, 4, np.random.default_rng(0), columns=[1, 0]).points
        >>> bool(np.array_equal(a[:, ::-1], b))
        True
    """

    def __init__(self, dim: int, n: int, rng: np.random.Generator, columns: Sequence[int] | None = None) -> None:
        points = qmc.LatinHypercube(d=dim, rng=rng).random(n) if n else np.zeros((0, dim))
        self.points = points if columns is None else points[:, list(columns)]
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.points)

    def next(self, is_new: Callable[[np.ndarray], bool]) -> tuple[int, np.ndarray] | None:
        """The index and unit point of the next design point that `is_new` accepts, or None when used up."""
        while self.cursor < len(self.points):
            index, self.cursor = self.cursor, self.cursor + 1
            if is_new(self.points[index]):
                return index, self.points[index]
        return None


class LatinHypercube(Optimizer):
    """Stratifies each axis into `budget` slices; beyond the design it continues with random points."""

    name = "lhs"
    order_free_replay = True

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 design_size: int | None = None) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget)
        n = design_size or budget
        if not n or n < 1:
            raise ValueError("lhs needs a budget (or design_size) to size its design")
        self.design = Design(space.dim, n, self.rng)

    def _ask(self) -> Proposal | None:
        is_new = lambda u: self.lookup(u) is None  # noqa: E731
        nxt = self.design.next(is_new)
        if nxt is not None:
            return Proposal(nxt[1], {"phase": "lhs", "index": nxt[0]})
        u = random_unvisited(self.rng, self.space.dim, is_new)
        return None if u is None else Proposal(u, {"phase": "random"})
