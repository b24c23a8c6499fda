"""Base model, tokenizer and LoRA adapter, on the device this process was given.

The runtime pins each worker to its GPU through CUDA_VISIBLE_DEVICES, so the device is simply `cuda` when one
is visible and the CPU otherwise. On a GPU the base weights are bf16 and attention is SDPA; the adapter stays
fp32 (peft's default), so the optimizer never updates bf16 weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pbo.objectives import ObjectiveError
from pbo.objectives.llm.config import LLMConfig, first_line


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the base weights and of autocast: `auto` is bf16 on a GPU and fp32 on the CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_tokenizer(name: str) -> Any:
    """The model's tokenizer with a pad token (Llama ships none; the EOS pads, masked everywhere it pads)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: LLMConfig, device: torch.device) -> Any:
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(cfg.precision, device)
    model = AutoModelForCausalLM.from_pretrained(cfg.resolve("model"), dtype=dtype, attn_implementation="sdpa")
    model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()  # the frozen embeddings would otherwise cut the graph
    return model


def add_lora(model: Any, cfg: LLMConfig) -> Any:
    """Wrap the base model with a fresh adapter; peft starts B at zero, so the wrapped model equals the base."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def missing_modules(model: torch.nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Target names that match no module of the model (peft matches a name or a dotted suffix)."""
    names = [name for name, _ in model.named_modules()]
    return [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]


def check_model(cfg: LLMConfig) -> None:
    """The model is reachable and has every LoRA target module: reads the config, builds weights on `meta`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    name = cfg.resolve("model")
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        raise ObjectiveError(f"llm objective: model folder {name!r} does not exist")
    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - hub, network and parse errors all mean "cannot load this model"
        raise ObjectiveError(f"llm objective: cannot load model {name!r}: {first_line(exc)}") from None
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    missing = missing_modules(skeleton, cfg.target_modules)
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ObjectiveError(f"llm objective: target module(s) {missing} not in model {name!r} "
                             f"(its linear layers: {', '.join(linear)})")

