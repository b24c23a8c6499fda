"""`python -m pbo.log show FILE.h5` (summary) and `python -m pbo.log export FILE.h5 --csv OUT.csv`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime

from pbo.log.export import write_csv
from pbo.log.reader import read
from pbo.log.resume import ResumeState, load_resume
from pbo.log.storage import LogError


def summary(state: ResumeState) -> str:
    run, attrs = state.run, state.run.attrs
    started = datetime.fromtimestamp(float(attrs["start_time"])).isoformat(sep=" ", timespec="seconds")
    counts = Counter(run.trials["status"].tolist())
    lines = [
        f"{run.path}: {attrs['algorithm']} on {attrs.get('objective') or '?'}, seed {attrs['seed']}, "
        f"{attrs['n_workers']} workers, started {started} on {attrs['hostname']} (pbo {attrs['pbo_version']})",
        f"trials: {run.n_trials} finished ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}), "
        f"{len(state.in_flight)} in flight; budget {state.settings.get('budget', '?')}",
    ]
    best = run.best()
    if best is not None:
        params = ", ".join(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
                           for name, value in run.params(best).items())
        lines.append(f"best: trial {run.trials['trial_id'][best]} value {run.trials['value'][best]:.6g} ({params})")
    if run.metrics:
        lines.append(f"metrics: {', '.join(run.metrics)}")
    reports = len(run.reports.get("trial_id", ()))
    if reports:
        lines.append(f"reports: {reports} from {len(set(run.reports['trial_id'].tolist()))} trials")
    if run.tree is not None:
        lines.append(f"tree: {len(run.tree['node_id'])} nodes")
    if attrs.get("resumes"):
        lines.append(f"resumed {len(attrs['resumes'])} time(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbo.log", description="Inspect and export pbo run logs.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print a summary of a log")
    show.add_argument("log")
    export = commands.add_parser("export", help="write the trials of a log as CSV")
    export.add_argument("log")
    export.add_argument("--csv", required=True, metavar="OUT.csv", help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            print(summary(load_resume(args.log)))
        else:
            rows = write_csv(read(args.log), args.csv)
            print(f"wrote {rows} trials to {args.csv}")
    except (LogError, OSError) as exc:
        print(f"pbo.log: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
