"""Runtime benchmark: does the scheduler keep workers busy, and does the simulator predict real runs?

1. Real MPI on this machine: `mpirun -np W+1 python -m pbo.run` on Hartmann6 whose trials sleep a lognormal
   1 s mean, budget 64: makespan, speedup vs 1 worker, utilization, master CPU time, median master latency
   (the end of a worker's trial -> its next dispatch), and the simulator's makespan for the same run (with
   the master's real compute time, optimizer and HDF5 log, charged to the virtual clock); for each
   `--ask-ahead` mode.
2. Simulated: W = 1 .. 1024 workers, trials of a lognormal 43 min mean, budget 4 W (`--rounds`):
   utilization, the utilization of an ideal scheduler on the same trials (see 3), time to budget, "steady"
   utilization (up to the last dispatch, i.e. without the final drain), and the simple regret against the
   same algorithm run with 1 worker and the same budget (parallelism must not be bought with wasted
   evaluations).
3. The bound: the utilization of an ideal scheduler (no master time at all, a worker is never idle while
   work is left) on lognormal durations, for budgets of 4 to 64 trials per worker. What it loses is the final
   drain, which no scheduler avoids once the budget is spent.

4. The log's cost per result (`--log-cost`): milliseconds per `record_result` (fsynced /trials row) and per
   `record_tree` at 4,096 trials and a tree growing to 10^4 nodes, the tree written whole after every result
   (before log format 5) against only its new and changed nodes (format 5).

Usage: python jobs/bench_runtime.py [--algorithms random,lhs] [--ask-ahead never,auto] [--rounds 4] [--quick]
       [--no-real] [--bound] [--log-cost] [--workers 256,1024] [--master-time] [--json FILE]
(run it with `nice`; the real part oversubscribes the cores on purpose: trials sleep).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbo.backends.simulated import SimulatedBackend  # noqa: E402
from pbo.log import RunLog, read  # noqa: E402
from pbo.log.layout import TREE, TREE_COLUMNS  # noqa: E402
from pbo.objectives import resolve_objective  # noqa: E402
from pbo.objectives.cost import CostModel  # noqa: E402
from pbo.optimizers import make_optimizer  # noqa: E402
from pbo.scheduler import RunSummary, run_study  # noqa: E402
from pbo.space import Space  # noqa: E402
from pbo.trial import TrialResult, TrialState  # noqa: E402

SUMMARY = re.compile(r"in ([\d.]+) s .*utilization ([\d.]+); master CPU ([\d.]+) s.*latency ([\d.]+) ms")
MEAN_43_MIN = 43 * 60.0
OPTIMUM = resolve_objective("hartmann6").optimum
#: Algorithms that fit a GP on every result: their simulated runs are limited to `--max-model-budget`.
MODEL_BASED = ("bo", "bamsoo")


def mpirun() -> str:
    candidate = Path(sys.executable).parent / "mpirun"
    return str(candidate) if candidate.exists() else shutil.which("mpirun")


def cli_run(algorithm: str, workers: int, budget: int, cost: dict, seed: int, ask_ahead: str,
            simulate: bool = False) -> dict:
    """`mpirun -np W+1 python -m pbo.run`, or with `simulate` its prediction: `--simulate W` on the same
    settings, charging the master's real compute (optimizer and HDF5 log) to the virtual clock."""
    cmd = [sys.executable, "-m", "pbo.run", "--config", os.devnull, "--objective", "hartmann6", "--algorithm",
           algorithm, "--budget", str(budget), "--seed", str(seed), "--cost", json.dumps(cost), "--no-progress",
           "--ask-ahead", ask_ahead]
    if simulate:
        cmd += ["--simulate", str(workers), "--simulate-master-time", "--out", "simulated.h5"]
    else:
        cmd = [mpirun(), "-np", str(workers + 1), *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as scratch:  # the run's HDF5 log goes there
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=1800)
        match = SUMMARY.search(proc.stdout)
        if proc.returncode != 0 or match is None:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        trials = read(next(Path(scratch).rglob("*.h5"))).trials
    makespan, utilization, cpu, latency = map(float, match.groups())
    durations = (trials["t_end"] - trials["t_start"])[np.argsort(trials["t_submit"], kind="stable")]
    return {"makespan": makespan, "utilization": utilization, "master_cpu": cpu, "latency_ms": latency,
            "ideal_utilization": greedy_utilization(durations, workers)}


