"""Measure the tiny study's response surface: the base model, then trials on a grid or a random sample.

    nice -n 10 python jobs/llm/tiny_surface.py grid            # learning rate x (rank, alpha), defaults elsewhere
    nice -n 10 python jobs/llm/tiny_surface.py random --n 40   # uniform over the study's space (seeded)
    nice -n 10 python jobs/llm/tiny_surface.py point --params '{"lora_rank": 8, ...}'

Prints one row per trial (objective, each task's accuracy, seconds) and the best configuration seen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pbo.objectives import resolve_objective  # noqa: E402
from pbo.objectives.llm.train import TrialFailed  # noqa: E402
from pbo.space import Space  # noqa: E402

STUDY = ROOT / "pbo" / "studies" / "tiny_llm.yaml"
DEFAULTS = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05, "learning_rate": 3e-3, "weight_decay": 1e-4}


def points(mode: str, space: Space, n: int, seed: int, params: str) -> list[dict]:
    if mode == "point":
        return [{**DEFAULTS, **json.loads(params)}]
    if mode == "random":
        rng = np.random.default_rng(seed)
        return [space.from_unit(rng.random(space.dim)) for _ in range(n)]
    grid = []
    for lr in (1e-9, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1):
        for rank, alpha in ((1, 1), (8, 16), (2, 32)):
            grid.append({**DEFAULTS, "learning_rate": lr, "lora_rank": rank, "lora_alpha": alpha})
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["grid", "random", "point"])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    study = yaml.safe_load(args.study.read_text())
    objective = resolve_objective("llm", study["objective_options"])
    space = Space.from_dict(study["space"])
    tasks = [k for k in objective.function.args[0].objective_weights]
    print("| " + " | ".join(["params", objective.key, *tasks, "train s", "eval s"]) + " |")
    if not args.no_baseline:
        m = objective.baseline()
        print(f"| base model | {m[objective.key]:.3f} | " + " | ".join(f"{m[t]:.3f}" for t in tasks)
              + f" | 0 | {m['eval_seconds']:.1f} |", flush=True)
    best = (-1.0, None)
    for p in points(args.mode, space, args.n, args.seed, args.params):
        text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())
        start = time.perf_counter()
        try:
            m = objective.function(p)
        except TrialFailed as exc:
            print(f"| {text} | failed: {exc} | | | {time.perf_counter() - start:.1f} | |", flush=True)
            continue
        print(f"| {text} | {m[objective.key]:.3f} | " + " | ".join(f"{m[t]:.3f}" for t in tasks)
              + f" | {m['train_seconds']:.1f} | {m['eval_seconds']:.1f} |", flush=True)
        best = max(best, (m[objective.key], text), key=lambda b: b[0])
    print(f"best: {best[0]:.3f} at {best[1]}")


if __name__ == "__main__":
    main()
