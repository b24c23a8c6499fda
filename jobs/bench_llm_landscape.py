"""LLM-like landscape benchmark: pbo's optimizers and their peers on `llm_landscape`, 50 trials, 1 and W workers,
with the space's variables listed in several orders.

What it measures. Each run maximizes the `llm_landscape` objective (pbo/objectives/landscape.py: the LoRA
study's 5-variable space, dead learning rates, collapse to chance at alpha/rank >= 1.2 or too large a step, a
known optimum 0.479; each trial's accuracy carries binomial noise over `--items` questions, seeded by the run's
seed and the point) for `--budget` trials. Seed s seeds both the algorithm and the landscape's noise. Per run:
  - best: the best true (noise-free) accuracy among the evaluated points, and its regret to the optimum;
  - reported: the true accuracy of the trial with the best observed score (what a user would pick);
  - collapsed: trials closer to chance than to the base model; dead: trials within 0.001 of the base model;
  - hit: the first trial (in completion order) whose true accuracy is within one stderr of the optimum.
Tables give medians over seeds (hit: "-" when at least half the seeds never got there; `seeds` says how many
did). The order table repeats best and collapsed for each order and gives how many of its points a run shares
with the first order's run of the same seed (an order-free algorithm gets the same noise there, so it shares
all of them; DIRECT shares all but the last, where the budget cuts an iteration whose points it visits in
index order).

Algorithms (`--algorithms`, as `jobs/bench_bbob.py` takes them: `name` or `label=name:{yaml options}`): pbo's
soo, bamsoo, bo, lhs, random through `make_optimizer(name, Space.from_dict(space), seed=s, budget=...)` on the
natural space (ints and log scales as pbo handles them); optuna_gp (GPSampler, told the objective is noisy) and
optuna_tpe (TPESampler, constant_liar) on the same natural space (IntDistribution, log FloatDistribution),
through study.ask/tell; direct (scipy DIRECT-L, `locally_biased=True`) on the unit cube, each point decoded by
pbo's Space (so log scales and integers as pbo sees them), stopped at the budget.

Workers (`--workers 1,4`): W trials in flight, each lasting a lognormal time of mean 1 (sigma 0.5; the same
durations for every algorithm of a seed), the earliest told first (`jobs/bbob/suite.py:run_async`); an ask that
returns None leaves its worker idle until the next result. DIRECT is sequential and left out at W > 1.

Orders (`--orders`, comma-separated): `default` (lora_rank, lora_alpha, lora_dropout, learning_rate,
weight_decay), `lr_first` (learning_rate, then the default order), `reversed`, or an explicit permutation
written with '/' (e.g. weight_decay/learning_rate/lora_dropout/lora_alpha/lora_rank).

Commands (from the repository root; add `nice -n 10` on a shared machine):
    python jobs/bench_llm_landscape.py --json                  # the docs' table: jobs/results/llm_landscape.json
    python jobs/bench_llm_landscape.py --quick                 # 2 seeds, 2 orders
    python jobs/bench_llm_landscape.py --algorithms 'bamsoo,b2=bamsoo:{eta: 0.01}' --orders default,lr_first
    python jobs/bench_llm_landscape.py --items 1000            # noisier scores (stderr about 0.016)
The default is 225 runs; Optuna's GP and pbo's GP-BO take 90% of their time (--algorithms without them: seconds).

JSON layout: {"command", "argv", "settings", "algorithms": {label: {name, options}}, "left_out", "versions",
"optimum", "stderr", "wall_seconds", "summary": [rows of the main table, one per label x W x order],
"orders": [rows of the order table], "runs": [{"key": {label, algorithm, options, seed, workers, order},
"true", "observed" (per trial, completion order), "regions" (one letter per trial: c collapsed, d dead,
t trained), "point_ids" (a short hash of each evaluated point), "seconds", "error"}]}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shlex
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread per process
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from jobs.bbob.adapters import DirectAdapter, Spec, SpecError, parse_specs  # noqa: E402
from jobs.bbob.suite import BudgetSpent, run_async  # noqa: E402
from pbo.objectives.landscape import NAMES, SPACE, LLMLandscape  # noqa: E402
from pbo.space import Space, Variable  # noqa: E402

RESULTS = ROOT / "jobs" / "results"
DEFAULT_ALGORITHMS = "soo,bamsoo,bo,lhs,random,direct,optuna_gp,optuna_tpe"
PBO = ("soo", "bamsoo", "bo", "lhs", "random")
ORDERS: dict[str, tuple[str, ...]] = {
    "default": NAMES,
    "lr_first": ("learning_rate", *(n for n in NAMES if n != "learning_rate")),
    "reversed": NAMES[::-1],
}
REGION_LETTER = {"collapsed": "c", "dead": "d", "trained": "t"}
SIGMA = 0.5  # of the lognormal trial durations


# ---- the algorithms, on the landscape's natural space (maximizing) -----------------------------------------

class PboRunner:
    """A pbo optimizer on the ordered space."""

    def __init__(self, name: str, space: Space, budget: int, seed: int, **options: Any) -> None:
        from pbo.optimizers import make_optimizer

        self.opt = make_optimizer(name, space, seed=seed, budget=budget, **options)

    def ask(self) -> tuple[int, dict[str, Any]] | None:
        cand = self.opt.ask()
        return None if cand is None else (cand.id, cand.params)

    def tell(self, token: int, value: float) -> None:
        self.opt.tell(token, float(value))


def _distribution(var: Variable) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if var.kind == "categorical":
        return CategoricalDistribution(list(var.choices))
    kind = IntDistribution if var.kind == "int" else FloatDistribution
    return kind(var.low, var.high, log=var.log)


class OptunaRunner:
    """An Optuna study (maximize) on the same space; trials still running are what its sampler sees as pending."""

    def __init__(self, kind: str, space: Space, budget: int, seed: int, **options: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if kind == "gp":  # noisy scores: do not tell the GP it is deterministic
            sampler = optuna.samplers.GPSampler(**{"seed": seed, "deterministic_objective": False, **options})
        else:
            sampler = optuna.samplers.TPESampler(**{"seed": seed, "constant_liar": True, **options})
        self.study = optuna.create_study(sampler=sampler, direction="maximize")
        self.distributions = {var.name: _distribution(var) for var in space.variables}

    def ask(self) -> tuple[Any, dict[str, Any]]:
        trial = self.study.ask(self.distributions)
        return trial, dict(trial.params)

    def tell(self, token: Any, value: float) -> None:
        self.study.tell(token, float(value))


class DirectRunner:
    """scipy DIRECT-L (jobs/bbob's adapter) on the unit cube of the ordered space; it calls the objective itself,
    so it has `run` instead of ask/tell, and no asynchronous mode (jobs/bbob's registry marks it sequential_only)."""

    def __init__(self, space: Space, budget: int, seed: int, **options: Any) -> None:
        self.space = space
        self.direct = DirectAdapter(space.dim, budget, seed, **options)

    def run(self, evaluate: Callable[[dict[str, Any]], float], budget: int) -> None:
        try:
            self.direct.minimize(lambda u: -float(evaluate(self.space.from_unit(u))), budget)
        except BudgetSpent:
            pass


RUNNERS: dict[str, Callable[..., Any]] = {
    **{name: (lambda name: lambda **kw: PboRunner(name, **kw))(name) for name in PBO},
    "optuna_gp": lambda **kw: OptunaRunner("gp", **kw),
    "optuna_tpe": lambda **kw: OptunaRunner("tpe", **kw),
    "direct": lambda **kw: DirectRunner(**kw),
}


# ---- one run ---------------------------------------------------------------------------------------------

class Observation(float):
    """An observed accuracy that keeps its point: `run_async` hands only the value to `record`, which needs the
    point's true value and region."""

    params: dict[str, Any]

    def __new__(cls, value: float, params: dict[str, Any]) -> "Observation":
        obj = super().__new__(cls, value)
        obj.params = params
        return obj


@dataclass
class Recorder:
    """The trials of one run in completion order: true value, observed value and region of each."""

    land: LLMLandscape
    budget: int
    true: list[float] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    points: list[tuple[float, ...]] = field(default_factory=list)

    def evaluate(self, params: dict[str, Any]) -> Observation:
        return Observation(self.land(params)["acc"], params)

    def record(self, value: Observation) -> None:
        self.true.append(round(self.land.true_value(value.params), 6))
        self.observed.append(float(value))
        self.regions.append(REGION_LETTER[self.land.region(value.params)])
        # 9 significant digits: the same cube point reached through another order may differ in the last bits
        self.points.append(tuple(float(f"{float(value.params[n]):.9g}") for n in NAMES))

    def __call__(self, params: dict[str, Any]) -> float:
        """Evaluate and record at once (DIRECT's callback); past the budget, stop it."""
        if len(self.true) >= self.budget:
            raise BudgetSpent
        value = self.evaluate(params)
        self.record(value)
        return float(value)

    def point_ids(self) -> list[str]:
        """A short hash of each evaluated point, so that runs in other orders can be compared point by point."""
        return [hashlib.sha256(repr(p).encode()).hexdigest()[:10] for p in self.points]


@dataclass(frozen=True)
class RunKey:
    label: str
    algorithm: str
    options: str  # canonical JSON
    seed: int
    workers: int
    order: str


@dataclass
class Run:
    key: RunKey
    true: list[float]
    observed: list[float]
    regions: str
    point_ids: list[str]
    seconds: float
    error: str | None = None


def ordered_space(order: tuple[str, ...]) -> Space:
    return Space.from_dict({name: SPACE[name] for name in order})


def durations(seed: int) -> Callable[[], float]:
    """Lognormal trial durations of mean 1, the same sequence for every algorithm of a seed."""
    rng = np.random.default_rng([seed, 7])
    return lambda: float(rng.lognormal(-SIGMA ** 2 / 2, SIGMA))


def run_one(key: RunKey, budget: int, items: int) -> Run:
    """One run in this process; an exception in the algorithm is recorded in `error`, not raised."""
    warnings.simplefilter("ignore")
    recorder, error, start = Recorder(LLMLandscape(items=items, seed=key.seed), budget), None, time.perf_counter()
    try:
        runner = RUNNERS[key.algorithm](space=ordered_space(parse_order(key.order)), budget=budget, seed=key.seed,
                                        **json.loads(key.options))
        if isinstance(runner, DirectRunner):
            runner.run(recorder, budget)
        else:
            run_async(runner, recorder, key.workers, durations(key.seed))
    except Exception as exc:  # noqa: BLE001 - one failing run must not end the benchmark
        where = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
    return Run(key, recorder.true, recorder.observed, "".join(recorder.regions), recorder.point_ids(),
               round(time.perf_counter() - start, 2), error)


# ---- arguments -------------------------------------------------------------------------------------------

def parse_order(text: str) -> tuple[str, ...]:
    """A preset name of ORDERS or a '/'-separated permutation of the five variables."""
    if text in ORDERS:
        return ORDERS[text]
    order = tuple(part.strip() for part in text.split("/"))
    if sorted(order) != sorted(NAMES):
        raise ValueError(f"order {text!r} is neither {', '.join(ORDERS)} nor a '/'-separated permutation of "
                         f"{'/'.join(NAMES)}")
    return order


def check_spec(spec: Spec) -> None:
    """Build the runner once, so that an algorithm this benchmark lacks or a bad option fails up front."""
    if spec.name not in RUNNERS:
        raise SpecError(f"{spec.label}: {spec.name} is not run on the landscape (choose from {', '.join(RUNNERS)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            RUNNERS[spec.name](space=ordered_space(NAMES), budget=10, seed=0, **spec.options)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec.label}: {' '.join(str(exc).split())}") from None


def int_list(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,4, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default=DEFAULT_ALGORITHMS,
                        help=f"comma-separated name or label=name:{{options}}; names: {', '.join(RUNNERS)}")
    parser.add_argument("--budget", type=int, default=50, help="trials per run (default 50)")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 5; --quick 2)")
    parser.add_argument("--workers", type=int_list, default=[1, 4], help="simulated workers (default 1,4)")
    parser.add_argument("--orders", help="orders of the space's variables (default default,lr_first,reversed; "
                                         "--quick default,lr_first)")
    parser.add_argument("--items", type=int, default=10042, help="questions per score (default 10042: stderr 0.005)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    parser.add_argument("--json", type=Path, nargs="?", const=RESULTS / "llm_landscape.json",
                        help="write the results (default path jobs/results/llm_landscape.json)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, orders default,lr_first")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.orders = args.orders or ("default,lr_first" if args.quick else "default,lr_first,reversed")
    try:
        args.specs = parse_specs(args.algorithms)
        for spec in args.specs:
            check_spec(spec)
        args.order_list = [o.strip() for o in args.orders.split(",") if o.strip()]
        for order in args.order_list:
            parse_order(order)
        LLMLandscape(items=args.items)
    except (SpecError, ValueError) as exc:
        parser.error(str(exc))
    if min(args.budget, args.seeds, args.jobs) < 1 or not args.order_list:
        parser.error("--budget, --seeds and --jobs must be at least 1, and --orders name at least one order")
    return args


# ---- running ---------------------------------------------------------------------------------------------

def make_keys(args: argparse.Namespace) -> tuple[list[RunKey], list[str]]:
    """Every run, in the order of the report, and a note for each sequential algorithm left out at W > 1."""
    keys, notes = [], []
    for spec in args.specs:
        for w in args.workers:
            if w > 1 and spec.algorithm.sequential_only:
                notes.append(f"{spec.label}: sequential only, left out at W={w}")
                continue
            keys += [RunKey(spec.label, spec.name, spec.options_json(), s, w, o)
                     for o in args.order_list for s in range(args.seeds)]
    return keys, notes


COST = {"bo": 30, "optuna_gp": 30, "bamsoo": 10, "optuna_tpe": 2}  # rough, to start the slowest runs first


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _run(job: tuple[RunKey, int, int]) -> Run:
    return run_one(*job)


def execute(keys: list[RunKey], budget: int, items: int, processes: int) -> list[Run]:
    jobs = sorted(((k, budget, items) for k in keys), key=lambda j: -COST.get(j[0].algorithm, 1))
    runs = []
    if processes == 1 or len(jobs) <= 1:
        _init_worker()
        results = map(_run, jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(processes, len(jobs)), initializer=_init_worker)
        results = pool.imap_unordered(_run, jobs)
    for i, run in enumerate(results, 1):
        runs.append(run)
        k = run.key
        tail = f" ERROR {run.error}" if run.error else f" best {max(run.true, default=float('nan')):.4f}"
        print(f"[{i}/{len(jobs)}] {k.label} W={k.workers} {k.order} s{k.seed}: {run.seconds:.1f} s{tail}",
              file=sys.stderr, flush=True)
    if processes > 1 and len(jobs) > 1:
        pool.close()
        pool.join()
    order = {k: i for i, k in enumerate(keys)}
    return sorted(runs, key=lambda r: order[r.key])


# ---- report ----------------------------------------------------------------------------------------------

def run_metrics(run: Run, optimum: float, stderr: float) -> dict[str, float]:
    """What a run achieved: best true value, the true value of its best observed trial, its collapsed and dead
    trials, and the first trial within one stderr of the optimum (inf if none)."""
    hits = [i for i, v in enumerate(run.true, 1) if v >= optimum - stderr]
    return {"best": max(run.true, default=np.nan),
            "reported": run.true[int(np.argmax(run.observed))] if run.true else np.nan,
            "collapsed": run.regions.count("c"), "dead": run.regions.count("d"),
            "hit": float(hits[0]) if hits else np.inf}


def _median(values: list[float]) -> float | None:
    """The median, None for nothing; inf stays inf (a median run that never hit did not hit)."""
    return float(np.median(values)) if values else None


def summarize(runs: list[Run], optimum: float, stderr: float) -> list[dict[str, Any]]:
    """One row per label x W x order: medians over seeds (failed runs left out)."""
    groups: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for run in runs:
        if run.error is None:
            groups.setdefault((run.key.label, run.key.workers, run.key.order), []).append(
                run_metrics(run, optimum, stderr))
    rows = []
    for (label, workers, order), metrics in groups.items():
        med = {m: _median([x[m] for x in metrics]) for m in ("best", "reported", "collapsed", "dead", "hit")}
        rows.append({"label": label, "workers": workers, "order": order, "runs": len(metrics), **med,
                     "regret": optimum - med["best"], "seeds_hit": sum(np.isfinite(x["hit"]) for x in metrics)})
    return rows


def shared_points(runs: list[Run], orders: list[str]) -> dict[tuple[str, int], list[float | None]]:
    """Per label x W and order after the first: the median over seeds of the points its run shares with the
    first order's run of the same seed (an order-free algorithm gets the same noise there, so shares them all)."""
    ids = {(r.key.label, r.key.workers, r.key.seed, r.key.order): set(r.point_ids) for r in runs if r.error is None}
    shared: dict[tuple[str, int], list[float | None]] = {}
    for label, workers in dict.fromkeys((r.key.label, r.key.workers) for r in runs):
        seeds = sorted({s for lab, w, s, _ in ids if (lab, w) == (label, workers)})
        shared[label, workers] = [_median([len(ids[label, workers, s, o] & ids[label, workers, s, orders[0]])
                                           for s in seeds if (label, workers, s, o) in ids
                                           and (label, workers, s, orders[0]) in ids]) for o in orders[1:]]
    return shared


def order_rows(runs: list[Run], summary: list[dict[str, Any]], orders: list[str]) -> list[dict[str, Any]]:
    """Per label x W: best and collapsed in each order, and the points shared with the first order."""
    by_key = {(r["label"], r["workers"], r["order"]): r for r in summary}
    shared = shared_points(runs, orders)
    rows = []
    for label, workers in dict.fromkeys((r["label"], r["workers"]) for r in summary):
        cells = [by_key.get((label, workers, o)) for o in orders]
        rows.append({"label": label, "workers": workers, "best": [c and c["best"] for c in cells],
                     "collapsed": [c and c["collapsed"] for c in cells], "shared": shared[label, workers]})
    return rows


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    return "-" if not np.isfinite(value) else f"{value:.{digits}f}"


def format_tables(summary: list[dict[str, Any]], orders_table: list[dict[str, Any]], orders: list[str]) -> str:
    lines = [f"Order {orders[0]}: medians over seeds",
             "| algorithm | W | best | regret | reported | collapsed | dead | hit | seeds hit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in summary if r["order"] == orders[0]):
        lines.append(f"| {r['label']} | {r['workers']} | {_cell(r['best'], 4)} | {_cell(r['regret'], 4)} | "
                     f"{_cell(r['reported'], 4)} | {_cell(r['collapsed'], 0)} | {_cell(r['dead'], 0)} | "
                     f"{_cell(r['hit'], 0)} | {r['seeds_hit']}/{r['runs']} |")
    if len(orders) > 1:
        lines += ["", f"Orders ({', '.join(orders)}): median best and collapsed in each, and points shared with the "
                      f"{orders[0]} order's run of the same seed ({', '.join(orders[1:])})",
                  "| algorithm | W | best | collapsed | shared points |", "|---|---:|---|---|---|"]
        for r in orders_table:
            best, collapsed, shared = (" / ".join(_cell(v, d) for v in r[k])
                                       for k, d in (("best", 4), ("collapsed", 0), ("shared", 0)))
            lines.append(f"| {r['label']} | {r['workers']} | {best} | {collapsed} | {shared} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys, notes = make_keys(args)
    land = LLMLandscape(items=args.items)
    optimum = land.true_value(land.best_point)
    print(f"{len(keys)} runs, {args.jobs} processes", file=sys.stderr, flush=True)
    start = time.perf_counter()
    runs = execute(keys, args.budget, args.items, args.jobs)
    wall = time.perf_counter() - start
    summary = summarize(runs, optimum, land.stderr)
    orders_table = order_rows(runs, summary, args.order_list)
    print(f"llm_landscape: budget {args.budget}, {args.seeds} seeds, W {args.workers}, items {args.items} "
          f"(stderr {land.stderr:.4f}), optimum {optimum}; {len(runs)} runs in {wall:.0f} s")
    for note in notes:
        print(f"note: {note}")
    for run in (r for r in runs if r.error):
        print(f"failed: {run.key.label} W={run.key.workers} {run.key.order} s{run.key.seed}: {run.error}")
    print(format_tables(summary, orders_table, args.order_list))
    if args.json:
        from jobs.bench_bbob import versions

        argv_used = sys.argv[1:] if argv is None else argv
        data = {"command": "python jobs/bench_llm_landscape.py " + shlex.join(argv_used), "argv": argv_used,
                "settings": {"budget": args.budget, "seeds": args.seeds, "workers": args.workers,
                             "orders": {o: list(parse_order(o)) for o in args.order_list}, "items": args.items,
                             "sigma": SIGMA},
                "algorithms": {s.label: {"name": s.name, "options": s.options} for s in args.specs},
                "left_out": notes, "versions": versions(), "optimum": optimum, "stderr": land.stderr,
                "wall_seconds": round(wall, 1), "summary": summary, "orders": orders_table,
                "runs": [{**asdict(r), "key": asdict(r.key)} for r in runs]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, separators=(",", ":"), default=_json_number))
        print(f"JSON: {args.json}")
    return 0


def _json_number(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"not JSON serializable: {value!r}")


if __name__ == "__main__":
    sys.exit(main())
