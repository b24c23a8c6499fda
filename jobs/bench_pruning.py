"""Early stopping on a simulated reference study: pruner none vs asha vs median, for random, bamsoo and bo.

What it runs. `python -m pbo.run` (in process) on `llm_landscape` with learning curves (`eval_at: [0.125, 0.25,
0.5]`: a quick score over 500 items at an eighth, a quarter and half of the 3,235 training steps; see
pbo/objectives/landscape.py), the reference space (learning rate 1e-10..1e-1), 50 trials on 4 simulated workers,
trials of the reference study's cost (lognormal, mean 43 min, sigma 0.1), the untuned baseline as trial 0. A
trial stopped at fidelity f ends after f x its duration (the simulator's rule). Seed s seeds the algorithm, the
landscape's noise and the durations, so the three pruners of a seed see the same trials until they differ.

Per run (from its log, read back with pbo.log.read):
  - best: the best final score (status ok) and its true (noise-free) accuracy;
  - GPU-h to best: GPU-hours (one GPU per worker, the baseline included) spent until the run's best final score
    first reaches the same algorithm and seed's unpruned best ("-": never), or with `--reference LABEL` that
    algorithm's unpruned best (e.g. mfbamsoo against bamsoo);
  - GPU-h: all GPU-hours of the run; hours: its wall-clock length;
  - training: the training spent, in trials' worth (a trial run to its end counts 1, a pruned one the fraction
    of its steps it reached; the unpruned run spends the budget);
  - doomed stopped: of the trials whose true accuracy is below chance + 0.05, the share stopped by a quarter of
    their steps (at the 1/8 or 1/4 report).
With `--pruned-budget N` the pruned runs get N trials instead (e.g. about the unpruned run's GPU-hours), to ask
what the saved compute buys. Rows give medians over seeds (best, GPU-h to best over the seeds that reached it,
with how many), totals over seeds for doomed stopped.

Commands (from the repository root; a few minutes on one core):
    nice -n 10 python jobs/bench_pruning.py --json     # docs/benchmarks.md "Early stopping": jobs/results/pruning.json
    nice -n 10 python jobs/bench_pruning.py --pruned-budget 120 --json jobs/results/pruning_120.json   # ~equal GPU-h
    python jobs/bench_pruning.py --seeds 1 --algorithms random --budget 20   # a quick look
    nice -n 10 python jobs/bench_pruning.py --algorithms bamsoo,mfbamsoo --reference bamsoo --json \
        jobs/results/pruning_mf.json                   # multi-fidelity BaMSOO beside BaMSOO with and without ASHA

JSON layout: {"command", "settings", "rows": [one per algorithm x pruner], "runs": [{algorithm, pruner, seed, trials,
best, best_true, gpu_hours_to_best, gpu_hours, hours, training, doomed, doomed_stopped, statuses}]}.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.bbob.adapters import Spec, SpecError, parse_specs  # noqa: E402
from pbo.log import read  # noqa: E402
from pbo.objectives.landscape import LLMLandscape  # noqa: E402

EVAL_AT = [0.125, 0.25, 0.5]
STEPS = 3235  # optimizer steps of a reference trial (51,760 records, batch 16)
PRUNERS: dict[str, dict[str, Any]] = {
    "none": {},
    # rungs at 400, 1,200, ... steps: judged at the 1/8 report (405) and the 1/2 one (1,618), top third kept
    "asha": {"eta": 3, "min_resource": 400},
    "median": {"warmup_trials": 4},
}
TRIAL_SECONDS = 43 * 60
PEAK = LLMLandscape.peak  # the reference study's optimum
DOOMED_MARGIN = 0.05  # "below chance + 0.05"
EARLY = 0.25  # "stopped by a quarter of its steps"


def study_args(spec: Spec, pruner: str, seed: int, budget: int, workers: int, out: Path,
               peak: float = PEAK) -> list[str]:
    """The `python -m pbo.run` arguments of one run."""
    options = {"eval_at": EVAL_AT, "steps": STEPS, "seed": seed, **({} if peak == PEAK else {"peak": peak})}
    args = ["--objective", "llm_landscape", "--objective-options", json.dumps(options), "--algorithm", spec.name,
            "--budget", str(budget), "--seed", str(seed), "--simulate", str(workers),
            "--cost", json.dumps({"kind": "lognormal", "mean": TRIAL_SECONDS, "sigma": 0.1, "seed": seed}),
            "--pruner", pruner, "--no-progress", "--out", str(out)]
    if PRUNERS[pruner]:
        args += ["--pruner-options", json.dumps(PRUNERS[pruner])]
    if spec.options:
        args += ["--optimizer", json.dumps(spec.options)]
    return args


def run_study(spec: Spec, pruner: str, seed: int, budget: int, workers: int, folder: Path,
              peak: float = PEAK) -> Any:
    """Run one simulated study in this process and read its log back."""
    from pbo.run import main as pbo_main

    out = folder / f"{spec.label}-{pruner}-s{seed}.h5"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = pbo_main(study_args(spec, pruner, seed, budget, workers, out, peak))
    if code != 0:
        raise RuntimeError(f"{out.name}: pbo.run exited {code}: {err.getvalue().strip()[-500:]}")
    return read(out)


def busy_hours_until(data: Any, t: float) -> float:
    """Worker-hours spent on every trial (the baseline included) up to study time `t`."""
    start, end = data.trials["t_start"], data.trials["t_end"]
    return float(np.clip(np.minimum(end, t) - start, 0, None).sum() / 3600)


def run_metrics(data: Any, seed: int, target: float | None, peak: float = PEAK) -> dict[str, Any]:
    """What one run achieved and spent (see the module docstring); `target` is the unpruned run's best."""
    land = LLMLandscape(seed=seed, peak=peak)
    trials = data.trials
    real = trials["trial_id"] != 0
    status = trials["status"]
    ok = real & (status == "ok") & np.isfinite(trials["value"])
    order = np.argsort(trials["t_end"])
    best = float(trials["value"][ok].max()) if ok.any() else float("nan")
    best_row = int(np.flatnonzero(ok)[np.argmax(trials["value"][ok])]) if ok.any() else None
    hit = None
    if target is not None:
        hits = [i for i in order if ok[i] and trials["value"][i] >= target - 1e-12]
        hit = busy_hours_until(data, float(trials["t_end"][hits[0]])) if hits else None
    fraction = np.where(status == "pruned", trials["step"] / STEPS, 1.0)[real]
    true = np.array([land.true_value(data.params(i)) for i in np.flatnonzero(real)])
    doomed = true < land.chance + DOOMED_MARGIN
    stopped = (status[real] == "pruned") & (fraction <= EARLY + 1e-3)
    return {"best": best, "best_true": None if best_row is None else land.true_value(data.params(best_row)),
            "gpu_hours_to_best": hit, "gpu_hours": busy_hours_until(data, np.inf),
            "hours": float(np.nanmax(trials["t_end"]) / 3600), "training": float(fraction.sum()),
            "doomed": int(doomed.sum()), "doomed_stopped": int((doomed & stopped).sum()),
            "statuses": {s: int((status[real] == s).sum()) for s in sorted(set(status[real].tolist()))}}


