"""Early stopping on the embedded tiny LLM study: real LoRA training and real lm-eval, pruner none vs asha.

What it runs. `python -m pbo.run --config <the packaged tiny_llm.yaml>` (a subprocess per run: real worker
processes, real training of the 0.9 M-parameter model, real lm-eval), once without a pruner and once with each
pruner of `--pruners`, for `--seeds` seeds. Seed s seeds the algorithm and the objective's training (batches,
adapter initialisation, dropout), so the runs of a seed differ only by the pruner. The study reports a quick
score over `eval_limit` HellaSwag-format items at 1/8, 1/4 and 1/2 of its `max_steps` (tiny_llm.yaml); ASHA's
rungs are set on those reports (the first at the 1/8 report, the next at 3x that step, judged at the 1/2 one).

Per run (from its log, read back with pbo.log.read):
  - best: the best final score (status ok) and the gap to the seed's unpruned best;
  - steps: training steps spent over the study (a trial run to its end counts max_steps, a pruned one the step
    of its last report), and their share of the unpruned run's;
  - doomed stopped: of the trials whose final score in the unpruned run of the seed is below chance + 0.05
    (chance: 1/4, the tasks' four endings), those the pruned run also tried (the same point) and stopped by a
    quarter of max_steps, over those it tried.
The target (docs/benchmarks.md, "Early stopping"): best within 0.02 of the unpruned run's for at most half of its
training steps, and doomed trials stopped before a quarter of their steps.

Commands (from the repository root; each run is 30 trials of 15-40 s on one core):
    nice -n 10 python jobs/bench_pruning_tiny.py --pruners none,asha,asha_eta4 --workers 2 --json
    nice -n 10 python jobs/bench_pruning_tiny.py --pruners none,mfbamsoo --workers 2 --unpruned-from \
        jobs/results/pruning_tiny.json --json jobs/results/pruning_tiny_mf.json   # its unpruned runs reused
    python jobs/bench_pruning_tiny.py --seeds 1 --budget 6  # a quick look (a few minutes)
The first writes jobs/results/pruning_tiny.json (3 seeds, bamsoo, 2 workers sharing 2 cores).

JSON layout: {"command", "settings", "rows": [one per pruner setting], "runs": [{pruner, seed, best, steps, trials,
statuses, doomed, doomed_tried, doomed_stopped, wall_seconds}]}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.bench_pruning import DOOMED_MARGIN, EARLY, write_results  # noqa: E402
from pbo.log import read  # noqa: E402

STUDY = ROOT / "pbo" / "studies" / "tiny_llm.yaml"
CHANCE = 0.25  # four endings per HellaSwag-format item
#: Named settings on the study's reports (max_steps 150, reports at steps 19, 38 and 75): (pruner, its options,
#: (algorithm, its options) or None for --algorithm's). asha: rungs at 19 and 57 (judged at the 19 and 75
#: reports), the top third kept; asha_eta4: one rung, at 19 (the next, 76, is past the last report), the top
#: quarter kept; mfbamsoo: no pruner, the multi-fidelity BaMSOO (shallow cells stopped at the 1/4 report) in place
#: of the study's algorithm; mfbamsoo_asha: that with asha; mfbamsoo_short: 70% of the trials short (`low_share:
#: 0.7`, 21 of 30), what half the training takes.
MF = ("mfbamsoo", {})
PRUNERS: dict[str, tuple[str, dict[str, Any], tuple[str, dict[str, Any]] | None]] = {
    "none": ("none", {}, None), "asha": ("asha", {"eta": 3, "min_resource": 19}, None),
    "asha_eta4": ("asha", {"eta": 4, "min_resource": 19}, None), "median": ("median", {"warmup_trials": 4}, None),
    "mfbamsoo": ("none", {}, MF), "mfbamsoo_asha": ("asha", {"eta": 3, "min_resource": 19}, MF),
    "mfbamsoo_short": ("none", {}, ("mfbamsoo", {"low_share": 0.7}))}


def run_study(config: dict[str, Any], pruner: str, seed: int, workers: int, folder: Path) -> tuple[Any, float]:
    """One study in a subprocess; its log read back and its wall-clock seconds."""
    name, options, algorithm = PRUNERS[pruner]
    study = {**config, "seed": seed, "objective_options": {**config["objective_options"], "seed": seed},
             "pruner": name, "pruner_options": options, "progress": False, "workers": workers}
    if algorithm is not None:
        study["algorithm"], study["optimizer"] = algorithm
    path = folder / f"{pruner}-s{seed}.yaml"
    path.write_text(yaml.safe_dump(study))
    out = folder / f"{pruner}-s{seed}.h5"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pbo.run", "--config", str(path), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{out.name}: pbo.run exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return read(out), time.perf_counter() - start


def point_key(params: dict[str, Any]) -> str:
    return json.dumps({k: float(v) for k, v in sorted(params.items())})


def run_metrics(data: Any, max_steps: int, unpruned: dict[str, float] | None) -> dict[str, Any]:
    """What one run found and spent; `unpruned` maps the unpruned run's points to their final scores."""
    trials = data.trials
    rows = np.flatnonzero(trials["trial_id"] != 0)  # trial 0: the untuned baseline
    status = trials["status"][rows]
    ok = (status == "ok") & np.isfinite(trials["value"][rows])
    steps = np.where(status == "pruned", trials["step"][rows], max_steps)
    finals = {point_key(data.params(i)): float(trials["value"][i]) for i, good in zip(rows, ok) if good}
    metrics = {"best": max(finals.values()) if finals else float("nan"), "steps": int(steps.sum()),
               "trials": int(len(rows)), "statuses": {str(s): int((status == s).sum()) for s in sorted(set(status))},
               "finals": finals}
    if unpruned is not None:
        doomed = {key for key, value in unpruned.items() if value < CHANCE + DOOMED_MARGIN}
        tried = {point_key(data.params(i)): step for i, step in zip(rows, steps)}
        seen = doomed & set(tried)
        metrics.update(doomed=len(doomed), doomed_tried=len(seen),
                       doomed_stopped=int(sum(tried[key] <= EARLY * max_steps for key in seen)))
    return metrics


