"""One command from HDF5 logs to a Markdown report with PNG figures, for finished and live runs alike.

    python -m analysis.report runs/*.h5 --out report/ [--threshold 0.47]

writes report/report.md (comparison table, convergence, LLM task metrics, then per run: worker timeline,
learning curves and compute by final status when the objective reported, hyperparameter effects, partition
tree) and the figures beside it. Every figure is also a function of
`analysis` for notebooks.
"""

from __future__ import annotations

import argparse
import sys

from analysis.document import problem, unique_names, write_report
from analysis.runs import AnalysisError, load_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", help="HDF5 logs written by pbo (finished or live)")
    parser.add_argument("--out", default="report", help="folder for report.md and its figures (default report/)")
    parser.add_argument("--threshold", type=float, help="value to reach for the 'to threshold' columns "
                                                         "(default: per objective, the worst run's best value)")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(path) for path in args.logs]
    except AnalysisError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    unique_names(runs)
    for run in runs:
        if (line := problem(run)) is not None:
            print(f"report: {line}", file=sys.stderr)
    if all(len(run) == 0 for run in runs):
        print("report: no log holds a finished trial: nothing to report", file=sys.stderr)
        return 1
    thresholds = None if args.threshold is None else {run.objective: args.threshold for run in runs}
    path = write_report(runs, args.out, thresholds)
    print(f"report: wrote {path} ({len(runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
