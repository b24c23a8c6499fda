"""Uniform random search: the baseline every method must beat, and the fallback step of the other methods."""

from __future__ import annotations

from typing import Callable

import numpy as np

from pbo.optimizers.base import Optimizer, Proposal

#: Draws before concluding that a discrete space is exhausted.
MAX_DRAWS = 1000


def random_unvisited(rng: np.random.Generator, dim: int, is_new: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """A uniform unit point (shape (dim,)) that `is_new` accepts, or None after MAX_DRAWS refusals."""
    for _ in range(MAX_DRAWS):
        u = rng.random(dim)
        if is_new(u):
            return u
    return None


class RandomSearch(Optimizer):
    name = "random"
    order_free_replay = True

    def _ask(self) -> Proposal | None:
        u = random_unvisited(self.rng, self.space.dim, lambda p: self.lookup(p) is None)
        return None if u is None else Proposal(u, {"phase": "random"})
