"""Pruning through `python -m pbo.run`: a study with `pruner: asha` on the reporting `curve` objective, bad
pruner settings, and a run SIGKILLed while a trial had reported, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np

from pbo.log import LogError, read
from pbo.pruners import make_pruner
from pbo_process import command, environment, run_pbo

ASHA = ["--pruner", "asha", "--pruner-options", "{eta: 2, min_resource: 1}"]


def curve_args(path, budget: int, steps: int, step_seconds: float) -> list[str]:
    return ["--objective", "curve", "--objective-options", f"{{steps: {steps}, step_seconds: {step_seconds}}}",
            "--algorithm", "random", "--budget", str(budget), "--workers", "2", "--out", str(path), *ASHA]


def replayed_stops(run) -> dict[int, float]:
    """Replay every logged report in order into a fresh ASHA: the step each trial's latest attempt was told to
    stop at (what the run itself decided, if its pruner held the state the log holds)."""
    pruner = make_pruner("asha", minimize=run.minimize, eta=2, min_resource=1)
    latest = run.latest_attempt()
    stops: dict[int, float] = {}
    for row in np.argsort(run.reports["seq"], kind="stable"):
        trial_id, step = int(run.reports["trial_id"][row]), float(run.reports["step"][row])
        if pruner.should_stop(trial_id, step, float(run.reports["value"][row])) and latest[row]:
            stops.setdefault(trial_id, step)
    return stops


def check_pruned_as_logged(run) -> None:
    """Each pruned trial keeps the value and step of its last report, where the pruner stopped it; the others
    ran all their steps and were never stopped."""
    stops = replayed_stops(run)
    for row in range(run.n_trials):
        trial_id, status = int(run.trials["trial_id"][row]), run.trials["status"][row]
        curve = run.curve(trial_id)
        if status == "pruned":
            assert (run.trials["value"][row], run.trials["step"][row]) == (curve["value"][-1], curve["step"][-1])
            assert stops.get(trial_id) == curve["step"][-1], trial_id
        else:
            assert status == "ok" and trial_id not in stops, (trial_id, status)
            assert list(curve["step"]) == list(range(1, len(curve["step"]) + 1))


def test_a_study_with_asha_prunes_trials_and_logs_their_learning_curves(tmp_path):
    path = tmp_path / "asha.h5"
    proc = run_pbo(curve_args(path, budget=14, steps=8, step_seconds=0.01), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert " pruned) on 2 worker(s)" in proc.stdout
    run = read(path)
    status = list(run.trials["status"])
    assert status.count("pruned") >= 3 and status.count("ok") >= 1 and len(status) == 14
    assert len(run.reports["trial_id"]) == sum(len(run.curve(t)["step"]) for t in run.trials["trial_id"])
    check_pruned_as_logged(run)


def test_an_unknown_pruner_or_option_exits_2_with_one_line():
    for args, message in ((["--pruner", "hyperband"], "pbo: error: pruner: unknown value 'hyperband'"),
                          (["--pruner", "asha", "--pruner-options", "{eta: 1}"],
                           "pbo: error: pruner_options: asha pruner: eta (the reduction factor) must be")):
        proc = run_pbo(["--objective", "curve", "--budget", "2", *args])
        assert proc.returncode == 2 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_a_run_killed_while_a_trial_had_reported_resumes_with_its_pruned_trials_and_pruner_state(tmp_path):
    path = tmp_path / "killed.h5"
    args = curve_args(path, budget=12, steps=10, step_seconds=0.1)
    master = subprocess.Popen(command(args), cwd=tmp_path, env=environment(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    before = None
    deadline = time.monotonic() + 60
    while before is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            run = read(path)
        except LogError:
            continue  # not created yet, or being rewritten for a new column
        finished = set(run.trials["trial_id"].tolist())
        reached: dict[int, float] = {}
        for trial_id, step in zip(run.reports["trial_id"].tolist(), run.reports["step"].tolist()):
            reached[trial_id] = max(step, reached.get(trial_id, 0))
        # A trial in flight past rung 4, before rung 8 (steps 5, 6): at least 0.2 s from its end. Kill it there.
        midway = [t for t, step in reached.items() if t not in finished and 5 <= step < 7]
        if "pruned" in set(run.trials["status"]) and midway:
            before = run
    os.kill(master.pid, signal.SIGKILL)
    master.wait(timeout=10)
    assert before is not None, "no trial was pruned while another one reported"
    pruned_before = {int(t): float(v) for t, v, s in zip(before.trials["trial_id"], before.trials["value"],
                                                        before.trials["status"]) if s == "pruned"}
    killed = read(path)
    interrupted = sorted(set(killed.reports["trial_id"].tolist()) - set(killed.trials["trial_id"].tolist()))
    assert interrupted

    proc = run_pbo(["--resume", str(path)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = read(path)
    ids = after.trials["trial_id"].tolist()
    assert sorted(ids) == list(range(1, 13)), "every trial once: none lost, none run twice"
    for trial_id, value in pruned_before.items():
        row = ids.index(trial_id)
        assert (after.trials["status"][row], after.trials["value"][row]) == ("pruned", value)
    for trial_id in interrupted:  # ran again from its start; its first attempt's reports stay in the log
        first_attempt = np.sum(after.reports["trial_id"] == trial_id) - len(after.curve(trial_id)["step"])
        assert first_attempt >= 1 and after.curve(trial_id)["step"][0] == 1
    check_pruned_as_logged(after)
