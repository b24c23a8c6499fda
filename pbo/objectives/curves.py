"""`curve`: a synthetic objective that reports while it runs, to try pruning without an LLM. Each trial walks a
noisy learning curve towards a benchmark function's value (maximize sign, as in synthetic.py):

    value(step) = f(x) - scale * (1 - step / steps) ** 2 + noise * (1 - step / steps) * z_step

with z_step standard normal, seeded by the seed, the parameters and the step. The last step reports f(x)
exactly and the trial returns it, so regret against the function's optimum still holds; early values rank the
points roughly as the final ones do, blurred by noise that fades as the trial goes on.

Example:
    >>> curve = LearningCurve(FUNCTIONS["branin"], steps=4, noise=0.0)
    >>> seen = []
    >>> final = curve({"x1": 0.5, "x2": 0.5}, report=lambda step, value, fidelity: seen.append(value) or True)
    >>> len(seen), seen[-1] == final, seen[0] < final
    (4, True, True)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from pbo.objectives.synthetic import FUNCTIONS, TestFunction


@dataclass(frozen=True)
class LearningCurve:
    """`steps` reports per trial, `step_seconds` of real sleep before each (0: instant)."""

    function: TestFunction
    steps: int = 20
    scale: float = 1.0
    noise: float = 0.1
    seed: int = 0
    step_seconds: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        for name in ("scale", "noise", "step_seconds"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def value_at(self, params: Mapping[str, Any], step: int, final: float) -> float:
        left = 1.0 - step / self.steps
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
        z = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little"), step]).standard_normal()
        return final - self.scale * left ** 2 + self.noise * left * float(z)

    def __call__(self, params: Mapping[str, Any], report: Callable[..., bool] | None = None) -> float:
        final = self.function(params)
        for step in range(1, self.steps + 1):
            if self.step_seconds:
                time.sleep(self.step_seconds)
            value = self.value_at(params, step, final)
            if report is not None and not report(step, value, fidelity=step / self.steps):
                return value  # told to stop: the trial is recorded as pruned at this report
        return final


def make_curve(options: Mapping[str, Any]) -> LearningCurve:
    """The `curve` objective's callable from its options (`function`: a name of FUNCTIONS, default branin)."""
    options = dict(options)
    name = options.pop("function", "branin")
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r} (choose from {', '.join(FUNCTIONS)})")
    return LearningCurve(FUNCTIONS[name], **options)
