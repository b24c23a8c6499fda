"""The LLM objective: one trial LoRA-tunes the base model with the proposed hyperparameters and scores it.

`make_objective(options)` is what `resolve_objective("llm", options)` returns. A trial runs in a child
process of its MPI worker, on the device that worker was given, and returns every task metric with its
stderr, the training and scoring costs, and the objective's key. Called with `report` (by pbo's workers), it
reports a quick score at the `eval_at` fractions of the training and stops when told to (reports.py).

Example (the embedded tiny study, about ten seconds on one CPU core):
    >>> objective = make_objective({"model": "tiny", "dataset": "tiny", "task_dir": "tiny",
    ...                             "tasks": ["hellaswag_tiny"], "objective": "hellaswag_tiny/acc"})
    >>> metrics = objective.function({"lora_rank": 8, "learning_rate": 3e-3})  # doctest: +SKIP
    >>> metrics["hellaswag_tiny/acc"] > 0.6  # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import logging
import resource
import warnings
from typing import Any, Callable, Mapping

import torch

from pbo.objectives import Objective, ObjectiveError
from pbo.space import Space
from pbo.objectives.llm.adapters import keep_adapter
from pbo.objectives.llm.config import TUNABLE, LLMConfig, first_line
from pbo.objectives.llm.data import load_records, tokenize
from pbo.objectives.llm.evaluate import check_tasks, score
from pbo.objectives.llm.model import add_lora, check_model, compute_dtype, load_model, load_tokenizer, pick_device
from pbo.objectives.llm.reports import Reporter, objective_value
from pbo.objectives.llm.train import train

#: The reference study's search space (DESIGN.md), with the learning rate cut to the range that trains.
REFERENCE_SPACE = {
    "lora_rank": {"type": "int", "low": 2, "high": 64},
    "lora_alpha": {"type": "int", "low": 1, "high": 64},
    "lora_dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
}


def make_objective(options: Mapping[str, Any] | None) -> Objective:
    cfg = LLMConfig.from_mapping(options)
    return Objective(name="llm", function=functools.partial(run_trial, cfg), key=cfg.key, minimize=False,
                     space=REFERENCE_SPACE, check=functools.partial(check, cfg),
                     baseline=functools.partial(run_baseline, cfg))


def check(cfg: LLMConfig, space: Space) -> None:
    """Start-up validation on the master: every search-space variable sets a training field, and the
    resources load."""
    unknown = [name for name in space.names if name not in TUNABLE]
    if unknown:
        raise ObjectiveError(f"llm objective: search-space variable(s) {unknown} map to no training setting "
                             f"(tunable: {', '.join(TUNABLE)})")
    check_resources(cfg)


def check_resources(cfg: LLMConfig) -> None:
    """The model, its LoRA targets, the dataset and the tasks all load."""
    check_model(cfg)
    try:
        load_records(cfg.resolve("dataset"), cfg.dataset_split, cfg.max_examples)
    except ObjectiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub and network errors all mean "cannot read this dataset"
        raise ObjectiveError(f"llm objective: cannot load dataset {cfg.dataset!r}: {first_line(exc)}") from None
    check_tasks(cfg)


def fine_tune(cfg: LLMConfig, report: Callable[..., bool] | None = None
              ) -> tuple[Any, Any, dict[str, float], Reporter | None]:
    """(LoRA model, tokenizer, training metrics, the reporter when it reported) for one configuration."""
    device = _prepare_device(cfg)
    tokenizer = load_tokenizer(cfg.resolve("model"))
    records = load_records(cfg.resolve("dataset"), cfg.dataset_split, cfg.max_examples)
    seqs = tokenize(records, tokenizer, cfg.prompt_template, cfg.max_seq_length)
    model = load_model(cfg, device)
    torch.manual_seed(cfg.seed)  # after everything that may re-seed: the adapter's A matrices and dropout
    model = add_lora(model, cfg)
    reporter = Reporter(cfg, report, model, tokenizer) if report is not None and cfg.eval_at else None
    stats = train(model, seqs, cfg, device, tokenizer.pad_token_id, compute_dtype(cfg.precision, device), reporter)
    metrics = {"train_seconds": stats.seconds, "train_tokens_per_s": stats.tokens_per_second,
               "train_steps": float(stats.steps), "pad_fraction": stats.pad_fraction,
               "train_loss_first": stats.first_loss, "train_loss_last": stats.last_loss}
    return model, tokenizer, metrics, reporter


def run_trial(cfg: LLMConfig, params: Mapping[str, Any], report: Callable[..., bool] | None = None
              ) -> dict[str, float]:
    """Metrics of one trial; raises TrialFailed (NaN or diverging loss) with the reason. With `report` it reports
    quick scores while it trains; told to stop, it returns at once with its last report (no final evaluation)."""
    cfg = cfg.with_params(params)
    quiet_libraries()
    model, tokenizer, metrics, reporter = fine_tune(cfg, report)
    if reporter is not None and reporter.stopped:
        return {**metrics, **reporter.last}
    metrics.update(scored(model, tokenizer, cfg))
    if cfg.keep_top_k:
        keep_adapter(model, cfg, dict(params), metrics)
    return metrics


def run_baseline(cfg: LLMConfig) -> dict[str, float]:
    """Metrics of the untuned base model (the study's trial 0)."""
    quiet_libraries()
    device = _prepare_device(cfg)
    return scored(load_model(cfg, device), load_tokenizer(cfg.resolve("model")), cfg)


def quiet_libraries() -> None:
    """Keep a trial's output to pbo's own lines: the master prints one line per finished trial, and progress
    bars, deprecation notices and lm-eval's notes from every worker would bury them."""
    import lm_eval.evaluator
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    # lm-eval runs `git describe` in the current folder after every evaluation (for its results' metadata,
    # unused here); outside a git checkout git then prints "fatal: not a git repository" for every trial.
    lm_eval.evaluator.get_git_commit_hash = lambda: None


def _prepare_device(cfg: LLMConfig) -> torch.device:
    device = pick_device()
    if device.type == "cpu" and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return device


def scored(model: Any, tokenizer: Any, cfg: LLMConfig) -> dict[str, float]:
    """Task metrics, eval seconds, peak memory and the objective's key."""
    metrics, seconds = score(model, tokenizer, cfg)
    missing = [m for m in cfg.objective_weights if m not in metrics]
    if missing:
        raise ObjectiveError(f"llm objective: objective metric(s) {missing} not reported by lm-eval "
                             f"(reported: {', '.join(sorted(metrics))})")
    metrics["eval_seconds"] = seconds
    metrics["peak_memory_mb"] = _peak_memory_mb()
    if cfg.key not in metrics:  # a weighted mean
        metrics[cfg.key] = objective_value(metrics, cfg)
    return metrics


def _peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch, or on the CPU the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

