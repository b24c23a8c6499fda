"""Reading a log: the RunData API, a second process following a live run, export, and files that are not logs."""

from __future__ import annotations

import csv
import math
import os
import select
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from log_support import CONFIG, SPACE, baseline_result, drive, finished_run, foreign_files, new_log, new_optimizer
from pbo.log import LogError, RunLog, read
from pbo.log.export import csv_header
from pbo.log.layout import STUDY_ATTRS
from pbo.objectives.synthetic import FUNCTIONS
from pbo.optimizers.base import TrialState
from pbo.trial import TrialResult

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_read_gives_named_arrays_with_text_decoded_and_the_config_parsed(tmp_path):
    finished_run(tmp_path / "run.h5")
    run = read(tmp_path / "run.h5")
    assert run.n_trials == 13 and all(len(column) == 13 for column in run.trials.values())
    assert run.trials["u"].shape == (13, SPACE.dim) and run.trials["value"].dtype == np.float64
    assert run.trials["status"].dtype.kind == "U" and run.trials["device"][1].startswith("cuda:")
    assert run.metrics == ["loss", "eval.acc"]
    assert run.config == CONFIG and run.space == SPACE and run.attrs["algorithm"] == "lhs"
    assert len(run.asks["trial_id"]) == 12 and run.tree is None


def test_best_is_the_row_of_the_best_successful_trial(tmp_path):
    finished_run(tmp_path / "run.h5")
    run = read(tmp_path / "run.h5")
    ok = (run.trials["status"] == "ok") & (run.trials["trial_id"] > 0)
    assert run.trials["value"][run.best()] == run.trials["value"][ok].max()


def test_a_format_1_log_without_the_study_attributes_is_read_by_the_rule_its_run_used(tmp_path):
    config = {**CONFIG, "objective": "hartmann6", "objective_options": {"minimize": True}}
    with new_log(tmp_path / "old.h5", config=config) as log:
        drive(log, new_optimizer(), 12)
    with h5py.File(tmp_path / "old.h5", "a") as handle:
        for name in STUDY_ATTRS:
            handle.attrs.pop(name, None)
        handle.attrs["log_format"] = 1
    run = read(tmp_path / "old.h5")
    ok = run.trials["status"] == "ok"
    assert run.minimize and run.trials["value"][run.best()] == run.trials["value"][ok].min()
    assert run.key is None and run.optimum == FUNCTIONS["hartmann6"].optimum


READER = """
import sys, time, h5py
handle = h5py.File(sys.argv[1], "r", swmr=True)
ids = handle["trials/trial_id"]
seen, deadline = -1, time.time() + 60
while seen < int(sys.argv[2]) and time.time() < deadline:
    ids.refresh()
    if len(ids) != seen:
        seen = len(ids)
        print(seen, int(ids[seen - 1]) if seen else -1, flush=True)
    time.sleep(0.005)
"""


def wait_for_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the reader process saw nothing"
    return proc.stdout.readline().strip()


def test_a_second_process_sees_each_row_appear_while_the_run_writes(tmp_path):
    path = tmp_path / "run.h5"
    log = RunLog.create(path, config=CONFIG, space=SPACE, algorithm="lhs", seed=3, n_workers=2)
    log.record_result(baseline_result())  # creates the metric column before the reader opens the file
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), "6"], stdout=subprocess.PIPE, text=True,
                              env=ENV)
    try:
        assert wait_for_line(reader) == "1 0"
        for trial_id in range(1, 6):
            log.record_result(TrialResult(trial_id, {}, np.array([]), TrialState.OK, value=1.0,
                                          metrics={"loss": 1.0}))
            assert wait_for_line(reader) == f"{trial_id + 1} {trial_id}"
        assert read(path).n_trials == 6  # read() works on the live file too
    finally:
        log.close()
        reader.wait(timeout=30)


def test_a_plain_open_works_once_the_run_has_closed_its_log(tmp_path):
    finished_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        assert len(handle["trials/value"]) == 13


def test_export_writes_one_csv_row_per_trial_with_hyperparameters_by_name(tmp_path):
    finished_run(tmp_path / "run.h5")
    out = subprocess.run([sys.executable, "-m", "pbo.log", "export", str(tmp_path / "run.h5"), "--csv",
                          str(tmp_path / "out.csv")], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == f"wrote 13 trials to {tmp_path / 'out.csv'}"
    run = read(tmp_path / "run.h5")
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == csv_header(run) and len(rows) == 13
    for row, csv_row in enumerate(rows):
        params = run.params(row)
        assert csv_row["scheduler"] == str(params["scheduler"]) or math.isnan(params["scheduler"])
        for name in ("value", "lr", "dropout", "loss", "t_end"):
            number = run.trials[name][row] if name in run.trials else params[name]
            assert (csv_row[name] == "" and math.isnan(number)) or float(csv_row[name]) == number
        assert int(csv_row["trial_id"]) == run.trials["trial_id"][row]
        assert csv_row["status"] == run.trials["status"][row] and csv_row["error"] == run.trials["error"][row]


def test_show_prints_a_summary(tmp_path):
    finished_run(tmp_path / "run.h5")
    out = subprocess.run([sys.executable, "-m", "pbo.log", "show", str(tmp_path / "run.h5")], capture_output=True,
                         text=True, env=ENV, cwd=ROOT)
    assert out.returncode == 0
    assert "lhs on tests:toy, seed 3, 2 workers" in out.stdout and "13 finished (3 failed, 10 ok)" in out.stdout


def test_a_file_that_is_not_a_readable_log_gives_one_line(tmp_path):
    for kind, (path, message) in foreign_files(tmp_path).items():
        with pytest.raises(LogError, match=message) as err:
            read(path)
        assert "\n" not in str(err.value), kind
        out = subprocess.run([sys.executable, "-m", "pbo.log", "show", str(path)], capture_output=True, text=True,
                             env=ENV, cwd=ROOT)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, (kind, out.stderr)
