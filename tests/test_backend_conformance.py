"""One suite over every backend, as Optuna runs one over every storage: local processes, the simulated cluster,
thread workers (tests/thread_workers.py) and MPI ranks (`mpirun -np 3`, in a subprocess). Each test plays one
scenario of backend_scenarios.py on a started backend with two workers and checks the facts it returns.

Where a backend cannot do something by design, its case is skipped with the reason (the simulated cluster and
thread workers start no process that could crash or be killed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import backend_scenarios as scenarios
from backend_scenarios import GRACE, SCENARIOS, TIMEOUT, WORKERS
from faulty import behave
from pbo.backends import backend_class
from pbo.config import build_config
from pbo.objectives import Objective, resolve_objective
from pbo.worker import split_output
from pbo_process import ROOT, environment, mpirun
from thread_workers import ThreadWorkers

KINDS = ("local", "simulated", "thread", "mpi")
NO_PROCESS = {"simulated": "the simulated cluster evaluates in the test process and starts no child",
              "thread": "thread workers evaluate in the test process and start no child"}
#: What a backend cannot do by design, and why: its case is skipped with that reason.
CANNOT = {
    **{(kind, crash): f"{why}: a crash would end the test run"
       for kind, why in NO_PROCESS.items() for crash in ("exit", "segfault")},
    **{(kind, "close"): f"{why}: there is nothing to kill" for kind, why in NO_PROCESS.items()},
    ("thread", "timeout"): "a thread cannot be stopped, so thread workers have no timeout",
    ("thread", "report"): "thread workers pass no report function (they serve scheduler tests only)",
    ("thread", "ignore"): "thread workers pass no report function (they serve scheduler tests only)",
    ("simulated", "ignore"): "the simulated cluster runs each trial to its end at once: nothing is left to ignore",
}
#: How much a trial that hangs may overrun the timeout on a real clock (the worker looks every 50-100 ms).
OVERRUN = 2.0


def kinds(scenario: str) -> list:
    return [pytest.param(kind, marks=pytest.mark.skip(reason=CANNOT[kind, scenario]))
            if (kind, scenario) in CANNOT else kind for kind in KINDS]


class SimulatedCost:
    """The simulated cluster's duration for each mode: a hanging trial takes a minute of virtual time."""

    def duration(self, params):
        return {"hang": 60.0, "slow": 0.3}.get(params["mode"], 0.1)


def in_process(kind: str, pid_dir: str):
    config = build_config(scenarios.settings(pid_dir))
    if kind == "local":
        objective = resolve_objective(config.objective, config.objective_options)
        backend = backend_class("local").from_settings(config, objective)
    elif kind == "simulated":  # evaluated in this process: nothing may really hang or sleep
        objective = Objective("behave", lambda p, report: behave(p, hang=0.0, seconds=0.0, report=report),
                              key="score")
        backend = backend_class("simulated")(objective, len(WORKERS), SimulatedCost(), timeout=TIMEOUT)
    else:
        backend = ThreadWorkers(len(WORKERS), lambda p: split_output(behave(p), "score")[0])
    backend.start(config)
    return backend