def summarize(runs: list[dict[str, Any]], algorithms: list[str], pruners: list[str]) -> list[dict[str, Any]]:
    rows = []
    for algorithm in algorithms:
        for pruner in pruners:
            group = [r for r in runs if (r["algorithm"], r["pruner"]) == (algorithm, pruner)]
            reached = [r["gpu_hours_to_best"] for r in group if r["gpu_hours_to_best"] is not None]
            doomed = sum(r["doomed"] for r in group)

            def median(name: str) -> float:
                return float(np.median([r[name] for r in group]))

            rows.append({"algorithm": algorithm, "pruner": pruner, "trials": group[0]["trials"], "seeds": len(group),
                         "best": median("best"),
                         "best_true": median("best_true"),
                         "gpu_hours_to_best": float(np.median(reached)) if reached else None,
                         "reached": len(reached), "gpu_hours": median("gpu_hours"), "hours": median("hours"),
                         "training": median("training"), "doomed": doomed,
                         "doomed_stopped": sum(r["doomed_stopped"] for r in group) / doomed if doomed else None})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| algorithm | pruner | trials | best | best (true) | GPU-h to unpruned best (seeds) | GPU-h | hours "
             "| training | doomed stopped by 1/4 (of) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['algorithm']} | {r['pruner']} | {r['trials']} | {r['best']:.4f} | {r['best_true']:.4f} | "
                     f"{cell(r['gpu_hours_to_best'], 1)} ({r['reached']}/{r['seeds']}) | {r['gpu_hours']:.1f} | "
                     f"{r['hours']:.1f} | {r['training']:.1f} | {cell(r['doomed_stopped'], 2)} ({r['doomed']}) |")
    return "\n".join(lines) + "\n"


