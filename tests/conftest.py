"""Fixtures shared by the test modules. Helpers that are plain code (running `python -m pbo.run`, the thread
backend, the faulty objectives, the log tests' ask/tell loop) are modules of this folder, which pytest puts on
sys.path: `pbo_process`, `thread_workers`, `faulty`, `log_support`."""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
import yaml

from pbo.config import DEFAULT_STUDY


@pytest.fixture
def tiny_study() -> dict[str, Any]:
    """The embedded tiny LLM study (`pbo/studies/tiny_llm.yaml`) as a fresh dict each time, to shorten or change."""
    return yaml.safe_load(DEFAULT_STUDY.read_text())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def alive() -> Callable[[int], bool]:
    """Whether a process still runs (a zombie waiting for its parent to reap it does not)."""
    return _alive
