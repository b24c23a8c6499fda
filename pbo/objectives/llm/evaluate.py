"""Scoring with lm-eval, in process, on the model object just trained (no checkpoint round-trip).

Tasks come from lm-eval's built-in set (`hellaswag`, `mmlu`, ...) or, when `task_dir` is set, only from that
folder of task YAMLs (indexing the built-in set costs seconds, the folder alone milliseconds). Metrics come
back as `task/metric` (e.g. `hellaswag/acc_norm`, `hellaswag/acc_norm_stderr`) for the configured tasks;
a group such as `mmlu` reports its aggregate, not its 57 subjects.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pbo.objectives import ObjectiveError
from pbo.objectives.llm.config import LLMConfig, first_line


def task_manager(cfg: LLMConfig) -> Any:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)

    task_dir = cfg.resolve("task_dir")
    if not task_dir:
        return TaskManager()
    if not os.path.isdir(task_dir):
        raise ObjectiveError(f"llm objective: task_dir {task_dir!r} is not a folder")
    return TaskManager(include_path=task_dir, include_defaults=False)


def check_tasks(cfg: LLMConfig) -> None:
    """Every task is known and its data loads (downloads and caches hub datasets once, on the master)."""
    from lm_eval.tasks import get_task_dict

    manager = task_manager(cfg)
    unknown = [t for t in cfg.tasks if t not in manager.all_tasks]
    if unknown:
        where = f"task_dir {cfg.resolve('task_dir')!r}" if cfg.task_dir else "lm-eval's built-in tasks"
        raise ObjectiveError(f"llm objective: unknown task(s) {unknown} in {where}")
    try:
        get_task_dict(list(cfg.tasks), manager)
    except Exception as exc:  # noqa: BLE001 - any failure to build a task means it cannot score trials
        raise ObjectiveError(f"llm objective: cannot load task(s) {list(cfg.tasks)}: {first_line(exc)}") from None


def score(model: Any, tokenizer: Any, cfg: LLMConfig) -> tuple[dict[str, float], float]:
    """(metrics, seconds) of the configured tasks on `model` (a transformers or peft model)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    class QuietHFLM(HFLM):
        """No progress bar per trial in every worker's output."""

        def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list:
            return super().loglikelihood(requests, disable_tqdm=True)

    model.eval()
    start = time.perf_counter()
    lm = QuietHFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.eval_batch_size)
    limit = None if cfg.limit == 0 else (int(cfg.limit) if cfg.limit >= 1 else cfg.limit)
    # bootstrap_iters=1: closed-form stderr for mean metrics (acc) without bootstrap resampling.
    out = lm_eval.simple_evaluate(model=lm, tasks=list(cfg.tasks), num_fewshot=cfg.num_fewshot, limit=limit,
                                  task_manager=task_manager(cfg), bootstrap_iters=1, log_samples=False,
                                  verbosity="ERROR")
    seconds = time.perf_counter() - start
    return metrics_of(out["results"], cfg.tasks), seconds


def metrics_of(results: dict[str, dict[str, Any]], tasks: tuple[str, ...]) -> dict[str, float]:
    """`task/metric` -> value from lm-eval's `results` (keys `metric,filter`); the `none` filter is dropped."""
    metrics = {}
    for task in tasks:
        for key, value in results.get(task, {}).items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            metric, filt = key.split(",", 1)
            name = metric if filt == "none" else f"{metric}_{filt}"
            metrics[f"{task}/{name}"] = float(value)
    return metrics