def write_results(path: Path, script: str, argv: list[str] | None, settings: dict[str, Any],
                  rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    """The JSON both early-stopping benchmarks write: the command that made it, its settings, rows and runs."""
    command = f"python {script} " + shlex.join(argv if argv is not None else sys.argv[1:])
    path.write_text(json.dumps({"command": command.strip(), "settings": settings, "rows": rows, "runs": runs},
                               indent=1))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", default="random,bamsoo,bo",
                        help="comma-separated name or label=name:{yaml options}, as jobs/bench_bbob.py takes them")
    parser.add_argument("--pruners", default=",".join(PRUNERS), help="none first: the others aim at its best")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--pruned-budget", type=int, help="trials of the pruned runs (default: --budget)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--peak", type=float, default=PEAK,
                        help="log10 of the landscape's best effective step (its optimum's place; default the reference's)")
    parser.add_argument("--reference", metavar="LABEL",
                        help="measure GPU-h to best against this algorithm's unpruned best (same seed) instead of "
                             "each algorithm's own: e.g. bamsoo, to compare mfbamsoo with it")
    parser.add_argument("--json", nargs="?", const=str(ROOT / "jobs" / "results" / "pruning.json"),
                        help="write the results (default path jobs/results/pruning.json)")
    args = parser.parse_args(argv)
    try:
        specs = parse_specs(args.algorithms)
    except SpecError as exc:
        parser.error(f"--algorithms: {exc}")
    algorithms, pruners = [spec.label for spec in specs], args.pruners.split(",")
    if pruners[0] != "none" or not set(pruners) <= set(PRUNERS):
        parser.error(f"--pruners: give none first, then any of {', '.join(PRUNERS)}")
    if args.reference is not None:
        if args.reference not in algorithms:
            parser.error(f"--reference: {args.reference!r} is not one of --algorithms ({', '.join(algorithms)})")
        specs.sort(key=lambda spec: spec.label != args.reference)  # its unpruned bests first
    references: dict[int, float] = {}
    warnings.simplefilter("ignore")  # BoTorch's numerical warnings on small designs
    runs, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for spec in specs:
            algorithm = spec.label
            for seed in range(args.seeds):
                target = None
                for pruner in pruners:
                    budget = args.budget if pruner == "none" else args.pruned_budget or args.budget
                    data = run_study(spec, pruner, seed, budget, args.workers, Path(folder), args.peak)
                    metrics = run_metrics(data, seed, target, args.peak)
                    if pruner == "none":
                        if algorithm == args.reference:
                            references[seed] = metrics["best"]
                        target = references.get(seed, metrics["best"])
                        metrics = run_metrics(data, seed, target, args.peak)
                    runs.append({"algorithm": algorithm, "pruner": pruner, "seed": seed, "trials": budget, **metrics})
                    print(f"  {algorithm} {pruner} seed {seed}: best {metrics['best']:.4f}, "
                          f"{metrics['gpu_hours']:.1f} GPU-h, {metrics['statuses']}", file=sys.stderr, flush=True)
    rows = summarize(runs, algorithms, pruners)
    print(markdown(rows))
    if args.json:
        settings = {"budget": args.budget, "pruned_budget": args.pruned_budget or args.budget, "workers": args.workers,
                    "reference": args.reference, "peak": args.peak,
                    "seeds": args.seeds, "eval_at": EVAL_AT, "steps": STEPS, "trial_seconds": TRIAL_SECONDS,
                    "pruners": {p: PRUNERS[p] for p in pruners},
                    "example": "python -m pbo.run " + shlex.join(study_args(specs[0], pruners[-1], 0, args.budget,
                                                                            args.workers, Path("run.h5"), args.peak)),
                    "wall_seconds": round(time.perf_counter() - start, 1)}
        write_results(Path(args.json), "jobs/bench_pruning.py", argv, settings, rows, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
