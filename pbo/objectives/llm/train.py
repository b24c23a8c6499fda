"""A lean fine-tuning loop: AdamW, linear warmup + cosine decay, gradient accumulation, loss on responses only.

A plain torch loop rather than transformers' Trainer: a trial needs none of the Trainer's checkpointing or
logging, and on the tiny CPU study its per-step overhead would be a large share of the trial. The same loop
pre-trains the tiny model (every parameter trainable) and LoRA-tunes it (only the adapter trainable).
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
from pbo.objectives.llm.data import IGNORE, Batch, Tokenized, micro_batches


PROBES = 10  # divergence checks per run


class TrialFailed(RuntimeError):
    """Training went wrong in a way that says something about the hyperparameters (NaN, divergence)."""


@dataclass(frozen=True)
class TrainStats:
    steps: int
    seconds: float
    tokens: int  # real tokens through the model (padding excluded)
    pad_fraction: float  # padded share of all positions
    first_loss: float
    last_loss: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.nan


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
          on_step: Callable[[int, float], None] | None = None) -> TrainStats:
    """Train the parameters of `model` that require grad; raise TrialFailed on a NaN or diverging loss.

    `on_step(step, loss)` is called after every optimizer step (progress output of long runs).
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
    # Divergence is judged on one fixed batch: batches of similar length differ too much in loss.
    probe = next(batches)
    limit = cfg.divergence_factor * _probe_loss(model, probe, device, autocast_dtype)
    check_every = max(1, steps // PROBES)
    start = time.perf_counter()
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
            raise TrialFailed(f"loss diverged by step {step + 1} of {steps}: a fixed batch's loss rose above "
                              f"{cfg.divergence_factor:g} x its start {limit / cfg.divergence_factor:.3g}")
        if on_step is not None:
            on_step(step, loss_sum)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainStats(steps, seconds, tokens, pad / max(1, tokens + pad), first, last)


def _probe_loss(model: Any, batch: Batch, device: torch.device, autocast_dtype: torch.dtype) -> float:
    """Mean response-token loss of `batch` without dropout or gradients; inf when not finite."""
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
        loss = float(_summed_loss(model, batch, device)) / max(1, batch.n_targets)
    model.train()
    return loss if math.isfinite(loss) else math.inf


def _summed_loss(model: Any, batch: Batch, device: torch.device) -> torch.Tensor:
    """Sum of next-token cross-entropies over response tokens, in fp32."""
    ids = batch.input_ids.to(device, non_blocking=True)
    mask = batch.attention_mask.to(device, non_blocking=True)
    labels = batch.labels.to(device, non_blocking=True)
    logits = model(input_ids=ids, attention_mask=mask).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=IGNORE, reduction="sum")
