"""Instruction data: Alpaca-format records -> token ids with the prompt masked -> length-grouped padded batches.

Grouping sequences of similar length before padding keeps the padded share of every batch small, which is
most of the training throughput on real data (Alpaca responses range from a few tokens to hundreds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from pbo.objectives import ObjectiveError

IGNORE = -100  # label of positions left out of the loss (prompt and padding)

ALPACA = {
    "input": ("Below is an instruction that describes a task, paired with an input that provides further context. "
              "Write a response that appropriately completes the request.\n\n"
              "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"),
    "no_input": ("Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"),
}


def format_prompt(template: str, record: dict[str, Any]) -> str:
    """The prompt of one record; `alpaca` picks the with-input or no-input variant as Alpaca does."""
    instruction, extra = record.get("instruction", ""), record.get("input", "") or ""
    if template == "alpaca":
        return ALPACA["input" if extra else "no_input"].format(instruction=instruction, input=extra)
    return template.format(instruction=instruction, input=extra)


def is_local(source: str) -> bool:
    return source.endswith((".json", ".jsonl")) or Path(source).exists()


def read_local(source: str) -> list[dict[str, Any]]:
    """Records of a JSON list or a JSON-lines file."""
    path = Path(source)
    if not path.is_file():
        raise ObjectiveError(f"llm objective: dataset file {source!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ObjectiveError(f"llm objective: dataset file {source!r} is not valid JSON ({exc})") from None
    if not isinstance(records, list):
        raise ObjectiveError(f"llm objective: dataset file {source!r} must hold a list of records")
    return records


def load_records(source: str, split: str = "train", max_examples: int = 0) -> list[dict[str, Any]]:
    """Alpaca records (instruction, input, output) from a local file or a Hugging Face dataset."""
    if is_local(source):
        records = read_local(source)
    else:
        import datasets  # only for hub datasets: importing it costs a second

        records = list(datasets.load_dataset(source, split=split))
    if max_examples:
        records = records[:max_examples]
    if not records:
        raise ObjectiveError(f"llm objective: dataset {source!r} has no records")
    bad = next((r for r in records if not {"instruction", "output"} <= set(r)), None)
    if bad is not None:
        raise ObjectiveError(f"llm objective: dataset {source!r} is not Alpaca format: a record lacks "
                             f"'instruction' or 'output' (keys {sorted(bad)})")
    return records


@dataclass(frozen=True)
class Tokenized:
    """One training sequence: token ids and how many leading ids are prompt (masked from the loss)."""

    ids: list[int]
    n_prompt: int


def tokenize(records: Sequence[dict[str, Any]], tokenizer: Any, template: str, max_len: int) -> list[Tokenized]:
    """Prompt and response tokenized apart (so the prompt length is exact), EOS appended, truncated."""
    prompts = [format_prompt(template, r) for r in records]
    prompt_ids = tokenizer(prompts)["input_ids"]
    response_ids = tokenizer([str(r["output"]) for r in records], add_special_tokens=False)["input_ids"]
    out = []
    for p, r in zip(prompt_ids, response_ids):
        ids = (p + r + [tokenizer.eos_token_id])[:max_len]
        if len(ids) > len(p):  # a prompt that fills max_len leaves nothing to learn
            out.append(Tokenized(ids, len(p)))
    if not out:
        raise ObjectiveError(f"llm objective: every prompt is at least max_seq_length={max_len} tokens long")
    return out


def grouped_order(lengths: Sequence[int], micro_batch_size: int, rng: np.random.Generator,
                  group: int = 64) -> list[np.ndarray]:
    """Micro-batches of indices: shuffle, sort within windows of `group` micro-batches by length, shuffle batches.

    Sorting only within windows keeps each epoch random while batches hold sequences of similar length.
    """
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    window = group * micro_batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + micro_batch_size] for i in range(0, len(chunk), micro_batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class Batch:
    input_ids: torch.Tensor  # (b, t)
    attention_mask: torch.Tensor  # (b, t)
    labels: torch.Tensor  # (b, t), IGNORE outside responses
    n_tokens: int  # real (non-pad) tokens
    n_pad: int
    n_targets: int  # tokens that count in the loss


def collate(seqs: Sequence[Tokenized], pad_id: int) -> Batch:
    """Right-pad to the longest sequence of the batch (dynamic padding)."""
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for row, s in enumerate(seqs):
        n = len(s.ids)
        ids[row, :n] = torch.tensor(s.ids)
        mask[row, :n] = 1
        labels[row, s.n_prompt:n] = ids[row, s.n_prompt:n]
    n_tokens = int(mask.sum())
    # Labels shift by one inside the loss, so the first response token is predicted from the last prompt token.
    n_targets = int((labels[:, 1:] != IGNORE).sum())
    return Batch(ids, mask, labels, n_tokens, ids.numel() - n_tokens, n_targets)


def micro_batches(seqs: Sequence[Tokenized], micro_batch_size: int, pad_id: int,
                  rng: np.random.Generator) -> Iterator[Batch]:
    """Endless length-grouped micro-batches, reshuffled every epoch."""
    lengths = [len(s.ids) for s in seqs]
    while True:
        for idx in grouped_order(lengths, micro_batch_size, rng):
            yield collate([seqs[i] for i in idx], pad_id)
