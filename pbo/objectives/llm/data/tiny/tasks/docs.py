"""Loaders for the bundled tiny tasks: the JSONL files next to this module, wherever the package lives."""

import json
from pathlib import Path

import datasets

HERE = Path(__file__).parent


def _load(name: str, **_: object) -> datasets.DatasetDict:
    rows = [json.loads(line) for line in (HERE / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def hellaswag_tiny(**kwargs: object) -> datasets.DatasetDict:
    return _load("hellaswag_tiny", **kwargs)


def mmlu_tiny(**kwargs: object) -> datasets.DatasetDict:
    return _load("mmlu_tiny", **kwargs)