@pytest.fixture(scope="module")
def mpi_facts(tmp_path_factory):
    """Every scenario played once on an MPIBackend under `mpirun -np 3` (a master and two workers)."""
    if mpirun() is None:
        pytest.skip("mpirun not found")
    folder = tmp_path_factory.mktemp("mpi")
    (folder / "pids").mkdir()
    command = [mpirun(), "-np", str(1 + len(WORKERS)), sys.executable, str(ROOT / "tests" / "backend_scenarios.py"),
               str(folder / "facts.json"), str(folder / "pids")]
    proc = subprocess.run(command, cwd=folder, env=environment(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((folder / "facts.json").read_text())


@pytest.fixture
def play(request, tmp_path):
    """`play(kind, scenario)`: the facts of one scenario on a fresh backend of that kind (MPI: from the one run)."""
    opened = []

    def run(kind: str, scenario: str) -> dict:
        if kind == "mpi":
            return request.getfixturevalue("mpi_facts")[scenario]
        backend = in_process(kind, str(tmp_path))
        opened.append(backend)
        return SCENARIOS[scenario](backend, str(tmp_path))

    yield run
    for backend in opened:
        backend.close()


@pytest.mark.parametrize("kind", kinds("raise"))
def test_an_objective_that_raises_is_a_failed_trial_with_its_error(kind, play):
    fact = play(kind, "raise")
    assert (fact["trial_id"], fact["worker"], fact["status"]) == (1, 1, "failed")
    assert "ZeroDivisionError: planned failure" in fact["error"]
    assert math.isnan(fact["value"])


@pytest.mark.parametrize("kind", kinds("exit"))
def test_a_trial_that_exits_is_a_failed_trial_naming_the_exit_code(kind, play):
    fact = play(kind, "exit")
    assert (fact["trial_id"], fact["worker"], fact["status"]) == (2, 2, "failed")
    assert "exited with code 1" in fact["error"]


@pytest.mark.parametrize("kind", kinds("segfault"))
def test_a_segfault_is_a_failed_trial_naming_the_signal(kind, play):
    fact = play(kind, "segfault")
    assert (fact["trial_id"], fact["worker"], fact["status"]) == (3, 1, "failed")
    assert "SIGSEGV" in fact["error"]


@pytest.mark.parametrize("kind", kinds("timeout"))
def test_a_trial_past_the_timeout_is_a_timeout_ending_at_the_timeout(kind, play):
    fact = play(kind, "timeout")
    assert (fact["trial_id"], fact["worker"], fact["status"]) == (4, 2, "timeout")
    assert fact["error"] == f"timed out after {TIMEOUT:g} s"
    duration = fact["t_end"] - fact["t_start"]
    if kind == "simulated":  # a virtual clock
        assert duration == pytest.approx(TIMEOUT)
    else:
        assert TIMEOUT <= duration < TIMEOUT + OVERRUN


@pytest.mark.parametrize("kind", kinds("stop"))
def test_a_stop_request_ends_the_wait_at_once_and_the_running_trial_still_comes_back(kind, play):
    fact = play(kind, "stop")
    assert fact["stopped"] and fact["waited"] < 0.25
    assert (fact["trial_id"], fact["worker"], fact["status"], fact["value"]) == (5, 1, "ok", 0.25)


@pytest.mark.parametrize("kind", kinds("workers"))
def test_each_trial_comes_back_once_from_the_worker_it_was_sent_to_with_ordered_times(kind, play):
    fact = play(kind, "workers")
    assert fact["workers"] == WORKERS
    outcomes = fact["outcomes"]
    assert sorted(o["trial_id"] for o in outcomes) == list(range(10, 16))
    assert {o["worker"] for o in outcomes} == set(WORKERS)
    for o in outcomes:
        assert o["worker"] == o["sent_to"] and o["status"] == "ok" and o["value"] == o["trial_id"] / 100
        assert 0 <= o["t_submit"] <= o["t_start"] <= o["t_end"] <= o["t_received"] <= fact["now"], o


@pytest.mark.parametrize("kind", kinds("close"))
def test_close_kills_the_trials_still_running(kind, play, alive):
    fact = play(kind, "close")
    assert len(fact["pids"]) == len(WORKERS)
    assert fact["gone_after"] is not None, "close() left trial processes running"
    assert fact["since_submit"] + fact["gone_after"] < TIMEOUT  # killed by close(), not by the timeout
    assert not any(alive(pid) for pid in fact["pids"])


@pytest.mark.parametrize("kind", kinds("report"))
def test_reports_reach_the_master_in_order_and_a_stop_ends_the_trial_pruned_at_that_report(kind, play):
    fact = play(kind, "report")
    assert [(r["trial_id"], r["worker"], r["step"], r["value"], r["metrics"]) for r in fact["reports"]] == [
        (30, 1, 1, 0.5, {"loss": 1.0}), (30, 1, 2, 1.0, {"loss": 0.5})]
    assert (fact["trial_id"], fact["worker"], fact["status"], fact["value"], fact["step"]) == (30, 1, "pruned", 1.0, 2)
    assert fact["metrics"] == {"loss": 0.5}
    times = [fact["t_start"], *(r["t"] for r in fact["reports"]), fact["t_end"], fact["t_received"]]
    assert times == sorted(times), times


@pytest.mark.parametrize("kind", kinds("ignore"))
def test_a_trial_ignoring_the_stop_is_killed_after_the_grace_period_and_recorded_pruned(kind, play):
    fact = play(kind, "ignore")
    assert (fact["trial_id"], fact["worker"], fact["status"], fact["value"], fact["step"]) == (31, 2, "pruned", 0.5, 1)
    assert fact["error"] == f"killed {GRACE:g} s after the stop request"
    assert GRACE <= fact["t_end"] - fact["reports"][0]["t"] < GRACE + OVERRUN
