"""Sequential benchmark of the optimizers on the BaMSOO paper's functions (scaled to [0,1]^d, maximized).

Runs every (function, algorithm, seed) job in a pool of processes and prints, per function and algorithm,
the median log10 simple regret (optimum - best so far, floored at 1e-12) at 50/100/200/500 evaluations and
the median optimizer overhead (ms of ask+tell per evaluation, objective time excluded: wall clock, and CPU
time of the process, which a busy shared machine inflates less). `direct` is
scipy.optimize.direct behind a counting callback; SOO and DIRECT are deterministic and run once.

    python jobs/bench_optimizers.py --json bench.json              # full: about 30 min on 2 cores
    python jobs/bench_optimizers.py --quick                        # 50 evaluations, 2 seeds: a minute or two
    python jobs/bench_optimizers.py --functions branin --algorithms bamsoo soo direct --seeds 3
    python jobs/bench_optimizers.py --reuse bench.json --json bench2.json   # run only the jobs bench.json lacks
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import direct

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbo.objectives.synthetic import FUNCTIONS  # noqa: E402
from pbo.optimizers import ALGORITHMS, make_optimizer  # noqa: E402
from pbo.space import Space  # noqa: E402

BUDGETS = {"branin": 200, "rosenbrock": 200, "hartmann3": 200, "shekel": 500, "hartmann6": 500}
CHECKPOINTS = (50, 100, 200, 500)
ALGORITHM_ORDER = ("bamsoo", "soo", "direct", "bo", "lhs", "random")
DETERMINISTIC = {"soo", "direct"}
REGRET_FLOOR = 1e-12
#: Rough relative cost per evaluation, to start the slowest jobs first so that the pool ends together.
COST = {"bo": 100, "bamsoo": 10}


@dataclass(frozen=True)
class Job:
    function: str
    algorithm: str
    seed: int
    budget: int


@dataclass
class RunResult:
    function: str
    algorithm: str
    seed: int
    budget: int
    evaluations: int
    best: list[float]          # best value after each evaluation
    overhead_ms: float         # optimizer wall time per evaluation
    seconds: float
    overhead_cpu_ms: float | None = None  # optimizer CPU time per evaluation


def run_job(job: Job) -> RunResult:
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    fn = FUNCTIONS[job.function]
    start = time.perf_counter()
    if job.algorithm == "direct":
        values, overhead, cpu = _run_direct(fn, job.budget)
    else:
        values, overhead, cpu = _run_optimizer(fn, job)
    n = max(len(values), 1)
    best = np.maximum.accumulate(values).tolist() if values else []
    return RunResult(job.function, job.algorithm, job.seed, job.budget, len(values), best, 1000 * overhead / n,
                     time.perf_counter() - start, 1000 * cpu / n)


def _run_optimizer(fn, job: Job) -> tuple[list[float], float, float]:
    """Values in evaluation order, and the optimizer's wall and CPU seconds (ask + tell)."""
    opt = make_optimizer(job.algorithm, Space.from_dict(fn.space()), seed=job.seed, budget=job.budget)
    values, wall, cpu = [], 0.0, 0.0
    while len(values) < job.budget:
        t, c = time.perf_counter(), time.process_time()
        cand = opt.ask()
        wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
        if cand is None:
            break
        value = fn(cand.params)
        t, c = time.perf_counter(), time.process_time()
        opt.tell(cand.id, value)
        wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
        values.append(value)
    return values, wall, cpu


def _run_direct(fn, budget: int) -> tuple[list[float], float, float]:
    """Values in evaluation order, and DIRECT's wall and CPU seconds outside the objective."""
    values: list[float] = []
    in_objective = objective_cpu = 0.0

    def negated(u: np.ndarray) -> float:
        nonlocal in_objective, objective_cpu
        t, c = time.perf_counter(), time.process_time()
        value = fn.at_unit(u)
        in_objective += time.perf_counter() - t
        objective_cpu += time.process_time() - c
        values.append(value)
        return -value

    t, c = time.perf_counter(), time.process_time()
    direct(negated, [(0.0, 1.0)] * fn.dim, maxfun=budget, maxiter=100 * budget, vol_tol=0.0, len_tol=0.0)
    wall, cpu = time.perf_counter() - t - in_objective, time.process_time() - c - objective_cpu
    kept = values[:budget]
    share = len(kept) / max(len(values), 1)
    return kept, wall * share, cpu * share


def log_regret(fn_name: str, best: float) -> float:
    return math.log10(max(FUNCTIONS[fn_name].optimum - best, REGRET_FLOOR))