def simulate(algorithm: str, workers: int, budget: int, cost: dict, seed: int,
             master_time: bool = False) -> tuple[RunSummary, dict[str, np.ndarray]]:
    """A simulated run, and the seconds each ask and each tell took the optimizer (`master_time`: charged to the
    virtual clock, as they delay dispatches in a real run)."""
    objective = resolve_objective("hartmann6")
    optimizer = make_optimizer(algorithm, Space.from_dict(objective.space), seed=seed, budget=budget)
    times: dict[str, list[float]] = {"ask": [], "tell": []}
    for name, key in (("ask", "ask"), ("tell", "tell"), ("tell_failure", "tell"), ("tell_pruned", "tell")):
        setattr(optimizer, name, _timed(getattr(optimizer, name), times[key]))
    backend = SimulatedBackend(objective, workers, CostModel.from_dict(cost), master_time=master_time)
    summary = run_study(optimizer, backend, budget=budget)
    return summary, {key: np.array(value) for key, value in times.items()}


def _timed(method, durations: list[float]):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)
    return timed


def ask_tell_p99(times: dict[str, np.ndarray]) -> float:
    """99th percentile of one result's master work: the i-th tell plus the i-th ask (seconds)."""
    n = min(len(times["ask"]), len(times["tell"]))
    return float(np.percentile(times["ask"][:n] + times["tell"][:n], 99)) if n else float("nan")


def steady_utilization(summary: RunSummary) -> float:
    """Busy share of the workers until the last dispatch: what the scheduler controls, without the drain."""
    last = max(r.t_submit for r in summary.results)
    busy = sum(max(0.0, min(r.t_end, last) - r.t_start) for r in summary.results if r.t_start < last)
    return busy / (summary.n_workers * last) if last > 0 else 1.0


def greedy_utilization(durations: np.ndarray, workers: int) -> float:
    """Utilization of an ideal scheduler on these trial durations, in this order: no master time, and each
    trial starts the moment a worker frees."""
    free = [0.0] * workers
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return float(durations.sum() / (workers * max(free)))


def ideal_utilization(workers: int, rounds: int, sigma: float, repeats: int = 200, seed: int = 0) -> float:
    """Median ideal-scheduler utilization for `rounds * workers` lognormal trials."""
    rng = np.random.default_rng(seed)
    return float(np.median([greedy_utilization(rng.lognormal(-sigma ** 2 / 2, sigma, rounds * workers), workers)
                            for _ in range(repeats)]))


def synthetic_tree(n: int, dim: int, changes: int) -> dict[str, np.ndarray]:
    """A node table of `n` nodes in which the first `changes` nodes have been evaluated and expanded: what a tree
    method's table looks like after `changes` results (values and flags change, boxes never do)."""
    done = np.arange(n) < changes
    return {"node_id": np.arange(n), "parent": (np.arange(n) - 1) // 3, "depth": np.log1p(np.arange(n)).astype(int),
            "lower": np.zeros((n, dim)), "upper": np.ones((n, dim)), "center": np.full((n, dim), 0.5),
            "value": np.where(done, np.arange(n) * 1e-4, np.nan), "state": np.where(done, "evaluated", "pending"),
            "expanded": done}


def whole_tree_write(log: RunLog, table: dict[str, np.ndarray]) -> None:
    """/tree as it was written before format 5: every column rewritten whole after each result."""
    rows = len(table["node_id"])
    columns = {name: np.asarray(table[name]).astype(dtype).reshape((rows, -1) if vector else (rows,))
               for name, (dtype, vector) in TREE_COLUMNS.items()}
    log._write_columns(TREE, columns, rows, sync=False)


