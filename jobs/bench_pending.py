"""GP-BO with asks outstanding: regret and ask time for each way of handling the pending points (`pending`).

A plain ask/tell loop keeps `--workers` candidates outstanding, as a parallel run does, and completes them
in a seeded random order (the objective costs nothing here). Prints one row per function and mode: the
median ask time and the median and mean over seeds of log10 simple regret (floored at 1e-12) after the
budget.

Usage: nice -n 10 python jobs/bench_pending.py [--functions hartmann6,branin] [--modes believer,qlognei]
       [--workers 8] [--budget 60] [--seeds 12] [--options '{"raw_samples": 256}']
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbo.objectives.synthetic import FUNCTIONS  # noqa: E402
from pbo.optimizers import make_optimizer  # noqa: E402
from pbo.optimizers.bo import PENDING_MODES  # noqa: E402
from pbo.space import Space  # noqa: E402


def run(name: str, pending: str, seed: int, workers: int, budget: int, options: dict) -> tuple[float, list[float]]:
    """log10 regret after `budget` evaluations, and the seconds of each ask made with results outstanding."""
    f = FUNCTIONS[name]
    opt = make_optimizer("bo", Space.from_dict(f.space()), seed=seed, budget=budget, pending=pending, **options)
    order = np.random.default_rng(seed)
    outstanding = [opt.ask() for _ in range(workers)]
    asks = []
    while outstanding:
        cand = outstanding.pop(int(order.integers(len(outstanding))))
        opt.tell(cand.id, f(cand.params))
        if len(opt.trials) < budget:
            start = time.perf_counter()
            outstanding.append(opt.ask())
            asks.append(time.perf_counter() - start)
    return float(np.log10(max(f.optimum - opt.best().value, 1e-12))), asks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", default="hartmann6,branin")
    parser.add_argument("--modes", default=",".join(PENDING_MODES))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--options", default="{}", help="other bo options as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # BoTorch's numerical warnings on tiny designs
    options = json.loads(args.options)
    print(f"GP-BO, {args.workers} asks outstanding, budget {args.budget}, {args.seeds} seeds {options or ''}\n")
    print("| function | pending | median ask ms | median log10 regret | mean log10 regret |")
    print("|---|---|---|---|---|")
    for name in args.functions.split(","):
        for mode in args.modes.split(","):
            regrets, asks = [], []
            for seed in range(args.seeds):
                regret, seconds = run(name, mode, seed, args.workers, args.budget, options)
                regrets.append(regret)
                asks += seconds
                print(f"  {name} {mode} seed {seed}: log10 regret {regret:.2f}", file=sys.stderr, flush=True)
            print(f"| {name} | {mode} | {1e3 * np.median(asks):.1f} | {np.median(regrets):.2f} | "
                  f"{np.mean(regrets):.2f} |", flush=True)


if __name__ == "__main__":
    main()
