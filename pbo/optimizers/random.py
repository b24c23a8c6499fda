"""Uniform random search: the baseline every method must beat."""

from __future__ import annotations

from pbo.optimizers.base import Optimizer, Proposal

#: Draws before concluding that a discrete space is exhausted.
MAX_DRAWS = 1000


class RandomSearch(Optimizer):
    name = "random"

    def _ask(self) -> Proposal | None:
        for _ in range(MAX_DRAWS):
            u = self.rng.random(self.space.dim)
            if self.lookup(u) is None:
                return Proposal(u, {"phase": "random"})
        return None