def summarize(results: list[RunResult], budgets: dict[str, int]) -> list[dict]:
    """One row per (function, algorithm): medians over seeds; None where the run had no such checkpoint."""
    rows = []
    for fn_name in budgets:
        for algo in ALGORITHM_ORDER:
            runs = [r for r in results if r.function == fn_name and r.algorithm == algo]
            if not runs:
                continue
            row = {"function": fn_name, "algorithm": algo, "runs": len(runs), "budget": runs[0].budget,
                   "overhead_ms": float(np.median([r.overhead_ms for r in runs])),
                   "overhead_cpu_ms": _median_or_none([r.overhead_cpu_ms for r in runs])}
            for c in CHECKPOINTS:
                at = [log_regret(fn_name, r.best[min(c, r.evaluations) - 1])
                      for r in runs if c <= r.budget and r.evaluations]
                row[f"regret@{c}"] = float(np.median(at)) if at else None
            if runs[0].budget < budgets[fn_name]:
                row["note"] = f"capped at {runs[0].budget} evaluations"
            elif min(r.evaluations for r in runs) < runs[0].budget:
                row["note"] = f"stopped after {min(r.evaluations for r in runs)} evaluations"
            rows.append(row)
    return rows


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def format_table(rows: list[dict]) -> str:
    head = f"{'function':<11}{'algorithm':<10}{'runs':>5}" + "".join(f"{'@' + str(c):>8}" for c in CHECKPOINTS)
    lines = [head + f"{'ms/eval':>10}{'cpu ms':>9}  note", "-" * (len(head) + 27)]
    for row in rows:
        cells = "".join(f"{'':>8}" if row[f"regret@{c}"] is None else f"{row[f'regret@{c}']:>8.2f}"
                        for c in CHECKPOINTS)
        cpu = "" if row["overhead_cpu_ms"] is None else f"{row['overhead_cpu_ms']:.2f}"
        lines.append(f"{row['function']:<11}{row['algorithm']:<10}{row['runs']:>5}{cells}"
                     f"{row['overhead_ms']:>10.2f}{cpu:>9}  {row.get('note', '')}")
    return "\n".join(lines)


def make_jobs(functions: list[str], algorithms: list[str], seeds: int, budgets: dict[str, int],
              bo_budget: int) -> list[Job]:
    jobs = []
    for fn_name in functions:
        for algo in algorithms:
            budget = min(budgets[fn_name], bo_budget) if algo == "bo" else budgets[fn_name]
            for seed in range(1 if algo in DETERMINISTIC else seeds):
                jobs.append(Job(fn_name, algo, seed, budget))
    return sorted(jobs, key=lambda j: -COST.get(j.algorithm, 1) * j.budget * FUNCTIONS[j.function].dim)


def reused_runs(path: Path, jobs: list[Job]) -> list[RunResult]:
    """The runs in an earlier JSON output that match one of `jobs` exactly."""
    try:
        runs = [RunResult(**run) for run in json.loads(path.read_text())["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"--reuse {path}: not a benchmark JSON file ({exc})")
    wanted = set(jobs)
    return [r for r in runs if Job(r.function, r.algorithm, r.seed, r.budget) in wanted]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHM_ORDER), choices=list(ALGORITHM_ORDER))
    parser.add_argument("--seeds", type=int, default=5, help="runs of each randomized algorithm (default 5)")
    parser.add_argument("--quick", action="store_true", help="50 evaluations per function and 2 seeds")
    parser.add_argument("--bo-budget", type=int, default=100,
                        help="cap on GP-BO's evaluations (its steps grow to seconds near 500; default 100)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table and every run's trace here")
    parser.add_argument("--reuse", type=Path, help="take the runs of an earlier --json file instead of rerunning them")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.processes < 1 or args.bo_budget < 1:
        parser.error("--seeds, --processes and --bo-budget must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    budgets = {f: (50 if args.quick else BUDGETS[f]) for f in args.functions}
    seeds = min(args.seeds, 2) if args.quick else args.seeds
    jobs = make_jobs(args.functions, args.algorithms, seeds, budgets, args.bo_budget)
    results = reused_runs(args.reuse, jobs) if args.reuse else []
    done = {Job(r.function, r.algorithm, r.seed, r.budget) for r in results}
    jobs = [job for job in jobs if job not in done]
    start, finished = time.perf_counter(), 0
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        for result in pool.imap_unordered(run_job, jobs):
            results.append(result)
            finished += 1
            print(f"[{time.perf_counter() - start:7.0f}s] {finished}/{len(jobs)} {result.function} "
                  f"{result.algorithm} seed {result.seed}: log10 regret "
                  f"{log_regret(result.function, result.best[-1]):.2f} in {result.seconds:.0f}s",
                  file=sys.stderr, flush=True)
    rows = summarize(results, budgets)
    print(f"median log10 simple regret at N evaluations; optimizer overhead in ms per evaluation "
          f"(wall {time.perf_counter() - start:.0f}s, {args.processes} processes)")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"budgets": budgets, "seeds": seeds, "rows": rows,
                                         "runs": [asdict(r) for r in results]}, indent=1))


if __name__ == "__main__":
    main()
