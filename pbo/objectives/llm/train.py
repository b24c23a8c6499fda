"""A lean fine-tuning loop: AdamW, linear warmup + cosine decay, gradient accumulation, loss on responses only.

A plain torch loop rather than transformers' Trainer: a trial needs none of the Trainer's checkpointing,
logging or callbacks (the two were not timed against each other). The same loop pre-trains the tiny model
(every parameter trainable) and LoRA-tunes it (only the adapter trainable).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pbo.objectives.llm.config import LLMConfig
from pbo.objectives.llm.data import IGNORE, Batch, Tokenized, collate, micro_batches


PROBES = 5  # divergence checks per run
PROBE_BATCHES = 4  # micro-batches in the fixed sample those checks score


class TrialFailed(RuntimeError):
    """Training went wrong in a way that says something about the hyperparameters (NaN, divergence)."""


@dataclass(frozen=True)
class TrainStats:
    steps: int  # optimizer steps done (fewer than planned when `on_step` stopped the run)
    seconds: float
    tokens: int  # real tokens through the model (padding excluded)
    pad_fraction: float  # padded share of all positions
    first_loss: float
    last_loss: float
    stopped: bool = False  # `on_step` asked to stop before the last step

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True)
class Progress:
    """Where training stands after an optimizer step: what `on_step` gets (progress output, intermediate reports)."""

    step: int  # optimizer steps done, 1-based
    steps: int  # planned
    loss: float  # this step's training loss (mean over its response tokens)
    tokens: int  # real tokens seen so far
    seconds: float  # since training started
    #: The loss of the fixed probe sample now (no dropout, no gradients): comparable between steps and trials.
    probe_loss: Callable[[], float]


def total_steps(n_sequences: int, cfg: LLMConfig) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_sequences / cfg.batch_size))


def lr_factor(step: int, steps: int, warmup_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based): linear warmup, cosine to 0."""
    warmup = math.ceil(warmup_ratio * steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train(model: Any, seqs: Sequence[Tokenized], cfg: LLMConfig, device: torch.device, pad_id: int,
          autocast_dtype: torch.dtype = torch.float32,
          on_step: Callable[[Progress], bool | None] | None = None) -> TrainStats:
    """Train the parameters of `model` that require grad; raise TrialFailed on a NaN or diverging loss.

    `on_step(progress)` is called after every optimizer step (progress output, intermediate reports); when it
    returns False training stops there (a pruned trial), with `stopped` set in the stats.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = total_steps(len(seqs), cfg)
    accum = cfg.batch_size // cfg.micro_batch_size
    batches = micro_batches(seqs, cfg.micro_batch_size, pad_id, np.random.default_rng(cfg.seed))
    use_autocast = autocast_dtype != torch.float32
    model.train()
    tokens = pad = 0
    first = last = math.nan
    # Divergence is judged on a fixed random sample: length-grouped batches differ too much in loss.
    probe = _probe_batches(seqs, cfg, pad_id)
    limit = cfg.divergence_factor * _probe_loss(model, probe, device, autocast_dtype)
    check_every = max(1, steps // PROBES)
    start = time.perf_counter()
    done, stopped = 0, False
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * lr_factor(step, steps, cfg.warmup_ratio)
        group_batches = [next(batches) for _ in range(accum)]
        n_targets = max(1, sum(b.n_targets for b in group_batches))
        loss_sum = 0.0
        for batch in group_batches:
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                loss = _summed_loss(model, batch, device) / n_targets
            loss.backward()
            loss_sum += float(loss.detach())
            tokens += batch.n_tokens
            pad += batch.n_pad
        if not math.isfinite(loss_sum):
            raise TrialFailed(f"loss is {loss_sum} at step {step + 1} of {steps}")
        if step == 0:
            first = loss_sum
        last = loss_sum
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % check_every == 0 and _probe_loss(model, probe, device, autocast_dtype) > limit:
            raise TrialFailed(f"loss diverged by step {step + 1} of {steps}: the loss of a fixed sample rose above "
                              f"{cfg.divergence_factor:g} x its start {limit / cfg.divergence_factor:.3g}")
        done = step + 1
        if on_step is not None:
            progress = Progress(done, steps, loss_sum, tokens, time.perf_counter() - start,
                                lambda: _probe_loss(model, probe, device, autocast_dtype))
            if on_step(progress) is False:
                stopped = True
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainStats(done, seconds, tokens, pad / max(1, tokens + pad), first, last, stopped)


def _probe_batches(seqs: Sequence[Tokenized], cfg: LLMConfig, pad_id: int) -> list[Batch]:
    """A random sample of the data, drawn apart from the training order so that training sees the same batches."""
    rng = np.random.default_rng(cfg.seed + 1)
    idx = rng.choice(len(seqs), size=min(len(seqs), PROBE_BATCHES * cfg.micro_batch_size), replace=False)
    return [collate([seqs[i] for i in idx[k:k + cfg.micro_batch_size]], pad_id)
            for k in range(0, len(idx), cfg.micro_batch_size)]


def _probe_loss(model: Any, probe: list[Batch], device: torch.device, autocast_dtype: torch.dtype) -> float:
    """Mean response-token loss of the probe sample without dropout or gradients; inf when not finite."""
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
        total = sum(float(_summed_loss(model, batch, device)) for batch in probe)
    model.train()
    loss = total / max(1, sum(batch.n_targets for batch in probe))
    return loss if math.isfinite(loss) else math.inf


def _summed_loss(model: Any, batch: Batch, device: torch.device) -> torch.Tensor:
    """Sum of next-token cross-entropies over response tokens, in fp32."""
    ids = batch.input_ids.to(device, non_blocking=True)
    mask = batch.attention_mask.to(device, non_blocking=True)
    labels = batch.labels.to(device, non_blocking=True)
    logits = model(input_ids=ids, attention_mask=mask).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=IGNORE, reduction="sum")
