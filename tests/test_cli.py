"""`python -m pbo.run` without mpirun: the local backend, progress lines, summary and exit codes."""

import os
import signal
import subprocess
import time

import pytest

from pbo.log import read
from pbo_process import command, environment, run_pbo, trials, write_config


@pytest.mark.slow
def test_without_a_config_the_tiny_llm_study_runs():
    proc = run_pbo(["--budget", "1"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [t for t, *_ in trials(proc.stdout)] == [0, 1]  # the untuned baseline, then one LoRA trial
    assert "pbo: bamsoo on llm, budget 1" in proc.stdout
    assert "pbo: 1 evaluations (0 failed)" in proc.stdout


def test_local_workers_share_the_budget():
    proc = run_pbo(["--objective", "hartmann6", "--workers", "3", "--budget", "9", "--algorithm", "random"])
    assert proc.returncode == 0, proc.stderr
    rows = trials(proc.stdout)
    assert sorted(t for t, *_ in rows) == list(range(1, 10)) and {w for _, w, *_ in rows} == {1, 2, 3}


def test_inline_evaluation_without_isolation(tmp_path):
    proc = run_pbo(["--objective", "faulty:slow", "--objective-options", "{seconds: 0}", "--no-isolate",
                    "--space", "{x: {type: float, low: 0, high: 1}}", "--budget", "3"])
    assert proc.returncode == 0, proc.stderr
    assert len(trials(proc.stdout)) == 3


def test_max_failures_stops_with_exit_1(tmp_path):
    config = write_config(tmp_path / "c.yaml", algorithm="random", objective="faulty:behave", budget=20,
                          max_failures=1, objective_options={"key": "score"},
                          space={"mode": {"type": "categorical", "choices": ["raise"]},
                                 "x": {"type": "float", "low": 0, "high": 1}})
    proc = run_pbo(["--config", config])
    assert proc.returncode == 1
    assert "2 trials failed, more than max_failures=1" in proc.stderr


@pytest.mark.parametrize("objective, space", [
    ("faulty:text", "{x: {type: float, low: 0, high: 1}}"),
    ("faulty:behave", "{mode: {type: categorical, choices: [raise]}, x: {type: float, low: 0, high: 1}}"),
], ids=["returns-a-string", "raises"])
def test_a_run_in_which_every_trial_failed_exits_1_after_logging_them(tmp_path, objective, space):
    path = tmp_path / "run.h5"
    proc = run_pbo(["--objective", objective, "--objective-options", "{key: score}" if "behave" in objective else "{}",
                    "--space", space, "--algorithm", "random", "--budget", "4", "--out", str(path)])
    assert proc.returncode == 1
    assert proc.stderr.startswith("pbo: error: no successful evaluation: all 4 trials failed or timed out (first error: ")
    assert proc.stderr.count("\n") == 1 and f"pbo: log {path}" in proc.stdout
    logged = read(path)
    assert logged.n_trials == 4 and set(logged.trials["status"]) == {"failed"} and all(logged.trials["error"])


def test_an_exhausted_space_ends_cleanly():
    proc = run_pbo(["--objective", "faulty:slow", "--objective-options", "{seconds: 0}", "--algorithm", "random",
                    "--space", "{x: {type: int, low: 1, high: 3}}", "--budget", "10"])
    assert proc.returncode == 0, proc.stderr
    assert "the search space is exhausted after 3 evaluations" in proc.stdout


def test_sigint_stops_a_local_run_resumably_and_kills_its_trials(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = subprocess.Popen(command(["--objective", "faulty:slow", "--objective-options",
                                     f"{{pid_dir: {pids}, seconds: 30}}", "--workers", "2",
                                     "--space", "{x: {type: float, low: 0, high: 1}}"]),
                            cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGINT
    assert "stopped by SIGINT after 0 evaluations" in err and "resumed" in err
    time.sleep(0.1)
    children = [int(p.stem) for p in pids.iterdir()]
    assert len(children) == 2 and not any(os.path.exists(f"/proc/{pid}") for pid in children)


def test_user_callables_get_their_options_as_keyword_arguments():
    from pbo.objectives import resolve_objective

    objective = resolve_objective("faulty:slow", {"seconds": 0, "key": "value"})
    assert objective.function({"x": 0.25}) == 0.25


def test_a_study_variable_the_llm_objective_cannot_set_stops_the_run_before_any_trial():
    proc = run_pbo(["--space", "{lora_rnak: {type: int, low: 1, high: 8}}"], timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "pbo: error: llm objective: search-space variable(s) ['lora_rnak'] map to no training setting")
    assert trials(proc.stdout) == []
