"""BBOB problems on the unit cube, one benchmark run (sequential or simulated asynchronous) and its record.

Optimizers see f(x) itself (as in COCO: some, such as DIRECT's epsilon rule, are not shift-invariant); the
record keeps the regret f(x) - f_opt of the best point so far, as the list of its improvements, which is
exact and far smaller than one number per evaluation.
"""

from __future__ import annotations

import heapq
import json
import math
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from jobs.bbob.adapters import Adapter, Spec

LOWER, UPPER = -5.0, 5.0  # BBOB's search domain, per coordinate
#: BBOB function groups, as COCO reports them.
GROUPS: dict[str, range] = {
    "separable": range(1, 6),
    "low/moderate conditioning": range(6, 10),
    "high conditioning": range(10, 15),
    "multimodal, adequate structure": range(15, 20),
    "multimodal, weak structure": range(20, 25),
}


def group_of(function: int) -> str:
    return next(name for name, ids in GROUPS.items() if function in ids)


class Problem:
    """BBOB function `function`, instance `instance`, in `dim` dimensions, seen from [0, 1]^D; with `crash` > 0,
    a trial crashes (no value) in a half-space of that share of the cube (`crash_region`)."""

    def __init__(self, function: int, dim: int, instance: int, crash: float = 0.0) -> None:
        import ioh

        self._problem = ioh.get_problem(function, instance=instance, dimension=dim,
                                        problem_class=ioh.ProblemClass.BBOB)
        self.f_opt = float(self._problem.optimum.y)
        self.x_opt = np.asarray(self._problem.optimum.x, dtype=float)
        self.crash = crash_region(self.to_unit(self.x_opt), crash, [function, instance, dim]) if crash else None

    def crashes(self, u: np.ndarray) -> bool:
        """Whether a trial at `u` crashes."""
        if self.crash is None:
            return False
        direction, threshold = self.crash
        return float(np.asarray(u, dtype=float) @ direction) > threshold

    @staticmethod
    def to_x(u: np.ndarray) -> np.ndarray:
        return LOWER + (UPPER - LOWER) * np.clip(np.asarray(u, dtype=float), 0.0, 1.0)

    @staticmethod
    def to_unit(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) - LOWER) / (UPPER - LOWER)

    def __call__(self, u: np.ndarray) -> float:
        return float(self._problem(self.to_x(u)))


def crash_region(optimum: np.ndarray, share: float, seed: list[int]) -> tuple[np.ndarray, float]:
    """A half-space {u: u . direction > threshold} holding `share` of the unit cube (by 4096 uniform points) and
    not the optimum, its direction random for `seed`: where trials crash, as out-of-memory errors and diverged
    losses do at one end of a hyperparameter range, with the best configuration still reachable.

    Example:
        >>> direction, threshold = crash_region(np.full(2, 0.5), 0.3, [1, 1, 2])
        >>> points = np.random.default_rng(0).random((10000, 2))
        >>> round(float(np.mean(points @ direction > threshold)), 1), bool(np.full(2, 0.5) @ direction <= threshold)
        (0.3, True)
    """
    rng = np.random.default_rng([*seed, 7])
    direction = rng.standard_normal(len(optimum))
    direction /= np.linalg.norm(direction)
    points = rng.random((4096, len(optimum)))
    if optimum @ direction > np.quantile(points @ direction, 1.0 - share):
        direction = -direction
    return direction, float(np.quantile(points @ direction, 1.0 - share))


@dataclass(frozen=True)
class Job:
    """What identifies a run; `--reuse` takes a stored run only when every field matches."""

    function: int
    dim: int
    instance: int
    seed: int
    label: str
    algorithm: str
    options: str  # canonical JSON of the options (Spec.options_json)
    budget: int
    workers: int = 1
    sigma: float = 0.5  # of the simulated trial durations; only meaningful when workers > 1
    crash: float = 0.0  # share of the cube where trials crash (`crash_region`)


