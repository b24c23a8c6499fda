"""Strong and weak scaling experiments: the same study run with W = 1, 2, 4, ... workers, then plotted.

Strong scaling keeps the budget fixed; weak scaling gives each run `budget x W` evaluations. Real runs start
`mpirun -np W+1 python -m pbo.run` (a synthetic objective whose cost model sleeps, jobs/studies/scaling.yaml);
`--simulate` runs the same scheduler on a virtual clock (jobs/studies/scaling_simulated.yaml, 43-minute
trials), so W can reach thousands. Logs go to OUT/<mode>-<real|simulated>/<algorithm>-W<W>.h5, an existing
log is resumed rather than redone, and the figure and table (speedup, efficiency, utilization, quality against W)
land beside them as scaling.png and scaling.md.

    python jobs/scaling/scaling.py --mode strong --workers 1,2,4,8 --budget 32 --algorithms random,lhs
    python jobs/scaling/scaling.py --mode weak --simulate --workers 1,4,16,64,256,1024 --budget 4
    python jobs/scaling/scaling.py ... --dry-run        # print the commands only
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analysis.runs import AnalysisError, load_run  # noqa: E402
from analysis.scaling import plot_scaling, scaling_markdown, scaling_points  # noqa: E402

#: The study config of real runs (False) and simulated ones (True).
STUDIES = {False: ROOT / "jobs/studies/scaling.yaml", True: ROOT / "jobs/studies/scaling_simulated.yaml"}


def find_mpirun() -> str:
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.exists() else (shutil.which("mpirun") or "mpirun")


def run_command(args: argparse.Namespace, algorithm: str, workers: int, log: Path) -> list[str]:
    """The command of one run: `pbo.run` under mpirun (W workers + the master) or on the simulator."""
    budget = args.budget * workers if args.mode == "weak" else args.budget
    config = args.config or STUDIES[args.simulate]
    run = [sys.executable, "-m", "pbo.run", "--config", str(config), "--algorithm", algorithm,
           "--budget", str(budget), "--seed", str(args.seed)]
    run += ["--resume", str(log)] if log.exists() else ["--out", str(log)]
    if args.simulate:
        return run + ["--simulate", str(workers)]
    return [args.mpirun, "-np", str(workers + 1), *shlex.split(args.mpirun_args)] + run


def run_forwarding_signals(command: list[str]) -> tuple[int, bool]:
    """Run one command; SIGTERM/SIGINT to the driver (a job near its walltime) go to it, so the pbo master
    stops cleanly and leaves a log to resume. Returns its exit status and whether it was stopped."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": path})
    stopped = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait(), bool(stopped)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("strong", "weak"), default="strong")
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts (default 1,2,4,8)")
    parser.add_argument("--budget", type=int, default=32, help="evaluations (weak: per worker) (default 32)")
    parser.add_argument("--algorithms", default="random,lhs", help="comma-separated (default random,lhs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulate", action="store_true", help="virtual clock instead of real MPI ranks")
    parser.add_argument("--config", help="study config (default: jobs/studies/scaling[_simulated].yaml)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "scaling"), help="folder for logs, figure and table")
    parser.add_argument("--mpirun", default=find_mpirun())
    parser.add_argument("--mpirun-args", default="", help="extra mpirun options, e.g. '-f hosts' on a cluster")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if min(args.workers) < 1 or args.budget < 1:
        parser.error("--workers and --budget must be >= 1")
    args.algorithms = [a for a in args.algorithms.split(",") if a]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(args.out) / f"{args.mode}-{'simulated' if args.simulate else 'real'}"
    logs = []
    for algorithm in args.algorithms:
        for workers in args.workers:
            log = folder / f"{algorithm}-W{workers}.h5"
            command = run_command(args, algorithm, workers, log)
            print(shlex.join(command), flush=True)
            if args.dry_run:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            returncode, stopped = run_forwarding_signals(command)
            if stopped:
                print(f"scaling: stopped during {algorithm} with W={workers}; run the same command again to resume",
                      file=sys.stderr)
                return 143
            if returncode != 0:
                print(f"scaling: {algorithm} with W={workers} failed (exit {returncode}); see above", file=sys.stderr)
                return 1
            logs.append(log)
    if args.dry_run:
        return 0
    try:
        runs = [load_run(log) for log in logs]
    except AnalysisError as exc:
        print(f"scaling: {exc}", file=sys.stderr)
        return 1
    plot_scaling(runs, args.mode).savefig(folder / "scaling.png", dpi=110)
    table = scaling_markdown(scaling_points(runs, args.mode))
    (folder / "scaling.md").write_text(f"# {args.mode} scaling ({'simulated' if args.simulate else 'real MPI'})\n\n"
                                       f"![scaling](scaling.png)\n\n{table}")
    print(table)
    print(f"scaling: wrote {folder / 'scaling.png'} and {folder / 'scaling.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
