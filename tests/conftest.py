"""Fixtures shared by the test modules. Helpers that are plain code (running `python -m pbo.run`, the thread
backend, the faulty objectives, the log tests' ask/tell loop) are modules of this folder, which pytest puts on
sys.path: `pbo_process`, `thread_workers`, `faulty`, `log_support`."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import yaml

from pbo.config import DEFAULT_STUDY
from pbo_process import alive as _alive


@pytest.fixture
def tiny_study() -> dict[str, Any]:
    """The embedded tiny LLM study (`pbo/studies/tiny_llm.yaml`) as a fresh dict each time, to shorten or change."""
    return yaml.safe_load(DEFAULT_STUDY.read_text())


@pytest.fixture
def alive() -> Callable[[int], bool]:
    """Whether a process still runs (a zombie waiting for its parent to reap it does not)."""
    return _alive
