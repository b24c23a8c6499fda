"""Sequential regret and overhead of a tree optimizer on the synthetic functions (one worker, plain ask/tell).

Budgets are those of the BaMSOO paper (Branin, Rosenbrock, Hartmann3: 200; Shekel-4D, Hartmann6: 500).
SOO and BaMSOO are deterministic given the function, so one run per function is the figure.
Prints one row per function: simple regret at 100, 200, (300, 500) evaluations, median ask+tell ms per
evaluation, and (BaMSOO) children approximated and the final `sd_scale`.

Usage: nice -n 10 python jobs/bench_regret.py [--algorithm bamsoo] [--functions shekel,hartmann6]
       [--options '{"eta": 0.01}']
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbo.objectives.synthetic import FUNCTIONS  # noqa: E402
from pbo.optimizers import make_optimizer  # noqa: E402
from pbo.space import Space  # noqa: E402

BUDGETS = {"branin": 200, "rosenbrock": 200, "hartmann3": 200, "shekel": 500, "hartmann6": 500}
CHECKPOINTS = (100, 200, 300, 500)


def run(algorithm: str, name: str, options: dict) -> dict:
    f = FUNCTIONS[name]
    opt = make_optimizer(algorithm, Space.from_dict(f.space()), **options)
    best, seconds, regret = -np.inf, [], {}
    for i in range(1, BUDGETS[name] + 1):
        start = time.perf_counter()
        cand = opt.ask()
        asked = time.perf_counter() - start
        value = f(cand.params)
        start = time.perf_counter()
        opt.tell(cand.id, value)
        seconds.append(asked + time.perf_counter() - start)
        best = max(best, value)
        if i in CHECKPOINTS:
            regret[i] = f.optimum - best
    return {"regret": regret, "ms": 1e3 * float(np.median(seconds)),
            "approximated": getattr(opt, "n_approximated", None), "sd_scale": getattr(opt, "sd_scale", None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="bamsoo")
    parser.add_argument("--functions", default=",".join(BUDGETS))
    parser.add_argument("--options", default="{}", help="optimizer options as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = json.loads(args.options)
    print(f"{args.algorithm} {options or ''}")
    print(f"{'function':11s}" + "".join(f"{f'@{n}':>10s}" for n in CHECKPOINTS) + "   ms/eval  approximated  sd_scale")
    for name in args.functions.split(","):
        row = run(args.algorithm, name, options)
        cells = "".join(f"{row['regret'][n]:10.2e}" if n in row["regret"] else f"{'':10s}" for n in CHECKPOINTS)
        extra = "" if row["approximated"] is None else f"{row['approximated']:14d}{row['sd_scale']:10.2f}"
        print(f"{name:11s}{cells}{row['ms']:10.1f}{extra}", flush=True)


if __name__ == "__main__":
    main()
