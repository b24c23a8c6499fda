"""Shared by tests/test_soo.py and tests/test_bamsoo.py: a test function, unit spaces, and plain ask/tell
loops with one worker or several asks outstanding."""

from __future__ import annotations

import numpy as np

from pbo.objectives.synthetic import FUNCTIONS
from pbo.space import Space

HARTMANN3 = FUNCTIONS["hartmann3"]


def unit_space(dim):
    return Space.from_dict({f"x{i + 1}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(dim)})


def run_sequential(opt, f, n):
    points = []
    for _ in range(n):
        cand = opt.ask()
        points.append(cand.u)
        opt.tell(cand.id, f(cand.params))
    return points


def run_parallel(opt, f, n, workers, seed=0):
    """Keep `workers` asks outstanding; results come back in a random order."""
    rng = np.random.default_rng(seed)
    pending, asked = [], []
    while len(asked) < n or pending:
        while len(pending) < workers and len(asked) < n:
            cand = opt.ask()
            assert cand is not None, "ask found no work while leaves could be split"
            pending.append(cand)
            asked.append(cand)
        cand = pending.pop(rng.integers(len(pending)))
        opt.tell(cand.id, f(cand.params))
    return asked

