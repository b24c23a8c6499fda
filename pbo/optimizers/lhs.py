"""Latin hypercube design of `budget` points (scipy.stats.qmc), handed out in order."""

from __future__ import annotations

from scipy.stats import qmc

from pbo.optimizers.base import Optimizer, Proposal
from pbo.space import Space


class LatinHypercube(Optimizer):
    """Stratifies each axis into `budget` slices; beyond the design it continues with random points."""

    name = "lhs"

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 design_size: int | None = None) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget)
        n = design_size or budget
        if not n or n < 1:
            raise ValueError("lhs needs a budget (or design_size) to size its design")
        self.design = qmc.LatinHypercube(d=space.dim, rng=self.rng).random(n)
        self._cursor = 0

    def _ask(self) -> Proposal | None:
        while self._cursor < len(self.design):
            u = self.design[self._cursor]
            self._cursor += 1
            if self.lookup(u) is None:
                return Proposal(u, {"phase": "lhs", "index": self._cursor - 1})
        for _ in range(1000):
            u = self.rng.random(self.space.dim)
            if self.lookup(u) is None:
                return Proposal(u, {"phase": "random"})
        return None
