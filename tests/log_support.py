"""Shared by the tests/test_log_*.py files: a plain ask/tell loop that feeds a RunLog the way the scheduler
does (W candidates in flight, results back in a shuffled order), and, run as a script, a writer that reports
each acknowledged trial on stdout so a test can SIGKILL it at any moment."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from pbo.log import RunLog
from pbo.optimizers import make_optimizer
from pbo.optimizers.base import Optimizer, TrialState
from pbo.space import Space
from pbo.trial import TrialResult

SPACE = Space.from_dict({
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "rank": {"type": "int", "low": 2, "high": 64},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "scheduler": {"type": "categorical", "choices": ["cosine", "linear", "constant"]},
})
CONFIG = {"algorithm": "lhs", "objective": "tests:toy", "budget": 12, "seed": 3, "space": SPACE.to_dict()}


def toy(params: dict) -> float:
    """Peaks at lr=1e-3, rank=16, dropout=0.1, cosine; fails for very large learning rates."""
    if params["lr"] > 1e-2:
        raise FloatingPointError("loss diverged")
    return (-(math.log10(params["lr"]) + 3) ** 2 - ((params["rank"] - 16) / 16) ** 2
            - (params["dropout"] - 0.1) ** 2 - 0.1 * ["cosine", "linear", "constant"].index(params["scheduler"]))


def slow_toy(params: dict) -> float:
    """toy() taking 50 ms, each evaluation noted as one line of JSON in the file $PBO_LOG_EVALS."""
    with open(os.environ["PBO_LOG_EVALS"], "a") as out:
        out.write(json.dumps(params, sort_keys=True) + "\n")
    time.sleep(0.05)
    return toy(params)


def new_optimizer(config: dict = CONFIG) -> Optimizer:
    return make_optimizer(config["algorithm"], Space.from_dict(config["space"]), seed=config["seed"],
                          budget=config["budget"])


def evaluate(cand, worker: int, t: float) -> TrialResult:
    try:
        value, status, error = toy(cand.params), TrialState.OK, ""
    except FloatingPointError as exc:
        value, status, error = math.nan, TrialState.FAILED, f"FloatingPointError: {exc}"
    metrics = {} if status is not TrialState.OK else {"loss": -value, "eval/acc": 1 / (1 - value)}
    return TrialResult(cand.id, cand.params, cand.u, status, value=value, metrics=metrics, worker=worker,
                       device=f"cuda:{worker - 1}", t_submit=t, t_start=t + 0.1, t_end=t + 1, error=error)


def drive(log: RunLog | None, opt: Optimizer, budget: int, workers: int = 2, seed: int = 0,
          redo: list | None = None, stop_after: int | None = None, on_ack=None) -> list[int]:
    """Run the study to `budget` asks (or until `stop_after` results), as the scheduler would: ask when a
    worker is free, record the dispatch, record each result before telling the optimizer, record the tree
    after. Returns the ids evaluated, in the order they finished."""
    rng = np.random.default_rng(seed)
    queue = list(redo or [])
    asked = len(opt.trials)
    running: list = []
    finished: list[int] = []
    t = 0.0
    while True:
        while len(running) < workers and (queue or asked < budget):
            cand = queue.pop(0) if queue else opt.ask()
            if cand is None:
                break
            asked += cand not in (redo or [])
            if log is not None:
                log.record_submit(cand, worker=len(running) + 1, t_submit=t)
            running.append(cand)
        if not running or (stop_after is not None and len(finished) >= stop_after):
            return finished
        cand = running.pop(int(rng.integers(len(running))))
        result = evaluate(cand, worker=1 + len(running), t=t)
        t += 1.0
        if log is not None:
            log.record_result(result)
        if on_ack is not None:
            on_ack(result.trial_id)
        if result.status is TrialState.OK:
            opt.tell(cand.id, result.value)
        else:
            opt.tell_failure(cand.id, result.error, result.status)
        if log is not None:
            log.record_tree(opt.tree_table())
        finished.append(cand.id)


def baseline_result() -> TrialResult:
    return TrialResult(0, {}, np.array([]), TrialState.OK, value=-9.0, metrics={"loss": 9.0}, worker=1)


def new_log(path: Path, config: dict = CONFIG, **options) -> RunLog:
    return RunLog.create(path, config=config, space=SPACE, algorithm=config["algorithm"], seed=config["seed"],
                         n_workers=2, **options)


def finished_run(path: Path, budget: int = 12) -> None:
    with new_log(path) as log:
        log.record_result(baseline_result())
        drive(log, new_optimizer(), budget)


def foreign_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["data"] = np.arange(3)
    damaged = tmp_path / "damaged.h5"
    finished_run(damaged)
    with h5py.File(damaged, "a") as handle:
        del handle["trials/value"]
    truncated = tmp_path / "truncated.h5"
    finished_run(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {"text": (text, "is not an HDF5 file"), "foreign": (other, "is not a pbo log"),
            "damaged": (damaged, "is a damaged pbo log: /trials lacks value"),
            "truncated": (truncated, "truncated.h5"), "missing": (tmp_path / "none.h5", "no such file")}


if __name__ == "__main__":
    # python tests/log_support.py PATH BUDGET [ALGORITHM]: write a run, printing "ack ID" after each record_result
    # returns.
    path, budget = sys.argv[1], int(sys.argv[2])
    config = {**CONFIG, "budget": budget, "algorithm": sys.argv[3] if len(sys.argv) > 3 else CONFIG["algorithm"]}
    log = RunLog.create(path, config=config, space=SPACE, algorithm=config["algorithm"], seed=CONFIG["seed"],
                        n_workers=3)
    print("created", flush=True)

    def ack(trial_id: int) -> None:
        print(f"ack {trial_id}", flush=True)
        time.sleep(0.002)
    log.record_result(baseline_result())
    ack(0)
    drive(log, new_optimizer(config), budget, workers=3, on_ack=ack)
    log.close()
    print("done", flush=True)
