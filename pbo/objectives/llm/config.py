"""The LLM study's configuration: the `objective_options:` mapping of a study YAML, validated once.

Hyperparameters of the search space are training fields of this config, matched by name
(`lora_rank`, `learning_rate`, ...): `with_params` returns the config a trial trains with.

Example:
    >>> cfg = LLMConfig.from_mapping({"model": "tiny", "tasks": ["hellaswag_tiny"],
    ...                               "objective": "hellaswag_tiny/acc"})
    >>> cfg.with_params({"lora_rank": 4, "learning_rate": 1e-3}).lora_rank
    4
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pbo.objectives import ObjectiveError

#: The shipped tiny study's assets: `model: tiny`, `dataset: tiny`, `task_dir: tiny` point here.
TINY_DIR = Path(__file__).parent / "data" / "tiny"
TINY_PATHS = {"model": TINY_DIR / "model", "dataset": TINY_DIR / "alpaca_tiny.jsonl", "task_dir": TINY_DIR / "tasks"}

#: Fields a search-space variable may set, by name. Everything else is fixed for the study.
TUNABLE = (
    "lora_rank", "lora_alpha", "lora_dropout", "learning_rate", "weight_decay", "warmup_ratio",
    "epochs", "max_steps", "batch_size", "micro_batch_size", "max_seq_length", "max_grad_norm", "seed",
)


@dataclass(frozen=True)
class LLMConfig:
    """One LoRA fine-tune + lm-eval scoring. Defaults are the reference study (LLaMA-3.2-1B, Alpaca-cleaned)."""

    # Base model and data.
    model: str = "meta-llama/Llama-3.2-1B"  # hub id, local folder, or `tiny`
    dataset: str = "yahma/alpaca-cleaned"  # hub dataset, local Alpaca-format .json/.jsonl, or `tiny`
    dataset_split: str = "train"
    max_examples: int = 0  # 0: the whole split
    prompt_template: str = "alpaca"  # `alpaca`, or a format string with {instruction} and {input}
    max_seq_length: int = 512
    # Optimisation.
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 16  # sequences per optimizer step
    micro_batch_size: int = 4  # sequences per forward pass; batch_size / micro_batch_size accumulation steps
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03  # linear warmup, then cosine decay to zero
    max_grad_norm: float = 1.0
    divergence_factor: float = 3.0  # a fixed sample's loss above this multiple of its start fails the trial
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32
    gradient_checkpointing: bool = False
    cpu_threads: int = 0  # torch threads of a trial on the CPU; 0: torch's default (all cores)
    seed: int = 0
    # LoRA.
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "lm_head")
    # Scoring.
    tasks: tuple[str, ...] = ("hellaswag", "mmlu")
    task_dir: str = ""  # a folder of lm-eval task YAMLs (include_path); empty: lm-eval's built-in tasks
    num_fewshot: int = 0
    limit: float = 0  # items per task: 0 all, < 1 a fraction, >= 1 a count
    eval_batch_size: int = 32
    #: Fractions of the training at which a reporting trial scores a quick lm-eval (`eval_limit` items of the
    #: objective's tasks) and reports it (docs/llm.md, "Intermediate reports"); empty: no reports.
    eval_at: tuple[float, ...] = (0.125, 0.25, 0.5)
    #: Items per task of a quick lm-eval: >= 1 a count, < 1 a fraction (lm-eval applies it to each subtask of
    #: a group: a fraction keeps MMLU's 57 subjects small).
    eval_limit: float = 500
    #: One metric `task/metric`, or a weighted mean {metric: weight}.
    objective: str | Mapping[str, float] = "hellaswag/acc_norm"
    # Outputs.
    keep_top_k: int = 0  # adapters of the k best trials kept under adapter_dir
    adapter_dir: str = "adapters"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "LLMConfig":
        """Validate a YAML mapping; unknown keys and bad values raise ObjectiveError naming the key."""
        options = dict(options or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ObjectiveError(f"llm objective: unknown option(s) {unknown} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, value in options.items():
            if name in ("tasks", "target_modules"):
                value = (value,) if isinstance(value, str) else tuple(value)
            elif name == "eval_at":
                value = _fractions(value)
            elif name == "objective":
                value = value if isinstance(value, str) else dict(value)
            values[name] = _coerce(known[name], value)
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("max_seq_length", "batch_size", "micro_batch_size", "lora_rank", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ObjectiveError(f"llm objective: {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.micro_batch_size:
            raise ObjectiveError(f"llm objective: batch_size {self.batch_size} is not a multiple of "
                                 f"micro_batch_size {self.micro_batch_size}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ObjectiveError("llm objective: give epochs > 0 or max_steps > 0")
        if not 0 <= self.lora_dropout < 1:
            raise ObjectiveError(f"llm objective: lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not (self.learning_rate >= 0 and math.isfinite(self.learning_rate)):
            raise ObjectiveError(f"llm objective: learning_rate must be >= 0, got {self.learning_rate}")
        if any(not 0 < f < 1 for f in self.eval_at) or list(self.eval_at) != sorted(set(self.eval_at)):
            raise ObjectiveError(f"llm objective: eval_at must be increasing fractions of the training in (0, 1), "
                                 f"got {list(self.eval_at)}")
        if not self.eval_limit > 0:
            raise ObjectiveError(f"llm objective: eval_limit must be > 0, got {self.eval_limit}")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ObjectiveError(f"llm objective: precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")
        if not self.tasks:
            raise ObjectiveError("llm objective: tasks is empty: name at least one lm-eval task")
        if not self.target_modules:
            raise ObjectiveError("llm objective: target_modules is empty: name at least one module for LoRA")
        if self.prompt_template != "alpaca" and "{instruction}" not in self.prompt_template:
            raise ObjectiveError("llm objective: prompt_template must be 'alpaca' or contain {instruction}")
        weights = self.objective_weights
        if not weights or any(not math.isfinite(w) or w <= 0 for w in weights.values()):
            raise ObjectiveError(f"llm objective: objective weights must be positive, got {self.objective!r}")
        for metric in weights:
            task = metric.split("/", 1)[0]
            if "/" not in metric or task not in self.tasks:
                raise ObjectiveError(f"llm objective: objective metric {metric!r} is not 'task/metric' for a task "
                                     f"in tasks {list(self.tasks)}")

    @property
    def objective_weights(self) -> dict[str, float]:
        return {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)

    @property
    def objective_tasks(self) -> tuple[str, ...]:
        """The tasks the objective's metrics come from (a quick evaluation scores only these), in `tasks` order."""
        needed = {metric.split("/", 1)[0] for metric in self.objective_weights}
        return tuple(task for task in self.tasks if task in needed)

    @property
    def key(self) -> str:
        """The metric the optimizer reads: the single metric itself, or `objective` for a weighted mean."""
        return self.objective if isinstance(self.objective, str) else "objective"

    def resolve(self, name: str) -> str:
        """A path option with `tiny` standing for the shipped asset."""
        value = getattr(self, name)
        return str(TINY_PATHS[name]) if value == "tiny" else value

    def with_params(self, params: Mapping[str, Any]) -> "LLMConfig":
        """The config one trial trains with: hyperparameters replace the training fields of the same name."""
        unknown = sorted(set(params) - set(TUNABLE))
        if unknown:
            raise ObjectiveError(f"llm objective: hyperparameter(s) {unknown} map to no training setting")
        known = {f.name: f for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{n: _coerce(known[n], v) for n, v in params.items()})


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: errors here are reported in one line."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fractions(value: Any) -> tuple[float, ...]:
    """`eval_at` from YAML: a list of numbers (or one number)."""
    values = [value] if isinstance(value, (int, float, str)) else list(value or [])
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ObjectiveError(f"llm objective: option 'eval_at': {value!r} is not a list of fractions") from None


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Numbers from YAML or an optimizer (numpy scalars, 5e-4 as a string) into the field's type."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    try:
        if kind == "int":
            if float(value) != int(float(value)):
                raise ValueError(f"{value!r} is not a whole number")
            return int(float(value))
        if kind == "float":
            return float(value)
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        if kind == "str" and not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(f"llm objective: option {f.name!r}: {exc}") from None
    return value
