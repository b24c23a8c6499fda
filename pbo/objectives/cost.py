"""Cost models: how long a cheap synthetic trial pretends to take, so that scheduling can be studied with
functions that cost real wall time (sleeping) or virtual time (the simulator).

The delay of a trial is a function of the seed and the parameters only, never of the worker or the order
of evaluation, so a real run and its simulation draw the same delay for the same candidate.

Example:
    >>> model = CostModel.from_dict({"kind": "lognormal", "mean": 2.0, "sigma": 0.5, "seed": 1})
    >>> model.duration({"x1": 0.25}) == model.duration({"x1": 0.25})
    True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pbo.objectives import Objective, ObjectiveError

KINDS = ("fixed", "lognormal")


@dataclass(frozen=True)
class CostModel:
    """`fixed`: every trial takes `mean` seconds. `lognormal`: a lognormal delay with mean `mean` seconds and
    log-standard-deviation `sigma` (the spread of the underlying normal), seeded by `seed`."""

    kind: str = "fixed"
    mean: float = 1.0
    sigma: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ObjectiveError(f"cost: unknown kind {self.kind!r} (use {' or '.join(KINDS)})")
        if not (math.isfinite(self.mean) and self.mean >= 0):
            raise ObjectiveError(f"cost: mean must be a number of seconds >= 0, got {self.mean}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ObjectiveError(f"cost: sigma must be >= 0, got {self.sigma}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "CostModel":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ObjectiveError(f"cost: unknown key(s) {unknown} (known: {sorted(known)})")
        try:
            return cls(kind=str(spec.get("kind", "fixed")), mean=float(spec.get("mean", 1.0)),
                       sigma=float(spec.get("sigma", 0.5)), seed=int(spec.get("seed", 0)))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ObjectiveError):
                raise
            raise ObjectiveError(f"cost: {exc}") from None

    def duration(self, params: Mapping[str, Any]) -> float:
        """Seconds that the trial at `params` takes."""
        if self.kind == "fixed" or self.mean == 0:
            return self.mean
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
        rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
        mu = math.log(self.mean) - self.sigma ** 2 / 2  # so that the mean of the delay is `mean`
        return float(rng.lognormal(mu, self.sigma))


def delayed(objective: Objective, model: CostModel) -> Objective:
    """The objective whose every evaluation first sleeps for the model's duration. It keeps the function's
    signature (a reporting objective still gets `report`)."""
    function = objective.function

    @functools.wraps(function)
    def slow(params: dict[str, Any], **kwargs: Any) -> Any:
        time.sleep(model.duration(params))
        return function(params, **kwargs)

    return dataclasses.replace(objective, function=slow)