@dataclass
class Run:
    """A finished run. `improvements` holds [evaluation (1-based), regret] each time the best regret fell."""

    job: Job
    evaluations: int
    improvements: list[list[float]]
    seconds: float
    overhead_ms: float  # wall time of the optimizer (ask, tell, loop) per evaluation, objective excluded
    overhead_cpu_ms: float  # the same in CPU time of the process, which a loaded machine inflates less
    sim_time: float | None = None  # asynchronous mode: simulated time when the last result came back
    max_in_flight: int = 1
    error: str | None = None
    crashes: int = 0  # evaluations that crashed (`Job.crash`)

    def curve(self) -> list[float]:
        """Best regret after each evaluation (length `evaluations`)."""
        out, best, steps = [], math.inf, iter(self.improvements)
        step = next(steps, None)
        for n in range(1, self.evaluations + 1):
            while step is not None and step[0] <= n:
                best, step = step[1], next(steps, None)
            out.append(best)
        return out

    def regret_at(self, n: int) -> float:
        """Best regret after min(n, evaluations) evaluations (inf before the first)."""
        best = math.inf
        for at, regret in self.improvements:
            if at > n:
                break
            best = regret
        return best

    def first_hit(self, target: float) -> int | None:
        """The first evaluation whose best regret is <= target, or None."""
        return next((int(at) for at, regret in self.improvements if regret <= target), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Run":
        return cls(**{**data, "job": Job(**data["job"])})


class BudgetSpent(Exception):
    """Raised by `Recorder.__call__` past the budget: how a callback-driven algorithm (DIRECT) is stopped."""


@dataclass
class Recorder:
    """Counts evaluations, times the objective and keeps the improvements of the best regret."""

    problem: Problem
    budget: int
    evaluations: int = 0
    best: float = math.inf
    improvements: list[list[float]] = field(default_factory=list)
    objective_wall: float = 0.0
    objective_cpu: float = 0.0
    crashes: int = 0

    def evaluate(self, u: np.ndarray) -> float:
        """f at `u`, or NaN where the trial crashes (which the adapters tell as a failure)."""
        if self.problem.crashes(u):
            return math.nan
        wall, cpu = time.perf_counter(), time.process_time()
        value = self.problem(u)
        self.objective_wall += time.perf_counter() - wall
        self.objective_cpu += time.process_time() - cpu
        return value

    def record(self, value: float) -> None:
        self.evaluations += 1
        if math.isnan(value):
            self.crashes += 1
            return
        regret = max(value - self.problem.f_opt, 0.0)
        if regret < self.best:
            self.best = regret
            self.improvements.append([self.evaluations, float(f"{regret:.6g}")])

    def __call__(self, u: np.ndarray) -> float:
        """Evaluate and record at once (sequential runs)."""
        if self.evaluations >= self.budget:
            raise BudgetSpent
        value = self.evaluate(u)
        self.record(value)
        return value


def durations(job: Job) -> Callable[[], float]:
    """Lognormal trial durations with mean 1; the same sequence for every algorithm of a problem and seed."""
    sigma = job.sigma
    rng = np.random.default_rng([job.seed, job.function, job.instance, job.dim])
    mu = -sigma ** 2 / 2
    return lambda: float(rng.lognormal(mu, sigma))


def run_async(adapter: Adapter, recorder: Recorder, workers: int, duration: Callable[[], float]) -> tuple[float, int]:
    """Simulated asynchronous evaluation: up to `workers` trials in flight; when the earliest finishes it is
    told and new points are asked. A None from ask leaves that worker idle until the next result.
    Returns the simulated time of the last result and the most trials ever in flight."""
    heap: list[tuple[float, int, Any, float]] = []
    now, asked, most = 0.0, 0, 0
    while True:
        while len(heap) < workers and asked < recorder.budget:
            point = adapter.ask()
            if point is None:
                break
            token, u = point
            asked += 1
            heapq.heappush(heap, (now + duration(), asked, token, recorder.evaluate(u)))
        most = max(most, len(heap))
        if not heap:  # budget spent, or nothing pending and nothing to propose
            return now, most
        now, _, token, value = heapq.heappop(heap)
        recorder.record(value)
        adapter.tell(token, value)


def run_job(job: Job) -> Run:
    """One run in this process; an exception in the algorithm is recorded in `error`, not raised."""
    warnings.simplefilter("ignore")
    recorder = Recorder(Problem(job.function, job.dim, job.instance, job.crash), job.budget)
    sim_time, most, error = None, 1, None
    # Timed from the optimizer's construction on; imports are done beforehand (see `preload`).
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    try:
        adapter = Spec(job.label, job.algorithm, json.loads(job.options)).build(
            job.dim, job.budget, job.seed, job.workers)
        if job.workers > 1:
            sim_time, most = run_async(adapter, recorder, job.workers, durations(job))
        else:
            try:
                adapter.minimize(recorder, job.budget)
            except BudgetSpent:
                pass
    except Exception as exc:  # noqa: BLE001 - one failing run must not end a long benchmark
        where = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
    wall = time.perf_counter() - start_wall
    cpu = time.process_time() - start_cpu
    n = max(recorder.evaluations, 1)
    return Run(job, recorder.evaluations, recorder.improvements, wall,
               1000 * (wall - recorder.objective_wall) / n, 1000 * (cpu - recorder.objective_cpu) / n,
               sim_time, most, error, recorder.crashes)


def preload(algorithms: set[str]) -> None:
    """Import what `algorithms` need and use one thread: a pool worker's set-up, so that import time is not
    counted as the first run's overhead and runs on 2 cores do not fight over torch's thread pool."""
    import ioh  # noqa: F401

    warnings.simplefilter("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    for name in algorithms:
        Spec(name, name).build(dim=2, budget=4, seed=0)
