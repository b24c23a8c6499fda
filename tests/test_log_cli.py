"""The log through `python -m pbo.run`: --out, --overwrite, --resume, refusals, and the SIGTERM path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from analysis import load_run
from log_support import SPACE
from pbo.log import load_resume, read, session
from pbo.objectives.synthetic import FUNCTIONS
from pbo_process import ROOT, command, environment, run_pbo, trials

BRANIN = ["--objective", "branin", "--algorithm", "lhs", "--budget", "6", "--seed", "2"]


def test_a_run_writes_its_log_to_out_with_the_resolved_config(tmp_path):
    proc = run_pbo([*BRANIN, "--out", str(tmp_path / "run.h5")])
    assert proc.returncode == 0, proc.stderr
    assert f"pbo: log {tmp_path / 'run.h5'}" in proc.stdout
    run = read(tmp_path / "run.h5")
    assert sorted(run.trials["trial_id"]) == [1, 2, 3, 4, 5, 6] and set(run.trials["status"]) == {"ok"}
    assert run.config["budget"] == 6 and run.config["out"] == str(tmp_path / "run.h5")
    assert run.attrs["algorithm"] == "lhs" and run.attrs["objective"] == "branin" and run.space.names == ["x1", "x2"]


def test_an_existing_log_is_kept_unless_overwrite_is_given(tmp_path):
    assert run_pbo([*BRANIN, "--out", str(tmp_path / "run.h5")]).returncode == 0
    refused = run_pbo([*BRANIN, "--out", str(tmp_path / "run.h5")])
    assert refused.returncode == 2 and not trials(refused.stdout)
    assert refused.stderr.strip() == (f"pbo: error: {tmp_path / 'run.h5'} already exists (give --overwrite to replace "
                                      f"it, or --resume {tmp_path / 'run.h5'} to continue it)")
    assert run_pbo([*BRANIN, "--out", str(tmp_path / "run.h5"), "--budget", "2", "--overwrite"]).returncode == 0
    assert read(tmp_path / "run.h5").n_trials == 2


def test_a_missing_folder_is_one_line_before_any_trial(tmp_path):
    proc = run_pbo([*BRANIN, "--out", str(tmp_path / "no" / "run.h5")], np=3)
    assert proc.returncode == 2 and not trials(proc.stdout)
    assert proc.stderr.strip() == f"pbo: error: log folder {tmp_path / 'no'} does not exist"


def test_resume_refuses_other_settings_in_one_line_and_accepts_a_larger_budget(tmp_path):
    path = str(tmp_path / "run.h5")
    assert run_pbo([*BRANIN, "--out", path]).returncode == 0
    refused = run_pbo(["--resume", path, "--algorithm", "random", "--objective", "hartmann6"])
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert ("the new settings change algorithm (stored 'lhs', given 'random'), objective (stored 'branin', "
            "given 'hartmann6')") in refused.stderr
    more = run_pbo(["--resume", path, "--budget", "9"])
    assert more.returncode == 0, more.stderr
    assert [t for t, *_ in trials(more.stdout)] == [7, 8, 9]
    assert sorted(read(path).trials["trial_id"]) == list(range(1, 10))
    state = load_resume(path)
    assert state.config["budget"] == 6 and state.settings["budget"] == 9  # first settings kept, changes logged
    again = run_pbo(["--resume", path])
    assert again.returncode == 0 and not trials(again.stdout) and read(path).n_trials == 9


def test_resume_of_a_file_that_is_not_a_log_is_one_line(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    proc = run_pbo(["--resume", str(tmp_path / "x.h5")])
    assert proc.returncode == 2 and proc.stderr == f"pbo: error: {tmp_path / 'x.h5'} is not an HDF5 file\n"


def test_sigterm_leaves_a_log_that_the_message_names_and_that_resumes_to_the_end(tmp_path):
    path = tmp_path / "run.h5"
    args = ["--objective", "log_support:slow_toy", "--space", json.dumps(SPACE.to_dict()), "--algorithm", "random",
            "--budget", "10", "--out", str(path)]
    env = {**environment(), "PBO_LOG_EVALS": str(tmp_path / "evals.txt")}
    proc = subprocess.Popen(command(args, np=3), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    master = int(proc.stdout.readline().split("master pid ")[1].split()[0])
    assert proc.stdout.readline().startswith("trial ")
    os.kill(master, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert f"the run can be resumed with --resume {path}" in err
    state = load_resume(path)
    assert 1 <= state.run.n_trials < 10
    resumed = subprocess.run(command(["--resume", str(path)], np=3), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(read(path).trials["trial_id"]) == list(range(1, 11))


def test_runs_started_in_the_same_second_get_their_own_default_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session, "default_path", lambda algorithm, objective: Path("runs/lhs-toy-20260101-000000.h5"))
    config = {"algorithm": "lhs", "objective": "toy", "seed": 3}
    for log in [session.open_log(dict(config), SPACE, 2, None) for _ in range(2)]:
        log.close()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lhs-toy-20260101-000000-2.h5",
                                                                     "lhs-toy-20260101-000000.h5"]


def test_a_simulated_run_writes_a_log_only_when_out_is_given(tmp_path):
    config = {"algorithm": "lhs", "objective": "toy", "seed": 3, "simulate": 64}
    assert session.open_log(dict(config), SPACE, 64, None) is None
    session.open_log({**config, "out": str(tmp_path / "sim.h5")}, SPACE, 64, None).close()
    assert read(tmp_path / "sim.h5").attrs["n_workers"] == 64


MINIMIZED_BY_OPTIONS = ["--objective", "faulty:slow", "--objective-options", "{seconds: 0, minimize: true}",
                        "--space", "{x: {type: float, low: 0, high: 1}}", "--algorithm", "lhs", "--budget", "6"]


def test_log_show_names_the_smallest_value_best_when_objective_options_minimize(tmp_path):
    path = tmp_path / "run.h5"
    assert run_pbo([*MINIMIZED_BY_OPTIONS, "--out", str(path)]).returncode == 0
    shown = subprocess.run([sys.executable, "-m", "pbo.log", "show", str(path)], cwd=ROOT, env=environment(),
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    best = read(path).trials["value"].min()
    assert f"value {best:.6g} " in shown.stdout.split("best: ")[1]


def test_the_log_records_what_readers_must_not_recompute(tmp_path):
    minimized, branin = tmp_path / "min.h5", tmp_path / "branin.h5"
    assert run_pbo([*MINIMIZED_BY_OPTIONS, "--out", str(minimized)]).returncode == 0
    assert run_pbo([*BRANIN, "--out", str(branin)]).returncode == 0
    with h5py.File(minimized, "r") as handle:
        assert handle.attrs["minimize"] and handle.attrs["key"] == "value" and np.isnan(handle.attrs["optimum"])
    with h5py.File(branin, "r") as handle:
        assert not handle.attrs["minimize"] and handle.attrs["optimum"] == FUNCTIONS["branin"].optimum
    assert read(minimized).minimize and read(minimized).optimum is None
    assert not read(branin).minimize and read(branin).optimum == FUNCTIONS["branin"].optimum


def test_analysis_reads_the_sense_of_a_study_minimized_by_objective_options(tmp_path):
    path = tmp_path / "run.h5"
    assert run_pbo([*MINIMIZED_BY_OPTIONS, "--out", str(path)]).returncode == 0
    run = load_run(path)
    assert run.minimize and run.trials["value"][run.best_index()] == run.trials["value"].min()
