"""SIGKILL at random moments: of a process writing a log, and of the master of a real `mpirun -np 3` run.
Each time the file must open, hold every trial acknowledged before the kill, and resume to the end without
re-running a finished evaluation."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


from log_support import CONFIG, SPACE, drive, new_optimizer
from pbo.log import RunLog, load_resume, read
from pbo_process import command, environment

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: Kill points per test; raise them for a longer hunt, e.g. PBO_LOG_KILLS=200.
WRITER_KILLS = int(os.environ.get("PBO_LOG_KILLS", 8))
MPI_KILLS = max(1, WRITER_KILLS // 3)


def lines_until(proc: subprocess.Popen, enough, timeout: float = 60) -> list[str]:
    """Lines of `proc`'s stdout until `enough(lines)` holds (or the output ends)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not enough(lines):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def acknowledged(lines: list[str], prefix: str) -> set[int]:
    return {int(line.split()[1]) for line in lines if line.startswith(prefix)}


def test_a_writer_killed_at_random_moments_leaves_every_acknowledged_trial(tmp_path):
    rng = random.Random(4)
    budget = 30
    for kill in range(WRITER_KILLS):
        path = tmp_path / f"kill{kill}.h5"
        proc = subprocess.Popen([sys.executable, str(TESTS / "log_support.py"), str(path), str(budget)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wanted = rng.randrange(0, budget)
        lines = lines_until(proc, lambda seen: sum(s.startswith("ack") for s in seen) > wanted)
        time.sleep(rng.uniform(0, 0.003))  # land anywhere in the next record_submit / record_result
        proc.kill()
        lines += proc.communicate()[0].splitlines()
        acked = acknowledged(lines, "ack")
        run = read(path)
        ids = run.trials["trial_id"].tolist()
        assert acked <= set(ids) and len(ids) == len(set(ids)), f"kill point {kill}"
        print(f"writer kill {kill}: {len(acked)} acknowledged, {len(ids)} in the file")
        state = load_resume(path)
        opt = new_optimizer({**CONFIG, "budget": budget})
        redo = state.restore(opt)
        with RunLog.reopen(path, n_workers=3) as log:
            after = drive(log, opt, budget, workers=3, redo=redo)
        assert not set(after) & set(ids)  # nothing finished was evaluated again
        assert sorted(read(path).trials["trial_id"]) == list(range(budget + 1))


def test_a_tree_writer_killed_at_random_moments_leaves_a_tree_that_its_replay_extends(tmp_path):
    """/tree gains rows as nodes change (format 5): whatever moment a kill lands on, each logged node is the node the
    replay of the log rebuilds (its box; its value and state once settled), never a half-written one."""
    rng = random.Random(5)
    budget = 40
    for kill in range(WRITER_KILLS // 2):
        path = tmp_path / f"kill{kill}.h5"
        proc = subprocess.Popen([sys.executable, str(TESTS / "log_support.py"), str(path), str(budget), "soo"],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wanted = rng.randrange(5, budget)
        lines_until(proc, lambda seen: sum(s.startswith("ack") for s in seen) > wanted)
        time.sleep(rng.uniform(0, 0.003))
        proc.kill()
        proc.communicate()
        logged = read(path).tree
        replayed = new_optimizer({**CONFIG, "algorithm": "soo", "budget": budget})
        load_resume(path).restore(replayed)
        table = replayed.tree_table()
        n = len(logged["node_id"])
        assert 0 < n <= len(table["node_id"]), f"kill point {kill}"
        for name in ("node_id", "parent", "depth", "lower", "upper", "center"):
            np.testing.assert_array_equal(logged[name], table[name][:n], err_msg=f"kill point {kill}: {name}")
        settled = logged["state"] != "pending"
        np.testing.assert_array_equal(logged["state"][settled], table["state"][:n][settled])
        np.testing.assert_array_equal(logged["value"][settled], table["value"][:n][settled])
        assert not (logged["expanded"] & ~table["expanded"][:n]).any()


def start_run(args: list[str], evals: Path, np: int) -> tuple[subprocess.Popen, list[str]]:
    env = {**environment(), "PBO_LOG_EVALS": str(evals)}
    proc = subprocess.Popen(command(args, np), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, lines_until(proc, lambda seen: any("master pid" in s for s in seen))


def kill_master(proc: subprocess.Popen, lines: list[str], after_trials: int, rng: random.Random) -> list[str]:
    master = int(next(s for s in lines if "master pid" in s).split("master pid ")[1].split()[0])
    lines += lines_until(proc, lambda seen: sum(s.startswith("trial ") for s in seen) >= after_trials)
    time.sleep(rng.uniform(0, 0.05))
    os.kill(master, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return lines + out.splitlines()


def study_args(path: Path, algorithm: str, budget: int) -> list[str]:
    return ["--objective", "log_support:slow_toy", "--space", json.dumps(SPACE.to_dict()), "--algorithm", algorithm,
            "--seed", "3", "--budget", str(budget), "--out", str(path)]


def evaluations(evals: Path) -> list[str]:
    return evals.read_text().splitlines() if evals.exists() else []


def params_key(run, row: int) -> str:
    return json.dumps(SPACE.from_unit(run.trials["u"][row]), sort_keys=True)


def test_mpirun_master_killed_at_random_moments_resumes_without_rerunning_anything(tmp_path):
    rng = random.Random(7)
    budget = 14
    for kill in range(MPI_KILLS):
        path, evals = tmp_path / f"run{kill}.h5", tmp_path / f"evals{kill}.txt"
        proc, lines = start_run(study_args(path, "lhs", budget), evals, np=3)
        lines = kill_master(proc, lines, rng.randrange(0, budget - 2), rng)
        killed = read(path)
        shown = {int(s.split()[1]) for s in lines if s.startswith("trial ")}
        assert shown <= set(killed.trials["trial_id"].tolist()), f"kill point {kill}"
        in_flight = load_resume(path).in_flight
        print(f"master kill {kill}: {len(shown)} shown, {killed.n_trials} in the file, {len(in_flight)} in flight")
        done_before = {params_key(killed, row) for row in range(killed.n_trials)}

        resumed = subprocess.run(command(["--resume", str(path)], 3), cwd=ROOT, capture_output=True, text=True,
                                 env={**environment(), "PBO_LOG_EVALS": str(evals)}, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        run = read(path)
        assert sorted(run.trials["trial_id"]) == list(range(1, budget + 1))
        counts = {key: evaluations(evals).count(key) for key in done_before}
        assert set(counts.values()) <= {1}, f"kill point {kill}: a finished evaluation ran again"
        assert budget <= len(evaluations(evals)) <= budget + len(in_flight)


def test_one_worker_soo_killed_and_resumed_proposes_the_uninterrupted_points(tmp_path):
    budget = 12
    whole = subprocess.run(command(study_args(tmp_path / "whole.h5", "soo", budget), 2), cwd=ROOT,
                           env={**environment(), "PBO_LOG_EVALS": str(tmp_path / "w.txt")}, capture_output=True,
                           text=True, timeout=120)
    assert whole.returncode == 0, whole.stderr
    proc, lines = start_run(study_args(tmp_path / "cut.h5", "soo", budget), tmp_path / "c.txt", np=2)
    kill_master(proc, lines, 5, random.Random(1))
    resumed = subprocess.run(command(["--resume", str(tmp_path / "cut.h5")], 2), cwd=ROOT, capture_output=True,
                             text=True, env={**environment(), "PBO_LOG_EVALS": str(tmp_path / "c.txt")}, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = read(tmp_path / "whole.h5"), read(tmp_path / "cut.h5")
    assert first_asks(got) == first_asks(expected)
    for column in ("trial_id", "value"):
        np.testing.assert_array_equal(by_id(got, column), by_id(expected, column))


def by_id(run, column: str) -> np.ndarray:
    return run.trials[column][np.argsort(run.trials["trial_id"])]


def first_asks(run) -> dict[int, list[float]]:
    """Trial id -> unit point of its first dispatch (a resumed run dispatches the in-flight ones again)."""
    asks: dict[int, list[float]] = {}
    for trial_id, u in zip(run.asks["trial_id"].tolist(), run.asks["u"].tolist()):
        asks.setdefault(trial_id, u)
    return asks