def unpruned_runs(path: Path, config: dict[str, Any], workers: int) -> dict[int, dict[str, Any]]:
    """The unpruned runs of an earlier results file, by seed, if it ran the same study; else a one-line error."""
    earlier = json.loads(path.read_text())
    settings, options = earlier["settings"], config["objective_options"]
    same = {"algorithm": config["algorithm"], "budget": config["budget"], "max_steps": int(options["max_steps"]),
            "eval_at": options["eval_at"], "eval_limit": options["eval_limit"], "workers": workers}
    differ = sorted(key for key, value in same.items() if settings.get(key) != value)
    if differ:
        raise SystemExit(f"bench_pruning_tiny: error: --unpruned-from {path}: a different study ({', '.join(differ)})")
    return {run["seed"]: run for run in earlier["runs"] if run["pruner"] == "none"}


def summarize(runs: list[dict[str, Any]], pruners: list[str]) -> list[dict[str, Any]]:
    rows = []
    for pruner in pruners:
        group = [r for r in runs if r["pruner"] == pruner]
        base = {r["seed"]: r for r in runs if r["pruner"] == "none"}
        gaps = [base[r["seed"]]["best"] - r["best"] for r in group]
        shares = [r["steps"] / base[r["seed"]]["steps"] for r in group]
        tried = int(sum(r.get("doomed_tried", 0) for r in group))
        rows.append({"pruner": pruner, "seeds": len(group), "best": float(np.median([r["best"] for r in group])),
                     "gap_max": float(max(gaps)), "steps": float(np.median([r["steps"] for r in group])),
                     "steps_share_max": float(max(shares)),
                     "doomed": int(sum(r.get("doomed", 0) for r in group)), "doomed_tried": tried,
                     "doomed_stopped": int(sum(r.get("doomed_stopped", 0) for r in group))})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| pruner | seeds | best (median) | largest gap to unpruned best | training steps (median) "
             "| largest share of unpruned steps | doomed stopped by 1/4 (tried) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        stopped = "-" if r["pruner"] == "none" else f"{r['doomed_stopped']} ({r['doomed_tried']})"
        lines.append(f"| {r['pruner']} | {r['seeds']} | {r['best']:.3f} | {r['gap_max']:+.3f} | {r['steps']:.0f} | "
                     f"{r['steps_share_max']:.2f} | {stopped} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default=None, help="default: the study's (bamsoo)")
    parser.add_argument("--pruners", default="none,asha", help="none first: the others are compared with it")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=None, help="trials per run (default: the study's, 30)")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes (one core each)")
    parser.add_argument("--keep", type=Path, help="keep the runs' logs and configs in this folder")
    parser.add_argument("--unpruned-from", type=Path, metavar="JSON",
                        help="take the unpruned runs from this earlier results file (same algorithm, budget, "
                             "steps, reports and workers) instead of running them again")
    parser.add_argument("--json", nargs="?", const=str(ROOT / "jobs" / "results" / "pruning_tiny.json"),
                        help="write the results (default path jobs/results/pruning_tiny.json)")
    args = parser.parse_args(argv)
    pruners = args.pruners.split(",")
    if pruners[0] != "none" or not set(pruners) <= set(PRUNERS):
        parser.error(f"--pruners: give none first, then any of {', '.join(PRUNERS)}")
    config = yaml.safe_load(STUDY.read_text())
    config.update({k: v for k, v in (("algorithm", args.algorithm), ("budget", args.budget)) if v is not None})
    max_steps = int(config["objective_options"]["max_steps"])
    earlier = unpruned_runs(args.unpruned_from, config, args.workers) if args.unpruned_from else {}
    missing = sorted(set(range(args.seeds)) - set(earlier))
    if args.unpruned_from and missing:
        parser.error(f"--unpruned-from: {args.unpruned_from} has no unpruned run for seed(s) {missing}")
    runs, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(args.seeds):
            unpruned = None
            for pruner in pruners:
                if pruner == "none" and seed in earlier:
                    runs.append(earlier[seed])
                    unpruned = earlier[seed]["finals"]
                    continue
                data, seconds = run_study(config, pruner, seed, args.workers, folder)
                metrics = run_metrics(data, max_steps, unpruned)
                if pruner == "none":
                    unpruned = metrics["finals"]
                    metrics = run_metrics(data, max_steps, unpruned)
                runs.append({"pruner": pruner, "seed": seed, "wall_seconds": round(seconds, 1), **metrics})
                print(f"  {pruner} seed {seed}: best {metrics['best']:.3f}, {metrics['steps']} steps, "
                      f"{metrics['statuses']}, {seconds:.0f} s", file=sys.stderr, flush=True)
    rows = summarize(runs, pruners)
    print(markdown(rows))
    if args.json:
        settings = {"algorithm": config["algorithm"], "budget": config["budget"], "seeds": args.seeds,
                    "max_steps": max_steps, "eval_at": config["objective_options"]["eval_at"],
                    "eval_limit": config["objective_options"]["eval_limit"],
                    "workers": args.workers, "pruners": {p: PRUNERS[p] for p in pruners},
                    "wall_seconds": round(time.perf_counter() - start)}
        write_results(Path(args.json), "jobs/bench_pruning_tiny.py", argv, settings, rows, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
