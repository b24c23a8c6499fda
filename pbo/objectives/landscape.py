"""A cheap stand-in for LoRA fine-tuning scored by lm-eval: the `llm_landscape` objective.

Why: a real trial costs tens of GPU-minutes, so optimizers are judged on a formula with the reference study's
properties (DESIGN.md, "The job"): its 5-variable space, most of the learning-rate range training nothing,
alpha/rank acting as a learning-rate multiplier, a collapse to chance for large alpha/rank, a narrow good
region, small effects of dropout and weight decay, and scores carrying lm-eval's binomial noise.

The true (noise-free) accuracy. With s = lora_alpha / lora_rank (LoRA's scaling factor) and the effective step
z = log10(learning_rate * s):

    acc = chance + (trained - chance) * (1 - D)
    trained = base + G(z) * (best - base - penalty)
    G(z) = ramp(z; -6.5, -5.5) * exp(-(z - z*)^2 / (2 w^2))         z* = -3.5, w = 0.55 decades
    D = 1 - (1 - ramp(s; 1.15, 1.25) * ramp(z; -6.5, -5.5)) * (1 - ramp(z; z* + 0.4, z* + 0.9))
    penalty = 6.7e-4 log2(rank / 16)^2 + 1.7e-4 log2(s)^2 + 0.03 (dropout - 0.1)^2
              + 7.5e-4 (log10(weight_decay) + 3)^2

where ramp(x; lo, hi) is 0 below lo, 1 above hi and smoothstep (3t^2 - 2t^3) between. So:
  - effective steps below 10^-6.5 change nothing: the score is the base model's, exactly, at any alpha/rank
    (a LoRA adapter starts as a no-op); up to about 10^-5 the change stays under 0.001;
  - the gain peaks at an effective step of 10^-3.5 (option `peak`, to move the optimum off any grid a method
    may favour) and is a Gaussian in log10 of width 0.55 decades, the
    shape of the tiny study's table (docs/llm.md); learning rate and alpha/rank trade off along that ridge;
  - the model is destroyed (D -> 1: chance) by too large a step (0.4 to 0.9 decades above the peak) and, once
    it trains at all, by alpha/rank >= 1.2, as in the reference study;
  - rank, alpha/rank, dropout and weight decay cost at most about one stderr each, scaled by the gain;
  - the maximum, `best` = 0.479 (the reference's best HellaSwag accuracy), is at rank 16, alpha 16, dropout 0.1,
    learning rate 10^-3.5, weight decay 1e-3 (`LLMLandscape.best_point`); `base` 0.452 and `chance` 0.25.

Observation: `acc` is binomial(items, p) / items (lm-eval's accuracy over `items` questions; default 10042,
HellaSwag's validation set, so its stderr is about 0.005 like the reference's), or p plus Gaussian noise of
that stderr, or p itself (`noise: none`); `acc_stderr` is lm-eval's sqrt(acc (1 - acc) / (items - 1)). The
draw is seeded by a hash of (seed, point), so a point scores the same in every run with the same `seed` and a
repeated run is repeatable.

Learning curves (option `eval_at`, off by default). With `eval_at: [0.125, 0.25, 0.5]` a trial reports, as the LLM
objective does, a quick score at those fractions f of its training (`ReportingLandscape`): the accuracy the adapter
has at f, observed over `eval_limit` items, at step ceil(f * steps). A training adapter approaches its final
accuracy as 1 - (1 - f)^3 (0.33 of its gain at an eighth, 0.88 at half), a dead one stays at the base model's,
and destruction (collapse or divergence) sets in fully by `collapse_by` (an eighth of the training): a collapsing
trial reports chance from its first report on. The last value (f = 1) is the true value, and a trial that runs to
its end returns the same observation as without reports.

Example:
    >>> from pbo.objectives import resolve_objective
    >>> objective = resolve_objective("llm_landscape", {"items": 1000, "seed": 3})
    >>> land = objective.function
    >>> land.true_value(land.best_point) == objective.optimum == 0.479
    True
    >>> untouched = {**land.best_point, "learning_rate": 1e-9, "lora_alpha": 64, "lora_rank": 2}
    >>> land.true_value(untouched), land.region(untouched)
    (0.452, 'dead')
    >>> collapsed = {**land.best_point, "lora_alpha": 32}   # alpha/rank = 2
    >>> land.true_value(collapsed), land.region(collapsed)
    (0.25, 'collapsed')
    >>> metrics = land(land.best_point)
    >>> sorted(metrics), metrics == land(land.best_point), round(metrics["acc_stderr"], 3)
    (['acc', 'acc_stderr'], True, 0.016)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np

#: The reference study's space (DESIGN.md), learning rate over its full 1e-10..1e-1.
SPACE: dict[str, dict[str, Any]] = {
    "lora_rank": {"type": "int", "low": 2, "high": 64},
    "lora_alpha": {"type": "int", "low": 1, "high": 64},
    "lora_dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "learning_rate": {"type": "float", "low": 1e-10, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
}
NAMES = tuple(SPACE)
NOISE = ("binomial", "gaussian", "none")
#: Within this of the base model's accuracy a trial counts as `dead` (a fifth of the reference's stderr).
DEAD_TOLERANCE = 1e-3


def ramp(x: float, lo: float, hi: float) -> float:
    """0 below `lo`, 1 above `hi`, smoothstep between: exact plateaus, so flat regions are exactly flat."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class LLMLandscape:
    """The landscape with its noise settings; calling it returns lm-eval-like metrics of one trial."""

    items: int = 10042
    seed: int = 0
    noise: str = "binomial"
    base: float = 0.452
    best: float = 0.479
    chance: float = 0.25
    peak: float = -3.5  # log10 of the best effective step, learning_rate * alpha / rank
    width: float = 0.55  # of the gain's Gaussian, in decades of effective step
    collapse_ratio: float = 1.2  # alpha / rank from which a training adapter collapses the model

    @property
    def best_point(self) -> dict[str, Any]:
        """Where the maximum is: alpha/rank 1 at rank 16, the learning rate at the peak's effective step."""
        return {"lora_rank": 16, "lora_alpha": 16, "lora_dropout": 0.1, "learning_rate": 10 ** self.peak,
                "weight_decay": 1e-3}

    def __post_init__(self) -> None:
        if not -5.0 <= self.peak <= -2.0:
            raise ValueError(f"peak (log10 of the best effective step) must lie in [-5, -2], got {self.peak!r}")
        if isinstance(self.items, bool) or not isinstance(self.items, int) or self.items < 2:
            raise ValueError(f"items must be an integer >= 2, got {self.items!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.noise not in NOISE:
            raise ValueError(f"noise must be one of {', '.join(NOISE)}, got {self.noise!r}")

    # ---- the true function ------------------------------------------------------------------------------

    def parts(self, params: Mapping[str, Any]) -> tuple[float, float]:
        """(trained, destruction): the accuracy the adapter would give if it did not break the model, and how
        far it is broken (0: intact, 1: chance)."""
        rank, alpha, dropout, lr, wd = (float(params[name]) for name in NAMES)
        if min(rank, alpha, lr, wd) <= 0:
            raise ValueError(f"lora_rank, lora_alpha, learning_rate and weight_decay must be > 0, got {params}")
        scale = alpha / rank
        z = math.log10(lr * scale)
        trains = ramp(z, -6.5, -5.5)
        gain = trains * math.exp(-((z - self.peak) ** 2) / (2 * self.width ** 2))
        penalty = (6.7e-4 * math.log2(rank / 16) ** 2 + 1.7e-4 * math.log2(scale) ** 2
                   + 0.03 * (dropout - 0.1) ** 2 + 7.5e-4 * (math.log10(wd) + 3) ** 2)
        collapse = ramp(scale, self.collapse_ratio - 0.05, self.collapse_ratio + 0.05) * trains
        diverge = ramp(z, self.peak + 0.4, self.peak + 0.9)
        return self.base + gain * (self.best - self.base - penalty), 1 - (1 - collapse) * (1 - diverge)

    def true_value(self, params: Mapping[str, Any]) -> float:
        """The noise-free accuracy at `params` (the five variables by name)."""
        trained, broken = self.parts(params)
        return trained * (1 - broken) + self.chance * broken  # exactly `trained` at 0 and `chance` at 1

    def region(self, params: Mapping[str, Any]) -> str:
        """`collapsed` (closer to chance than to the base model), `dead` (within DEAD_TOLERANCE of the base
        model: the trial changed nothing that matters) or `trained`."""
        value = self.true_value(params)
        if value < (self.chance + self.base) / 2:
            return "collapsed"
        return "dead" if abs(value - self.base) < DEAD_TOLERANCE else "trained"

    @property
    def stderr(self) -> float:
        """The standard error of an observation at the optimum (0 with `noise: none`)."""
        return 0.0 if self.noise == "none" else math.sqrt(self.best * (1 - self.best) / self.items)

    # ---- observations -----------------------------------------------------------------------------------

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        """One trial's metrics: `acc` drawn around the true value and lm-eval's `acc_stderr`."""
        return self.observe(self.true_value(params), self._draw_seed(params))

    def baseline(self) -> dict[str, float]:
        """The untuned model's score (the study's trial 0): the base accuracy with its own draw."""
        return self.observe(self.base, self._draw_seed({}))

    def observe(self, p: float, draw_seed: int) -> dict[str, float]:
        if self.noise == "none":
            return {"acc": p, "acc_stderr": 0.0}
        rng = np.random.default_rng(draw_seed)
        if self.noise == "binomial":
            acc = float(rng.binomial(self.items, p)) / self.items
        else:
            acc = min(max(p + float(rng.normal()) * math.sqrt(p * (1 - p) / self.items), 0.0), 1.0)
        return {"acc": acc, "acc_stderr": math.sqrt(acc * (1 - acc) / (self.items - 1))}

    def _draw_seed(self, params: Mapping[str, Any]) -> int:
        """A seed from (seed, point) that does not depend on the process (unlike `hash`) or the space's order."""
        point = [[name, repr(float(params[name]))] for name in NAMES if name in params]
        digest = hashlib.sha256(json.dumps([self.seed, point]).encode()).digest()
        return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class ReportingLandscape:
    """The landscape trained along a learning curve: a quick score reported at each `eval_at` fraction.

    Example:
        >>> curve = ReportingLandscape(LLMLandscape(noise="none"), eval_at=(0.125, 0.5), steps=800)
        >>> seen = []
        >>> final = curve(curve.land.best_point, report=lambda step, value, fidelity, **m: seen.append(step) or True)
        >>> seen, final["acc"] == 0.479
        ([100, 400], True)
        >>> curve.value_at({**curve.land.best_point, "lora_alpha": 32}, 0.125)   # collapsing: chance at once
        0.25
    """

    land: LLMLandscape
    eval_at: tuple[float, ...] = (0.125, 0.25, 0.5)
    eval_limit: int = 500  # items of a quick score
    steps: int = 3235  # optimizer steps of a trial (the reference: 51,760 Alpaca-cleaned records, batch 16)
    collapse_by: float = 0.125  # fraction of the training by which destruction is complete

    def __post_init__(self) -> None:
        fractions = list(self.eval_at)
        if any(not 0 < f < 1 for f in fractions) or fractions != sorted(set(fractions)):
            raise ValueError(f"eval_at must be increasing fractions of the training in (0, 1), got {fractions}")
        for name in ("eval_limit", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def value_at(self, params: Mapping[str, Any], fraction: float) -> float:
        """The noise-free accuracy after `fraction` of the training (the true value at 1)."""
        trained, broken = self.land.parts(params)
        now = self.land.base + (trained - self.land.base) * (1 - (1 - fraction) ** 3)
        gone = broken * min(1.0, fraction / self.collapse_by)
        return now * (1 - gone) + self.land.chance * gone

    def __call__(self, params: Mapping[str, Any], report: Callable[..., bool] | None = None) -> dict[str, float]:
        quick = replace(self.land, items=self.eval_limit)
        for k, fraction in enumerate(self.eval_at, 1):
            step = min(self.steps, max(1, math.ceil(fraction * self.steps - 1e-9)))
            seen = quick.observe(self.value_at(params, step / self.steps), self.land._draw_seed(params) + k)
            if report is not None and not report(step, seen["acc"], fidelity=step / self.steps,
                                                 acc_stderr=seen["acc_stderr"]):
                return seen  # told to stop: recorded as pruned at this report
        return self.land(params)
