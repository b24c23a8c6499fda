"""The writer: what one run puts in its file, and the places it refuses to write."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

import pbo
from log_support import CONFIG, SPACE, baseline_result, drive, finished_run, new_log, new_optimizer
from pbo.log import LogError, RunLog, default_path, read
from pbo.log import storage
from pbo.log.layout import ERROR_BYTES, LOG_FORMAT
from pbo.optimizers.base import TrialState
from pbo.trial import TrialResult

ROOT = Path(__file__).resolve().parents[1]


def test_root_attributes_describe_the_run(tmp_path):
    new_log(tmp_path / "run.h5").close()
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["pbo_version"] == pbo.__version__
    assert json.loads(attrs["config"]) == CONFIG
    assert json.loads(attrs["space"]) == SPACE.to_dict()
    assert list(json.loads(attrs["space"])) == SPACE.names
    assert (attrs["algorithm"], attrs["objective"], attrs["seed"], attrs["n_workers"]) == ("lhs", "tests:toy", 3, 2)
    assert abs(attrs["start_time"] - datetime.now().timestamp()) < 60 and attrs["hostname"]


def test_root_attributes_record_the_sense_key_and_optimum_as_the_run_worked_them_out(tmp_path):
    new_log(tmp_path / "run.h5", study={"minimize": True, "key": "eval/acc", "optimum": None}).close()
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["log_format"] == LOG_FORMAT == 5
    assert attrs["minimize"] and attrs["key"] == "eval/acc" and math.isnan(attrs["optimum"])


def test_resuming_a_format_1_log_adds_the_study_attributes(tmp_path):
    finished_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as handle:
        handle.attrs["log_format"] = 1
    RunLog.reopen(tmp_path / "run.h5", n_workers=2, study={"minimize": False, "key": "value", "optimum": 1.5}).close()
    run = read(tmp_path / "run.h5")
    assert run.attrs["log_format"] == LOG_FORMAT and (run.minimize, run.key, run.optimum) == (False, "value", 1.5)


def test_every_finished_trial_is_one_row_of_equal_length_columns(tmp_path):
    finished_run(tmp_path / "run.h5", budget=12)
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        lengths = {name: len(column) for name, column in handle["trials"].items()}
    assert set(lengths.values()) == {13}
    trials = read(tmp_path / "run.h5").trials
    assert sorted(trials["trial_id"]) == list(range(13))
    assert set(trials["status"]) <= {"ok", "failed"}


def test_x_holds_natural_values_in_space_order_with_categoricals_as_their_index(tmp_path):
    finished_run(tmp_path / "run.h5")
    run = read(tmp_path / "run.h5")
    rows = np.flatnonzero(run.trials["trial_id"] > 0)
    for row in rows:
        params = SPACE.from_unit(run.trials["u"][row])
        assert run.trials["x"][row] == pytest.approx(SPACE.to_numbers(params))
    assert set(run.trials["x"][rows, 3]) <= {0.0, 1.0, 2.0}
    assert run.params(rows[0]) == SPACE.from_unit(run.trials["u"][rows[0]])


def test_the_baseline_is_trial_zero_with_no_point(tmp_path):
    finished_run(tmp_path / "run.h5")
    run = read(tmp_path / "run.h5")
    row = int(np.flatnonzero(run.trials["trial_id"] == 0)[0])
    assert np.isnan(run.trials["u"][row]).all() and np.isnan(run.trials["x"][row]).all()
    assert run.trials["value"][row] == -9.0 and run.trials["loss"][row] == 9.0


def test_a_failed_trial_has_nan_value_and_its_error(tmp_path):
    finished_run(tmp_path / "run.h5", budget=12)
    trials = read(tmp_path / "run.h5").trials
    failed = trials["status"] == "failed"
    assert failed.any()
    assert np.isnan(trials["value"][failed]).all()
    assert all(error == "FloatingPointError: loss diverged" for error in trials["error"][failed])
    assert np.isnan(trials["loss"][failed]).all()


def test_a_new_metric_becomes_a_column_with_earlier_rows_nan(tmp_path):
    with new_log(tmp_path / "run.h5") as log:
        for trial_id, metrics in enumerate([{}, {"a": 1.0}, {"a": 2.0, "task/acc": 0.5, "value": 7.0}]):
            log.record_result(TrialResult(trial_id, {}, np.array([]), TrialState.OK, value=1.0, metrics=metrics))
    run = read(tmp_path / "run.h5")
    assert run.metrics == ["a", "metric_value", "task.acc"]
    np.testing.assert_array_equal(run.trials["a"], [math.nan, 1.0, 2.0])
    np.testing.assert_array_equal(run.trials["task.acc"], [math.nan, math.nan, 0.5])
    assert run.trials["value"].tolist() == [1.0, 1.0, 1.0] and run.trials["metric_value"][2] == 7.0


def test_a_long_error_is_cut_without_breaking_a_character(tmp_path):
    with new_log(tmp_path / "run.h5") as log:
        log.record_result(TrialResult(1, {}, np.array([]), TrialState.FAILED, error="é" * ERROR_BYTES))
    error = read(tmp_path / "run.h5").trials["error"][0]
    assert error == "é" * (ERROR_BYTES // 2)


class FakeTree:
    """A hand-built node table with the columns SOO's tree_table() returns."""

    def __init__(self, n: int) -> None:
        self.n = n

    def tree_table(self) -> dict[str, np.ndarray]:
        n, d = self.n, SPACE.dim
        return {"node_id": np.arange(n), "parent": np.arange(n) - 1, "depth": np.arange(n) // 3,
                "lower": np.zeros((n, d)), "upper": np.ones((n, d)), "center": np.full((n, d), 0.5),
                "value": np.arange(n) / 10, "state": np.array(["evaluated", "pending"] * (n // 2) + ["failed"] * (n % 2)),
                "expanded": np.arange(n) % 2 == 0}


def test_the_tree_table_is_written_and_kept_current(tmp_path):
    with new_log(tmp_path / "run.h5") as log:
        log.record_tree(FakeTree(3).tree_table())
        assert len(read(tmp_path / "run.h5").tree["node_id"]) == 3
        log.record_tree(FakeTree(8).tree_table())
    tree = read(tmp_path / "run.h5").tree
    expected = FakeTree(8).tree_table()
    for name, column in expected.items():
        np.testing.assert_array_equal(tree[name], column)


def test_the_tree_write_appends_only_new_and_changed_nodes(tmp_path):
    changed = FakeTree(8).tree_table()
    changed["value"][2], changed["state"][5], changed["expanded"][1] = 9.0, "evaluated", True
    with new_log(tmp_path / "run.h5") as log:
        log.record_tree(FakeTree(6).tree_table())
        log.record_tree(FakeTree(6).tree_table())  # nothing changed: nothing written
        log.record_tree(changed)
    with h5py.File(tmp_path / "run.h5", "r", swmr=True) as handle:
        assert handle["tree/node_id"][:].tolist() == [0, 1, 2, 3, 4, 5, 1, 2, 5, 6, 7]
    tree = read(tmp_path / "run.h5").tree
    for name, column in changed.items():
        np.testing.assert_array_equal(tree[name], column, err_msg=name)


def test_a_tree_row_torn_by_a_kill_is_ignored_and_the_node_keeps_its_last_committed_row(tmp_path):
    changed = FakeTree(4).tree_table()
    changed["value"][1] = 7.0
    with new_log(tmp_path / "run.h5") as log:
        log.record_tree(FakeTree(4).tree_table())
        log.record_tree(changed)
    with h5py.File(tmp_path / "run.h5", "a") as handle:  # as a kill leaves it: the commit column one row short
        handle["tree/node_id"].resize(4, axis=0)
    assert read(tmp_path / "run.h5").tree["value"].tolist() == FakeTree(4).tree_table()["value"].tolist()


def test_a_reopened_log_appends_to_the_logged_tree_only_what_changed(tmp_path):
    finished = FakeTree(5).tree_table()
    with new_log(tmp_path / "run.h5") as log:
        log.record_tree(finished)
    with RunLog.reopen(tmp_path / "run.h5", n_workers=2) as log:
        log.record_tree(FakeTree(6).tree_table())
    with h5py.File(tmp_path / "run.h5", "r", swmr=True) as handle:
        assert handle["tree/node_id"][:].tolist() == [0, 1, 2, 3, 4, 4, 5]  # node 4: failed -> evaluated


def test_an_optimizer_without_a_tree_writes_no_tree(tmp_path):
    with new_log(tmp_path / "run.h5") as log:
        log.record_tree(new_optimizer().tree_table())
    assert read(tmp_path / "run.h5").tree is None


def test_default_path_names_algorithm_objective_and_time():
    path = default_path("soo", "mymod:fn", datetime(2026, 1, 2, 3, 4, 5))
    assert path == Path("runs/soo-mymod_fn-20260102-030405.h5")


def test_an_existing_file_is_never_overwritten_unless_asked(tmp_path):
    finished_run(tmp_path / "run.h5")
    with pytest.raises(LogError, match="already exists.*--overwrite"):
        new_log(tmp_path / "run.h5")
    assert read(tmp_path / "run.h5").n_trials == 13
    new_log(tmp_path / "run.h5", overwrite=True).close()
    assert read(tmp_path / "run.h5").n_trials == 0


def test_a_missing_folder_is_refused_unless_it_is_the_default_runs_folder(tmp_path):
    with pytest.raises(LogError, match="log folder .*nope does not exist"):
        new_log(tmp_path / "nope" / "run.h5")
    new_log(tmp_path / "runs" / "run.h5", make_folder=True).close()
    assert (tmp_path / "runs" / "run.h5").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(LogError, match="not writable"):
            new_log(folder / "run.h5")
    finally:
        folder.chmod(0o700)


def test_a_nearly_full_disk_is_refused_before_the_run(tmp_path, monkeypatch):
    full = storage.shutil.disk_usage(tmp_path)._replace(free=1024)
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: full)
    with pytest.raises(LogError, match="has only 0.0 MiB free"):
        new_log(tmp_path / "run.h5")
    assert not (tmp_path / "run.h5").exists()


def test_a_disk_nearly_full_during_the_run_stops_it_with_the_file_intact(tmp_path, monkeypatch):
    log = new_log(tmp_path / "run.h5")
    log.record_result(baseline_result())
    full = storage.shutil.disk_usage(tmp_path)._replace(free=1024)
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda folder: full)
    with pytest.raises(LogError, match="has only 0.0 MiB free"):
        drive(log, new_optimizer(), 12)
    log.close()
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        assert handle["trials/trial_id"][:].tolist() == [0]


FILL_DISK = """
import resource, signal, sys
sys.path.insert(0, "tests")
from log_support import *
from pbo.log import LogError
log = RunLog.create(sys.argv[1], config=CONFIG, space=SPACE, algorithm="lhs", seed=3, n_workers=2)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
try:
    drive(log, new_optimizer({**CONFIG, "algorithm": "random"}), 10 ** 6, on_ack=lambda i: print("ack", i, flush=True))
except LogError as exc:
    print("error", exc, flush=True)
"""


def test_a_write_that_fails_gives_one_line_and_keeps_the_trials_written(tmp_path):
    """The disk fills before the free-space check sees it (another process wrote): the file size limit
    makes HDF5's writes fail the way a full disk does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", FILL_DISK, str(tmp_path / "run.h5")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert lines[-1].startswith(f"error cannot write log {tmp_path / 'run.h5'}:"), out.stdout[-500:] + out.stderr
    acked = [int(line.split()[1]) for line in lines if line.startswith("ack")]
    assert len(acked) > 10
    assert set(acked) <= set(read(tmp_path / "run.h5").trials["trial_id"].tolist())
