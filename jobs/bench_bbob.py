"""BBOB benchmark: pbo's optimizers and their peers on the 24 noiseless BBOB functions, in one harness.

What it measures. Each run minimizes one BBOB function (ioh's implementation of COCO's suite, `--functions`
1..24) in dimension D (`--dims`), instance i (`--instances`: shifted/rotated variants), with an algorithm's
seed s (`--seeds`), for `--budget-factor` x D evaluations. Algorithms work on the unit cube: u in [0, 1]^D is
x = -5 + 10 u in BBOB's domain [-5, 5]^D; they see f(x) and minimize it (pbo's optimizers get minimize=True).
A run records the best regret f(x) - f_opt after every evaluation, and the optimizer's overhead: the run's
wall (and CPU) time outside the objective, per evaluation. The report (per dimension, for all functions and
for each of COCO's five groups: separable f1-5, low/moderate conditioning f6-9, high conditioning f10-14,
multimodal with adequate global structure f15-19, multimodal with weak global structure f20-24):
  - ECDF (COCO's runtime distribution): the fraction of (run, target) pairs solved, 51 targets 10^2..10^-8 on
    the regret, after 10, 20, 50, 100 x D evaluations, and the ECDF's area over log10(evaluations) from 1 to
    the budget (1: all targets at once; comparable between algorithms at the same budget factor);
  - the median over runs (functions x instances x seeds) of log10 regret (floored at -8) at 10/20/50/100 x D;
  - the median overhead in ms per evaluation (wall, and CPU time which a loaded machine inflates less).
Tables go to stdout, progress lines to stderr; a JSON (`--json`) and a PNG of the ECDFs (`--png`).

Algorithms (`--algorithms`, comma-separated; default all): pbo's soo, bamsoo, bo, lhs, random (through
`make_optimizer(..., minimize=True, budget=...)`); direct (scipy DIRECT-L: locally_biased=True, stopped at
the budget); optuna_gp (GPSampler, deterministic_objective=True) and optuna_tpe (TPESampler,
constant_liar=True), seeded, via study.ask/tell; ngopt (nevergrad NGOpt, told the budget and workers); cma
(CMA-ES in [0, 1]^D, random start, sigma0 0.3, IPOP restarts when it stops before the budget). A variant
with options is `label=name:{yaml options}`, the options going to the algorithm's constructor, e.g.
`soo,soo_deep=soo:{h_max: 1000}` or `bo,bo_det=bo:{noise: 1.0e-6}`; a bad name or option is a one-line error.
SOO and DIRECT ignore the seed, so sequential runs of them use seed 0 only (copies would not change the ECDF
or the medians).

Asynchronous workers (`--workers W` > 1): a simulated cluster. W trials are kept in flight, each lasting a
lognormal time of mean 1 (`--sigma`, default 0.5; the same durations for every algorithm of a problem and
seed); when the earliest finishes it is told and new points are asked. pbo's optimizers may answer an ask with
None (nothing to propose until results come back): that worker waits. Optuna asks with trials still running;
nevergrad is built with num_workers=W; CMA-ES hands out its generation one point at a time and is told when the
whole generation is back. DIRECT is sequential only and is left out (the output says so). Tables then read
"label W=4", and curves are in order of completion.

Crashing trials (`--crash SHARE`): a trial crashes, with no value, in a half-space holding that share of the cube
(its direction random for each function, instance and dimension, turned so that it never holds the optimum:
`jobs/bbob/suite.py:crash_region`), as out-of-memory errors and diverged losses do at one end of a
hyperparameter range. A crash spends an evaluation and is told as a failure (NaN: pbo records a failed trial,
Optuna a FAIL); algorithms that cannot be told one (DIRECT, NGOpt, CMA-ES) are left out. The report adds the
crashed trials per run.

Commands (from the repository root; add `nice -n 10` on a shared machine):
    python jobs/bench_bbob.py --quick                                  # ~4 min on 2 cores: jobs/results/bbob_quick.json
    python jobs/bench_bbob.py --dims 2,5 --budget-factor 50 --instances 1 --seeds 1
    python jobs/bench_bbob.py --algorithms 'soo,soo_deep=soo:{h_max: 1000}' --functions 1-5,15
    python jobs/bench_bbob.py --workers 4 --algorithms bamsoo,bo,optuna_tpe,ngopt,cma --json jobs/results/w4.json
    python jobs/bench_bbob.py --reuse old.json --algorithms 'soo,bamsoo,new=bamsoo:{eta: 0.01}'  # only new runs
    python jobs/bench_bbob.py --report jobs/results/bbob.json          # tables and PNG, nothing run
    python jobs/bench_bbob.py --report jobs/results/bbob.json --versus bamsoo --no-png  # problem by problem
    python jobs/bench_bbob.py --crash 0.3 --dims 2,5 --budget-factor 20 --algorithms bo,optuna_gp,optuna_tpe
The full default (dims 2,5,10, instances 1-3, 100 x D, all algorithms) is hours of CPU: GP methods at 1000
evaluations in 10-D dominate it.

JSON layout: {"command": the command line, "argv", "settings": {dims, functions, instances, seeds,
budget_factor, workers, sigma, crash}, "algorithms": {label: {name, options}}, "left_out": [notes], "versions":
{python, pbo commit, numpy, scipy, torch, ioh, optuna, nevergrad, cma, ...}, "complete": false while running
(the file is saved every minute, so an interrupted run can be resumed with --reuse), "wall_seconds",
"summary": [one row per dim x function set x series: dim, scope, series, runs, area, solved {N: fraction at
N x D}, log_regret {N: median}, overhead_ms, overhead_cpu_ms], "runs": [{"job": {function, dim, instance,
seed, label, algorithm, options (canonical JSON), budget, workers, sigma, crash}, "evaluations", "improvements":
[[evaluation, best regret], ...] each time the best regret fell (the whole best-so-far curve, losslessly;
regrets to 6 significant digits), "crashes" (evaluations that crashed), "seconds", "overhead_ms",
"overhead_cpu_ms", "sim_time" (asynchronous: simulated time of the last result), "max_in_flight", "error"
(null, or why the algorithm raised: such a run is left out of the tables and rerun by --reuse)}]}.

Measurement notes: every process runs BLAS/OpenMP and torch on one thread (set here before numpy loads), so
that overheads are comparable and two processes do not fight over 2 cores; nevergrad 1.0.12's metamodel
breaks on numpy >= 2.4 and gets a one-line compatibility shim (see adapters.py).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One thread per process, set before numpy loads its BLAS and inherited by the pool's processes. Without it
# the OpenMP / OpenBLAS pools that sklearn (through nevergrad) and scipy load spin on every core: on 2 busy cores
# Optuna's GPSampler then burned 5-8x the CPU time per evaluation (420-580 ms instead of 55-70 ms in 5-D).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from jobs.bbob.adapters import ALGORITHMS, Spec, SpecError, check_spec, parse_specs  # noqa: E402
from jobs.bbob.report import format_crashes, format_paired, format_tables, paired, plot_ecdfs, summarize  # noqa: E402
from jobs.bbob.suite import Job, Run, preload, run_job  # noqa: E402

RESULTS = ROOT / "jobs" / "results"
QUICK_FUNCTIONS = "1,3,6,8,10,12,15,17,21,24"  # two per group
PACKAGES = ("numpy", "scipy", "torch", "botorch", "gpytorch", "ioh", "optuna", "nevergrad", "cma", "greenlet")
SAVE_EVERY_S = 60.0


@dataclass(frozen=True)
class Settings:
    dims: list[int]
    functions: list[int]
    instances: list[int]
    seeds: int
    budget_factor: int
    workers: int
    sigma: float
    crash: float = 0.0


def int_list(text: str) -> list[int]:
    """'1-5,12' -> [1, 2, 3, 4, 5, 12] (argparse type)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            out += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1-5,12, got {text!r}") from None
    return sorted(set(out))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = ", ".join(f"{name} ({a.description})" for name, a in ALGORITHMS.items())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int_list, help="dimensions (default 2,5,10; --quick 2,5)")
    parser.add_argument("--functions", type=int_list, help=f"BBOB functions 1-24 (default all; --quick {QUICK_FUNCTIONS})")
    parser.add_argument("--instances", type=int_list, help="BBOB instances (default 1-3; --quick 1)")
    parser.add_argument("--seeds", type=int, help="seeds per instance (default 1)")
    parser.add_argument("--budget-factor", type=int, help="evaluations per dimension (default 100; --quick 20)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS),
                        help=f"comma-separated name or label=name:{{options}}; names: {names}")
    parser.add_argument("--workers", type=int, default=1, help="simulated asynchronous workers (default 1)")
    parser.add_argument("--sigma", type=float, default=0.5, help="sigma of the lognormal trial durations (W > 1)")
    parser.add_argument("--crash", type=float, default=0.0, metavar="SHARE",
                        help="trials crash (no value) in a half-space holding this share of the cube, never the "
                             "optimum (default 0); only algorithms that take failed trials run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    parser.add_argument("--json", type=Path, help="output (default jobs/results/bbob.json, --quick bbob_quick.json)")
    parser.add_argument("--png", type=Path, help="ECDF plot (default: the JSON's path with .png)")
    parser.add_argument("--no-png", action="store_true", help="skip the plot (and matplotlib)")
    parser.add_argument("--reuse", type=Path, help="take matching runs from this JSON instead of rerunning them")
    parser.add_argument("--report", type=Path, help="print tables and draw the PNG from this JSON; run nothing")
    parser.add_argument("--quick", action="store_true", help="dims 2,5, 10 functions, 1 instance, 20 x D")
    parser.add_argument("--versus", metavar="SERIES",
                        help="also compare every other series with this one problem by problem (e.g. 'bamsoo' or "
                             "'bamsoo W=64'): ahead / even / behind and a sign test at each N x D")
    args = parser.parse_args(argv)
    if args.report:
        return args
    try:
        args.specs = parse_specs(args.algorithms)
        for spec in args.specs:
            check_spec(spec)
    except SpecError as exc:
        parser.error(str(exc))
    if min(args.workers, args.jobs, args.seeds or 1, args.budget_factor or 1) < 1 or args.sigma < 0:
        parser.error("--workers, --jobs, --seeds and --budget-factor must be at least 1, --sigma at least 0")
    if not 0.0 <= args.crash < 1.0:
        parser.error(f"--crash: the share of the cube where trials crash must be in [0, 1), got {args.crash}")
    if args.functions and not set(args.functions) <= set(range(1, 25)):
        parser.error(f"--functions: BBOB has functions 1-24, got {args.functions}")
    if args.dims and min(args.dims) < 2:
        parser.error("--dims: BBOB dimensions start at 2")
    return args


def settings_of(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(dims=args.dims or ([2, 5] if quick else [2, 5, 10]),
                    functions=args.functions or (int_list(QUICK_FUNCTIONS) if quick else list(range(1, 25))),
                    instances=args.instances or ([1] if quick else [1, 2, 3]), seeds=args.seeds or 1,
                    budget_factor=args.budget_factor or (20 if quick else 100), workers=args.workers,
                    sigma=args.sigma, crash=args.crash)


def runnable(specs: list[Spec], workers: int, crash: float = 0.0) -> tuple[list[Spec], list[str]]:
    """The specs that can run with `workers` (and crashing trials), and a note for each left out."""
    kept, notes = [], []
    for s in specs:
        if workers > 1 and s.algorithm.sequential_only:
            notes.append(f"{s.label}: {s.name} is sequential only, left out of the asynchronous W={workers} runs")
        elif crash and not s.algorithm.takes_failures:
            notes.append(f"{s.label}: {s.name} cannot be told a failed trial, left out of the runs with crashes")
        else:
            kept.append(s)
    return kept, notes


def seeds_of(spec: Spec, settings: Settings) -> range:
    """A deterministic algorithm's seeds would repeat one run, unless simulated durations vary with the seed."""
    return range(1 if spec.algorithm.deterministic and settings.workers == 1 else settings.seeds)


def make_jobs(settings: Settings, specs: list[Spec]) -> list[Job]:
    """Every run, in the order of the report: algorithm, dimension, function, instance, seed."""
    return [Job(f, d, i, s, spec.label, spec.name, spec.options_json(), settings.budget_factor * d,
                settings.workers, settings.sigma, settings.crash)
            for spec in specs for d in settings.dims for f in settings.functions
            for i in settings.instances for s in seeds_of(spec, settings)]


def slowest_first(jobs: list[Job]) -> list[Job]:
    """Expensive runs first, so that a pool's processes finish together."""
    return sorted(jobs, key=lambda j: -ALGORITHMS[j.algorithm].cost * j.budget * j.dim)


def load_runs(path: Path) -> tuple[dict[str, Any], list[Run]]:
    try:
        data = json.loads(path.read_text())
        return data, [Run.from_dict(r) for r in data["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"bench_bbob: {path} is not a BBOB benchmark JSON ({type(exc).__name__}: {exc})")


def reused(path: Path, jobs: list[Job]) -> list[Run]:
    """The successful runs in an earlier JSON whose job is one of `jobs`, field for field."""
    wanted = set(jobs)
    return [r for r in load_runs(path)[1] if r.job in wanted and r.error is None]


def execute(jobs: list[Job], processes: int) -> Iterator[Run]:
    """Run jobs in a spawn pool (each in its own process, torch on one thread), yielding as they finish."""
    names = {j.algorithm for j in jobs}
    if processes == 1 or len(jobs) <= 1:
        preload(names)
        yield from map(run_job, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(processes, len(jobs)), initializer=preload,
                                                   initargs=(names,)) as pool:
        yield from pool.imap_unordered(run_job, jobs)


def progress(i: int, total: int, run: Run) -> str:
    job, w = run.job, f" W={run.job.workers}" if run.job.workers > 1 else ""
    lg = f"{math.log10(max(run.improvements[-1][1], 1e-8)):.1f}" if run.improvements else "none"
    tail = f" ERROR {run.error}" if run.error else ""
    return (f"[{i}/{total}] {job.label}{w} f{job.function} d{job.dim} i{job.instance} s{job.seed}: "
            f"log10 regret {lg}, {run.seconds:.1f} s{tail}")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    try:
        out["pbo commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["pbo commit"] = "unknown"
    for package in PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def save(path: Path, header: dict[str, Any], runs: list[Run], complete: bool, wall: float) -> None:
    data = {**header, "complete": complete, "wall_seconds": round(wall, 1),
            "summary": [asdict(row) for row in summarize(runs)] if complete else [],
            "runs": [r.to_dict() for r in runs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(path)


def report(runs: list[Run], png: Path | None, headline: str, notes: list[str], versus: str | None = None) -> None:
    print(headline)
    for note in notes:
        print(f"note: {note}")
    for run in (r for r in runs if r.error):
        print(f"failed: {run.job.label} f{run.job.function} d{run.job.dim} i{run.job.instance} s{run.job.seed}: "
              f"{run.error}")
    print(format_tables(summarize(runs)))
    if any(r.job.crash for r in runs):
        print()
        print(format_crashes(runs))
    if versus:
        print()
        print(format_paired(paired(runs, versus), versus))
    if png:
        plot_ecdfs(runs, png, headline)
        print(f"ECDF plot: {png}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        data, runs = load_runs(args.report)
        png = None if args.no_png else args.png or args.report.with_suffix(".png")
        report(runs, png, data.get("command", str(args.report)), data.get("left_out", []), args.versus)
        return 0
    settings = settings_of(args)
    specs, notes = runnable(args.specs, settings.workers, settings.crash)
    if not specs:
        sys.exit("bench_bbob: no algorithm left to run (" + "; ".join(notes) + ")")
    out = args.json or RESULTS / ("bbob_quick.json" if args.quick else "bbob.json")
    jobs = make_jobs(settings, specs)
    runs = reused(args.reuse, jobs) if args.reuse else []
    done = {r.job for r in runs}
    todo = slowest_first([j for j in jobs if j not in done])
    command = "python jobs/bench_bbob.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    header = {"command": command, "argv": sys.argv[1:] if argv is None else argv, "settings": asdict(settings),
              "algorithms": {s.label: {"name": s.name, "options": s.options} for s in specs},
              "left_out": notes, "versions": versions()}
    print(f"{len(todo)} runs to do, {len(runs)} reused, {args.jobs} processes", file=sys.stderr, flush=True)
    start, saved = time.perf_counter(), time.perf_counter()
    for i, run in enumerate(execute(todo, args.jobs), 1):
        runs.append(run)
        print(progress(i, len(todo), run), file=sys.stderr, flush=True)
        if time.perf_counter() - saved > SAVE_EVERY_S:
            save(out, header, runs, False, time.perf_counter() - start)
            saved = time.perf_counter()
    wall = time.perf_counter() - start
    order = {j: k for k, j in enumerate(jobs)}
    runs.sort(key=lambda r: order[r.job])
    save(out, header, runs, True, wall)
    w = f", W={settings.workers} asynchronous (sigma {settings.sigma})" if settings.workers > 1 else ""
    headline = (f"BBOB: dims {settings.dims}, {len(settings.functions)} functions, instances {settings.instances}, "
                f"{settings.seeds} seed(s), budget {settings.budget_factor} x D{w}; {len(todo)} runs in {wall:.0f} s "
                f"on {args.jobs} processes ({len(runs) - len(todo)} reused)")
    report(runs, None if args.no_png else args.png or out.with_suffix(".png"), headline, notes, args.versus)
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
