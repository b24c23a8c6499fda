"""Optimizers by name. Imports are lazy so that `random` and `lhs` never import torch."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from pbo.optimizers.base import Candidate, Optimizer, Proposal, ReplayDivergence, ReplayError, Trial, TrialState
from pbo.space import Space

ALGORITHMS = {
    "soo": "pbo.optimizers.soo:SOO",
    "bamsoo": "pbo.optimizers.bamsoo:BaMSOO",
    "mfbamsoo": "pbo.optimizers.mfbamsoo:MFBaMSOO",
    "bo": "pbo.optimizers.bo:GPBO",
    "lhs": "pbo.optimizers.lhs:LatinHypercube",
    "random": "pbo.optimizers.random:RandomSearch",
}

__all__ = ["ALGORITHMS", "Candidate", "Optimizer", "Proposal", "ReplayDivergence", "ReplayError", "Trial", "TrialState",
           "make_optimizer", "optimizer_class"]


def optimizer_class(name: str) -> type[Optimizer]:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r} (choose from {', '.join(ALGORITHMS)})")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_optimizer(name: str, space: Space, *, seed: int = 0, minimize: bool = False,
                   budget: int | None = None, **options: Any) -> Optimizer:
    """Build an optimizer; `options` are the algorithm's own keyword arguments (unknown ones are an error)."""
    cls = optimizer_class(name)
    accepted = _options(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"algorithm {name!r} has no option(s) {unknown} "
                         f"(it takes {sorted(accepted - {'seed', 'minimize', 'budget'})})")
    return cls(space, seed=seed, minimize=minimize, budget=budget, **options)


def _options(cls: type[Optimizer]) -> set[str]:
    """The keyword arguments `cls` takes, those it passes on to its base class (`**options`) included."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        parameters = inspect.signature(klass.__init__).parameters
        accepted |= {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
    return accepted
