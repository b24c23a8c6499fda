"""Saved adapters: the k best of a study (`keep_top_k`), and one re-trained adapter (`retrain`).

Trials run in separate processes on separate workers, so the top-k folder is the only shared state: each
trial that makes the cut saves into it and prunes it to k under a file lock. An adapter folder holds
peft's files plus `trial.json` (the hyperparameters and metrics) so it can be read without the HDF5 log.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pbo.objectives.llm.config import LLMConfig

RECORD = "trial.json"


def save_adapter(model: Any, out: Path, params: dict[str, Any], metrics: dict[str, float]) -> None:
    model.save_pretrained(out)
    (out / RECORD).write_text(json.dumps({"params": params, "metrics": metrics}, indent=1, default=float))


def keep_adapter(model: Any, cfg: LLMConfig, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Save this trial's adapter under cfg.adapter_dir if it is among the keep_top_k best by cfg.key."""
    root = Path(cfg.adapter_dir)
    root.mkdir(parents=True, exist_ok=True)
    value = metrics[cfg.key]
    with _locked(root / ".lock"):
        kept = sorted(_kept(root, cfg.key), key=lambda item: -item[0])
        if len(kept) >= cfg.keep_top_k and value <= kept[cfg.keep_top_k - 1][0]:
            return
        save_adapter(model, root / f"adapter-{time.time_ns()}-{os.getpid()}", params, metrics)
        for _, folder in kept[cfg.keep_top_k - 1:]:
            shutil.rmtree(folder, ignore_errors=True)


def _kept(root: Path, key: str) -> list[tuple[float, Path]]:
    out = []
    for record in root.glob(f"adapter-*/{RECORD}"):
        value = json.loads(record.read_text())["metrics"].get(key)
        if isinstance(value, (int, float)):
            out.append((float(value), record.parent))
    return out


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