def log_cost(trials: int = 4096, nodes: int = 10_000, dim: int = 6) -> list[dict]:
    """Milliseconds per result of the log at `trials` results, the tree growing to `nodes` nodes: the mean over
    the run and over the last tenth (the largest tree), for the /trials row and for each way of writing /tree."""
    space = Space.from_dict({f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(dim)})
    modes = {"whole tree (format 4)": whole_tree_write, "changed nodes (format 5)": RunLog.record_tree}
    times = {mode: {"trials": [], "tree": []} for mode in modes}
    with tempfile.TemporaryDirectory() as scratch:
        logs = {mode: RunLog.create(Path(scratch) / f"cost{i}.h5", config={}, space=space, algorithm="soo", seed=0,
                                    n_workers=1) for i, mode in enumerate(modes)}
        for log in logs.values():
            log.record_tree(synthetic_tree(1, dim, 0))  # creates /tree (a file rewrite, once)
        for i in range(1, trials + 1):  # both logs take each result in turn, so a busy machine slows both alike
            result = TrialResult(i, {f"x{j}": 0.5 for j in range(dim)}, np.full(dim, 0.5), TrialState.OK,
                                 value=float(i), worker=1, t_submit=i, t_start=i, t_end=i + 1)
            tree = synthetic_tree(round(nodes * i / trials), dim, i)
            for mode, write in modes.items():
                start = time.perf_counter()
                logs[mode].record_result(result)
                middle = time.perf_counter()
                write(logs[mode], tree)
                times[mode]["trials"].append(middle - start)
                times[mode]["tree"].append(time.perf_counter() - middle)
        for log in logs.values():
            log.close()
    tail = trials // 10
    return [{"tree_write": mode, "trials": trials, "nodes": nodes,
             **{f"{key}_ms": 1e3 * float(np.mean(t[key])) for key in ("trials", "tree")},
             **{f"{key}_ms_last_tenth": 1e3 * float(np.mean(t[key][-tail:])) for key in ("trials", "tree")}}
            for mode, t in times.items()]


