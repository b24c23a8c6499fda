"""Intermediate reports of an LLM trial, so that a pruner can stop a doomed fine-tune early.

At each fraction of the training in `eval_at` the trial scores a quick lm-eval (the first `eval_limit` items of
the objective's tasks only) and reports it as the value: the same metric as the final score, so pruners compare
like with like. The training loss travels with it as metrics, never as the value: a loss is not in the
objective's units or sense, and mixing the two would make a pruner rank a loss against accuracies. Every report
carries:

- `train_loss`: the mean training loss of the steps since the previous report;
- `probe_loss`: the loss of a fixed sample of the data (the divergence check's), without dropout: comparable
  between reports and between trials;
- `tokens` (real tokens trained on so far), `seconds` (since training started, quick evaluations included) and
  `eval_seconds` (this quick evaluation's);
- its step (optimizer steps done) and fidelity (steps done / steps planned).

A collapsed adapter shows at the first report (a quick score near chance, a probe loss above its start), a dead
one too (exactly the base model's quick score, an unchanged probe loss).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import torch

from pbo.objectives.llm.config import LLMConfig
from pbo.objectives.llm.evaluate import score
from pbo.objectives.llm.train import Progress


def report_steps(eval_at: tuple[float, ...], steps: int) -> list[int]:
    """The optimizer steps (1-based) at which the fractions `eval_at` of `steps` are done; duplicates dropped.

    Example:
        >>> report_steps((0.125, 0.25, 0.5), 150)
        [19, 38, 75]
    """
    return sorted({min(steps, max(1, math.ceil(f * steps - 1e-9))) for f in eval_at})


def quick_config(cfg: LLMConfig) -> LLMConfig:
    """The config of a quick evaluation: the objective's tasks only, `eval_limit` items each."""
    return dataclasses.replace(cfg, tasks=cfg.objective_tasks, limit=cfg.eval_limit)


def objective_value(metrics: Mapping[str, float], cfg: LLMConfig) -> float:
    """The objective's key from task metrics: the metric itself, or the weighted mean of several."""
    weights = cfg.objective_weights
    return sum(w * metrics[m] for m, w in weights.items()) / sum(weights.values())


class Reporter:
    """`on_step` for `train`: reports a quick score at each `eval_at` step; returns False (stop) when told to."""

    def __init__(self, cfg: LLMConfig, report: Callable[..., bool], model: Any, tokenizer: Any) -> None:
        self.cfg, self.quick = cfg, quick_config(cfg)
        self.report, self.model, self.tokenizer = report, model, tokenizer
        self.at: set[int] | None = None
        self.loss_sum, self.loss_steps = 0.0, 0
        #: The last report's value and metrics (what a stopped trial returns).
        self.last: dict[str, float] = {}
        self.stopped = False

    def __call__(self, progress: Progress) -> bool:
        if self.at is None:
            self.at = set(report_steps(self.cfg.eval_at, progress.steps))
        self.loss_sum += progress.loss
        self.loss_steps += 1
        if progress.step not in self.at:
            return True
        metrics, seconds = self.quick_score()
        value = objective_value(metrics, self.cfg)
        extra = {"train_loss": self.loss_sum / self.loss_steps, "probe_loss": progress.probe_loss(),
                 "tokens": float(progress.tokens), "seconds": progress.seconds, "eval_seconds": seconds}
        self.loss_sum, self.loss_steps = 0.0, 0
        self.last = {self.cfg.key: value, **extra}
        self.stopped = not self.report(progress.step, value, fidelity=progress.step / progress.steps, **extra)
        return not self.stopped

    def quick_score(self) -> tuple[dict[str, float], float]:
        """lm-eval on the quick subset, leaving training as it was: lm-eval re-seeds torch's global RNG on
        every call, which would change the dropout masks that follow (a reporting trial must train exactly as
        a silent one), and it leaves the model in eval mode."""
        cpu = torch.random.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            return score(self.model, self.tokenizer, self.quick)
        finally:
            torch.random.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
            self.model.train()
