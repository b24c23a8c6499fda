"""One optimization run as the figures see it, and the quantities every figure and table derives from it.

A `Run` is plain arrays (one entry per finished trial, in the order trials finished) plus what the log's
attributes say about the study (its sense and known optimum are read from the log, never recomputed). `load_run` builds it from an HDF5 log through `pbo.log.read`, so it works on
finished logs and on live ones still being written; tests and notebooks can also build one by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pbo.log import read
from pbo.log.storage import LogError
from pbo.space import Space

OK, FAILED, TIMEOUT, PRUNED = "ok", "failed", "timeout", "pruned"


class AnalysisError(ValueError):
    """A log the analysis cannot use; the message names the file and the problem in one line."""


@dataclass
class Run:
    """A run's trials as arrays of equal length: `trial_id`, `u` and `x` (n x d), `value`, `status`, `worker`,
    `t_submit`, `t_start`, `t_end` (seconds), `error`, plus one array per metric in `metrics`.

    Trial 0, when present, is the objective's baseline (e.g. the untuned LLM): it is not an optimizer trial,
    so `trials` excludes it; `baseline` holds its metrics and `baseline_span` its (worker, t_start, t_end), which
    count as busy worker time.

    `reports` holds the trials' intermediate reports (columns `trial_id`, `step`, `fidelity`, `value`, `t` and
    one per report metric; each trial's latest attempt only), empty when the objective never reported.
    """

    name: str
    algorithm: str
    space: Space
    trials: dict[str, np.ndarray]
    seed: int = 0
    objective: str = ""
    minimize: bool = False
    n_workers: int = 0
    gpus_per_worker: int = 1
    optimum: float | None = None
    metrics: list[str] = field(default_factory=list)
    baseline: dict[str, float] | None = None
    baseline_span: tuple[int, float, float] | None = None
    tree: dict[str, np.ndarray] | None = None
    path: str = ""
    reports: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {key: len(col) for key, col in self.trials.items()}
        if len(set(lengths.values())) > 1:
            raise AnalysisError(f"{self.name}: trial columns differ in length {lengths}")
        self.trials.setdefault("status", np.full(len(self), OK))
        if not self.n_workers:
            self.n_workers = len(set(self.trials.get("worker", np.zeros(len(self), int)).tolist())) or 1

    def __len__(self) -> int:
        return len(self.trials["value"])

    @property
    def ok(self) -> np.ndarray:
        return (self.trials["status"] == OK) & np.isfinite(self.trials["value"])

    def score(self, values: np.ndarray) -> np.ndarray:
        """Values turned so that larger is better (the objective may be minimized)."""
        return -values if self.minimize else values

    def best_so_far(self) -> np.ndarray:
        """After each finished trial, the best value among the OK ones so far (NaN before the first)."""
        score = np.where(self.ok, self.score(self.trials["value"]), -np.inf)
        best = np.maximum.accumulate(score) if len(score) else score
        return self.score(np.where(np.isfinite(best), best, np.nan))

    def best_index(self) -> int | None:
        if not self.ok.any():
            return None
        score = np.where(self.ok, self.score(self.trials["value"]), -np.inf)
        return int(np.argmax(score))

    def best_params(self) -> dict[str, Any]:
        i = self.best_index()
        return {} if i is None else self.space.from_unit(np.clip(self.trials["u"][i], 0.0, 1.0))

    def reached(self, threshold: float) -> tuple[int | None, float | None]:
        """Evaluations and seconds after which the best value first reaches `threshold` (None when never)."""
        best = self.score(self.best_so_far())
        hit = np.flatnonzero(best >= self.score(np.float64(threshold)) - 1e-12 * max(1.0, abs(threshold)))
        if not len(hit):
            return None, None
        return int(hit[0]) + 1, float(self.trials["t_end"][hit[0]])

    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(worker, t_start, t_end) of every piece of worker time: the trials, then the baseline if logged."""
        worker, start, end = self.trials["worker"], self.trials["t_start"], self.trials["t_end"]
        if self.baseline_span is None:
            return worker, start, end
        return tuple(np.append(column, extra) for column, extra in zip((worker, start, end), self.baseline_span))

    def busy_seconds(self) -> float:
        _, start, end = self.spans()
        span = end - start
        return float(np.nansum(np.where(span > 0, span, 0.0)))

    def makespan(self) -> float:
        ends = self.trials["t_end"]
        return float(np.nanmax(ends)) if len(ends) and np.isfinite(ends).any() else 0.0

    def utilization(self) -> float:
        """Busy worker time over the workers' available time (workers x makespan)."""
        span = self.makespan()
        return self.busy_seconds() / (self.n_workers * span) if span > 0 else math.nan

    def gpu_hours(self) -> float:
        """GPU time trials held, in hours (0 when every trial ran on the CPU)."""
        devices = self.trials.get("device")  # pbo.gpu labels: "gpu:0,1@host" or "cpu@host"
        if devices is None or not any(str(d).startswith("gpu") for d in devices):
            return 0.0
        return self.busy_seconds() * self.gpus_per_worker / 3600.0

    def count(self, status: str) -> int:
        return int(np.sum(self.trials["status"] == status))

    @property
    def has_reports(self) -> bool:
        return len(self.reports.get("trial_id", ())) > 0

    def curve(self, trial_id: int) -> dict[str, np.ndarray]:
        """One trial's reports in the order they came (empty arrays when it sent none)."""
        rows = np.flatnonzero(self.reports["trial_id"] == trial_id) if self.has_reports else np.array([], int)
        return {name: column[rows] for name, column in self.reports.items()}


def load_run(path: str | Path) -> Run:
    """Read an HDF5 log written by pbo (finished, live or left by a killed run) into a `Run`."""
    try:
        data = read(path)
    except LogError as exc:  # names the file and the problem
        raise AnalysisError(str(exc).splitlines()[0]) from None
    return run_from_log(data, Path(path))


def run_from_log(data: Any, path: Path) -> Run:
    attrs, config = data.attrs, data.config
    trials = {key: np.asarray(col) for key, col in data.trials.items()}
    baseline = span = None
    if len(trials.get("trial_id", ())) and (trials["trial_id"] == 0).any():
        i = int(np.flatnonzero(trials["trial_id"] == 0)[0])
        baseline = {m: float(trials[m][i]) for m in data.metrics if np.isfinite(trials[m][i])}
        span = (int(trials["worker"][i]), float(trials["t_start"][i]), float(trials["t_end"][i]))
        keep = trials["trial_id"] != 0
        trials = {key: col[keep] for key, col in trials.items()}
    reports = {}
    if len(data.reports.get("trial_id", ())):
        keep = data.latest_attempt() & (data.reports["trial_id"] != 0)
        order = np.argsort(data.reports["seq"][keep], kind="stable")
        reports = {key: np.asarray(col)[keep][order] for key, col in data.reports.items() if key != "seq"}
    objective = str(config.get("objective", ""))
    return Run(
        name=path.stem, algorithm=str(attrs["algorithm"]), space=data.space, trials=trials, seed=int(attrs["seed"]),
        objective=objective, minimize=data.minimize, n_workers=int(attrs.get("n_workers", 0) or 0),
        gpus_per_worker=int(config.get("gpus_per_worker", 1) or 1), optimum=data.optimum,
        metrics=list(data.metrics), baseline=baseline, baseline_span=span, tree=data.tree, path=str(path),
        reports=reports)