def table(title: str, header: list[str], rows: list[list]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", default="random,lhs")
    parser.add_argument("--quick", action="store_true", help="budget 16 real, W up to 4 real and 256 simulated")
    parser.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    parser.add_argument("--real-workers", default=None, help="comma list (default 1,2,4,8)")
    parser.add_argument("--sigmas", default="0.5,0.1", help="lognormal spreads of the simulated sweep ('': none)")
    parser.add_argument("--real-sigma", type=float, default=0.5, help="lognormal spread of the real runs' cost")
    parser.add_argument("--max-model-budget", type=int, default=4096,
                        help="largest simulated budget for GP-based algorithms")
    parser.add_argument("--max-sequential-budget", type=int, default=1024,
                        help="largest budget of the 1-worker runs behind the regret column (larger: '-')")
    parser.add_argument("--workers", default=None, help="comma list of simulated W (default 1,4,16,64,256,1024)")
    parser.add_argument("--master-time", action="store_true",
                        help="charge the master's compute to the simulated runs' virtual clock")
    parser.add_argument("--ask-ahead", default="auto", help="comma list of modes for the real runs")
    parser.add_argument("--rounds", type=int, default=4, help="simulated budget per worker (budget = rounds x W)")
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True, help="run the real part")
    parser.add_argument("--bound", action="store_true", help="print only the ideal-scheduler bound table")
    parser.add_argument("--log-cost", action="store_true", help="print only the log's cost per result (part 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.log_cost:
        out = {"log_cost": log_cost()}
        print(table("The log's cost per result, 4,096 trials, /tree growing to 10^4 nodes (ms)",
                    ["/tree written", "/trials row", "/tree", "/trials row, last tenth", "/tree, last tenth"],
                    [[r["tree_write"], f"{r['trials_ms']:.2f}", f"{r['tree_ms']:.2f}",
                      f"{r['trials_ms_last_tenth']:.2f}", f"{r['tree_ms_last_tenth']:.2f}"] for r in out["log_cost"]]))
        if args.json:
            write_json(Path(args.json), out)
        return
    algorithms = args.algorithms.split(",")
    real_workers = [int(w) for w in (args.real_workers or ("1,2,4" if args.quick else "1,2,4,8")).split(",")]
    real_budget = 16 if args.quick else 64
    sim_workers = ([int(w) for w in args.workers.split(",")] if args.workers
                   else [1, 4, 16, 64, 256] + ([] if args.quick else [1024]))
    out: dict = {"real": [], "simulated": []}

    rows = []
    for sigma in [float(x) for x in args.sigmas.split(",") if x]:
        for w in [16, 64, 256, 1024]:
            bounds = {k: ideal_utilization(w, k, sigma, seed=args.seed) for k in (4, 16, 64)}
            out.setdefault("bound", []).append({"workers": w, "sigma": sigma, **{f"rounds_{k}": v
                                                                                   for k, v in bounds.items()}})
            rows.append([sigma, w, *(f"{v:.3f}" for v in bounds.values())])
    if rows:
        print(table("Ideal scheduler (no master time), lognormal trials: utilization for a budget of k trials per "
                    "worker", ["sigma", "workers", "k = 4", "k = 16", "k = 64"], rows))
    if args.bound:
        return

    rows = []
    for algorithm in algorithms if args.real else []:
        for mode in args.ask_ahead.split(","):
            base = None
            for w in real_workers:
                cost = {"kind": "lognormal", "mean": 1.0, "sigma": args.real_sigma, "seed": args.seed}
                real = cli_run(algorithm, w, real_budget, cost, args.seed, mode)
                sim = cli_run(algorithm, w, real_budget, cost, args.seed, mode, simulate=True)
                predicted = sim["makespan"]
                base = base or real["makespan"]
                error = predicted / real["makespan"] - 1
                out["real"].append({"algorithm": algorithm, "ask_ahead": mode, "workers": w, "budget": real_budget,
                                    **real, "speedup": base / real["makespan"], "simulated_makespan": predicted,
                                    "simulated_utilization": sim["utilization"]})
                rows.append([algorithm, mode, w, f"{real['makespan']:.2f}", f"{base / real['makespan']:.2f}",
                             f"{real['utilization']:.3f}", f"{real['ideal_utilization']:.3f}",
                             f"{real['master_cpu']:.2f}", f"{real['latency_ms']:.2f}",
                             f"{predicted:.2f}", f"{100 * error:+.1f}%", f"{sim['utilization']:.3f}"])
                print(rows[-1], file=sys.stderr, flush=True)
    if rows:
        print(table(f"Real mpirun, Hartmann6, budget {real_budget}, lognormal cost mean 1 s sigma {args.real_sigma}",
                    ["algorithm", "ask ahead", "workers", "makespan s", "speedup", "utilization",
                     "ideal scheduler, same trials", "master CPU s",
                     "median latency ms", "simulated makespan s", "sim error", "simulated utilization"], rows))

    for sigma in [float(x) for x in args.sigmas.split(",") if x]:
        rows = []
        for algorithm in algorithms:
            for w in sim_workers:
                cost = {"kind": "lognormal", "mean": MEAN_43_MIN, "sigma": sigma, "seed": args.seed}
                budget = args.rounds * w
                if algorithm in MODEL_BASED and budget > args.max_model_budget:
                    continue
                s, times = simulate(algorithm, w, budget, cost, args.seed, args.master_time)
                steady = steady_utilization(s)
                trials = sorted(s.results, key=lambda r: r.t_submit)
                ideal = greedy_utilization(np.array([r.t_end - r.t_start for r in trials]), w)
                regret, regret_1 = OPTIMUM - s.best.value, float("nan")
                if budget <= args.max_sequential_budget:
                    regret_1 = OPTIMUM - simulate(algorithm, 1, budget, cost, args.seed)[0].best.value
                p99 = ask_tell_p99(times)
                out["simulated"].append({"algorithm": algorithm, "workers": w, "budget": budget, "sigma": sigma,
                                         "master_time": args.master_time,
                                         "utilization": s.utilization, "ideal_utilization": ideal,
                                         "steady_utilization": steady, "hours": s.makespan / 3600,
                                         "regret": regret, "regret_1_worker": regret_1,
                                         "ask_tell_p99_s": p99, "master_s": float(times["ask"].sum()
                                                                                  + times["tell"].sum())})
                rows.append([algorithm, w, budget, f"{s.utilization:.3f}", f"{ideal:.3f}",
                             f"{s.utilization / ideal:.3f}", f"{steady:.3f}", f"{s.makespan / 3600:.2f}",
                             f"{regret:.3g}", "-" if np.isnan(regret_1) else f"{regret_1:.3g}", f"{1e3 * p99:.0f}"])
                print(rows[-1], file=sys.stderr, flush=True)
        print(table(f"Simulated, lognormal cost mean 43 min sigma {sigma}, budget {args.rounds} x W"
                    + (", master compute on the clock" if args.master_time else ""),
                    ["algorithm", "workers", "budget", "utilization", "ideal scheduler, same trials", "ratio",
                     "steady utilization", "hours to budget", "regret", "regret, 1 worker, same budget",
                     "ask+tell p99 ms"], rows))
    if args.json:
        write_json(Path(args.json), out)


def write_json(path: Path, out: dict) -> None:
    """Every number, with the command that produced them."""
    command = "python jobs/bench_runtime.py " + shlex.join(sys.argv[1:])
    path.write_text(json.dumps({"command": command, **out}, indent=1))


if __name__ == "__main__":
    main()
