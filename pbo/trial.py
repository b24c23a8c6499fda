"""What a finished evaluation brings back to the master: the record the scheduler tells the optimizer and
the log appends as one row of `/trials`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pbo.optimizers.base import TrialState


@dataclass
class TrialResult:
    """One finished trial. Times are seconds since the run started, on the master's clock (t_start and
    t_end as measured by the worker, shifted onto that clock)."""

    trial_id: int
    params: dict[str, Any]
    u: np.ndarray
    status: TrialState
    value: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    worker: int = -1
    device: str = ""
    t_submit: float = math.nan
    t_start: float = math.nan
    t_end: float = math.nan
    error: str = ""
