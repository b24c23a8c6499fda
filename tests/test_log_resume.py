"""Resume by replay, in process: the restored optimizer, what is issued again, the budget, and refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from log_support import CONFIG, SPACE, baseline_result, drive, foreign_files, new_log, new_optimizer, toy
from pbo.backends.simulated import SimulatedBackend
from pbo.log import LogError, RunLog, load_resume, read, resume_config
from pbo.log.layout import LOG_FORMAT
from pbo.objectives import Objective
from pbo.objectives.cost import CostModel
from pbo.optimizers import ReplayDivergence, make_optimizer
from pbo.optimizers.base import TrialState
from pbo.scheduler import run_study
from thread_workers import ThreadWorkers

ROOT = Path(__file__).resolve().parents[1]


def interrupted(path, config=CONFIG, workers=2, stop_after=5):
    """A run stopped after `stop_after` results with work in flight; returns its optimizer as it was then."""
    opt = new_optimizer(config)
    with new_log(path, config) as log:
        log.record_result(baseline_result())
        drive(log, opt, config["budget"], workers=workers, stop_after=stop_after)
    return opt


@pytest.mark.parametrize("algorithm", ["lhs", "random", "soo", "bamsoo"])
def test_the_restored_optimizer_is_the_one_that_was_interrupted(tmp_path, algorithm):
    config = {**CONFIG, "algorithm": algorithm, "budget": 40}
    before = interrupted(tmp_path / "run.h5", config, workers=3, stop_after=25)
    state = load_resume(tmp_path / "run.h5")
    after = new_optimizer(config)
    redo = state.restore(after)
    assert after.state_dict() == before.state_dict()
    assert [c.id for c in redo] == [c.id for c in before.pending()] and len(redo) == 3
    if algorithm in ("soo", "bamsoo"):
        for name, column in before.tree_table().items():
            np.testing.assert_array_equal(after.tree_table()[name], column)
        # /tree is the tree as of the last result (the scheduler records it after each tell)
        last_result = max(i for i, event in enumerate(state.events) if event["op"] != "ask")
        then = new_optimizer(config)
        then.replay(state.events[: last_result + 1])
        logged = read(tmp_path / "run.h5").tree
        for name, column in then.tree_table().items():
            np.testing.assert_array_equal(logged[name], column)


def test_in_flight_candidates_are_issued_again_first_and_counted_once(tmp_path):
    interrupted(tmp_path / "run.h5", workers=3, stop_after=5)
    done_before = set(read(tmp_path / "run.h5").trials["trial_id"].tolist())
    state = load_resume(tmp_path / "run.h5")
    assert state.n_asked == 8 and len(state.in_flight) == 3 and state.has_baseline
    opt = new_optimizer()
    redo = state.restore(opt)
    with RunLog.reopen(tmp_path / "run.h5", n_workers=3) as log:
        finished = drive(log, opt, CONFIG["budget"], workers=3, redo=redo)
    assert set(state.in_flight) <= set(finished) and not done_before & set(finished)
    trials = read(tmp_path / "run.h5").trials
    assert sorted(trials["trial_id"]) == list(range(CONFIG["budget"] + 1))  # each trial once, baseline included


def test_one_worker_resumed_proposes_what_the_uninterrupted_run_proposes(tmp_path):
    config = {**CONFIG, "algorithm": "soo", "budget": 15}
    whole = new_optimizer(config)
    drive(None, whole, 15, workers=1)
    interrupted(tmp_path / "run.h5", config, workers=1, stop_after=6)
    state = load_resume(tmp_path / "run.h5")
    opt = new_optimizer(config)
    redo = state.restore(opt)
    with RunLog.reopen(tmp_path / "run.h5", n_workers=1) as log:
        drive(log, opt, 15, workers=1, redo=redo)
    asks = read(tmp_path / "run.h5").asks
    np.testing.assert_array_equal(asks["u"], np.array([whole.trials[i].candidate.u for i in asks["trial_id"]]))
    assert opt.state_dict() == whole.state_dict()


def test_reopen_keeps_committed_rows_drops_a_torn_one_and_continues_the_order(tmp_path):
    interrupted(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as handle:  # a kill between the two flushes of a row
        for name in ("value", "status"):
            handle["trials"][name].resize(len(handle["trials/value"]) + 1, axis=0)
    with RunLog.reopen(tmp_path / "run.h5", n_workers=4) as log:
        log.record_result(baseline_result())
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        assert {len(column) for column in handle["trials"].values()} == {7}
        seq = np.concatenate([handle["trials/seq"][:], handle["asks/seq"][:]])
        assert sorted(seq) == list(range(len(seq)))
    run = read(tmp_path / "run.h5")
    assert run.attrs["n_workers"] == 4 and len(run.attrs["resumes"]) == 1


def test_a_larger_budget_and_unchanged_settings_are_accepted(tmp_path):
    interrupted(tmp_path / "run.h5")
    state = load_resume(tmp_path / "run.h5")
    given = {"budget": 40, "algorithm": "lhs", "seed": 3, "space": SPACE.to_dict(), "resume": "x", "workers": 8}
    assert resume_config(state, given) == {**CONFIG, **given}


@pytest.mark.parametrize("given, named", [
    ({"algorithm": "random"}, "algorithm (stored 'lhs', given 'random')"),
    ({"objective": "branin", "seed": 4}, "objective (stored 'tests:toy', given 'branin'), seed (stored 3, given 4)"),
    ({"space": {"lr": {"type": "float", "low": 1e-6, "high": 1e-1}}}, "change space;"),
    ({"optimizer": {"design_size": 50}}, "change optimizer;"),
])
def test_changing_what_the_replay_depends_on_is_refused_in_one_line_naming_it(tmp_path, given, named):
    interrupted(tmp_path / "run.h5")
    with pytest.raises(LogError, match="cannot resume .*run.h5: the new settings change") as err:
        resume_config(load_resume(tmp_path / "run.h5"), {**given, "budget": 99})
    assert named in str(err.value) and "\n" not in str(err.value) and "budget" not in str(err.value)


def test_a_replay_that_recomputes_another_point_goes_on_from_the_logged_one_with_a_warning(tmp_path):
    interrupted(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as handle:
        handle["asks/u"][1] = 0.5
    opt = new_optimizer()
    with pytest.warns(ReplayDivergence, match=r"resuming .*run.h5: lhs: replay diverged from the record at trial 2 "
                                              r"\(recorded \[0.5, 0.5, 0.5, 0.5\], recomputed \[0.5"):
        load_resume(tmp_path / "run.h5").restore(opt)
    assert opt.trials[2].candidate.u.tolist() == [0.5] * 4 and opt.trials[2].state is TrialState.OK


def test_tree_decisions_that_cannot_be_taken_are_refused_in_one_line(tmp_path):
    interrupted(tmp_path / "run.h5", {**CONFIG, "algorithm": "soo"})
    with h5py.File(tmp_path / "run.h5", "a") as handle:
        split = list(handle["decisions/kind"][:]).index(b"split")
        handle["decisions/node"][split] = 99
    with pytest.raises(LogError, match="cannot resume .*soo: the decisions recorded with ask 2 do not lead to node"):
        load_resume(tmp_path / "run.h5").restore(new_optimizer({**CONFIG, "algorithm": "soo"}))


def test_a_foreign_or_damaged_file_is_refused_in_one_line(tmp_path):
    for kind, (path, message) in foreign_files(tmp_path).items():
        with pytest.raises(LogError, match=message) as err:
            load_resume(path)
        assert "\n" not in str(err.value), kind


def test_a_log_whose_writer_still_runs_is_not_taken_over(tmp_path):
    path = tmp_path / "run.h5"
    writer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "log_support.py"), str(path), "100000"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while not writer.stdout.readline().startswith("ack"):
            pass
        with pytest.raises(LogError, match=f"is still being written by process {writer.pid} on "):
            RunLog.reopen(path, n_workers=1)
    finally:
        writer.kill()
        writer.wait()
    RunLog.reopen(path, n_workers=1).close()  # once it is gone, the run can be resumed


BO_OPTIONS = {"num_restarts": 1, "raw_samples": 16, "mc_samples": 16, "n_init": 4}


@pytest.mark.parametrize("algorithm, options", [("bo", BO_OPTIONS), ("soo", {}), ("bamsoo", {}),
                                                ("soo", {"design": 3}), ("bamsoo", {"design": "blind"})])
@pytest.mark.parametrize("on_a_thread", [False, True])
def test_a_run_that_asked_ahead_resumes_to_the_state_it_stopped_in(tmp_path, algorithm, options, on_a_thread):
    """Points asked ahead are logged at dispatch, after results that came in meanwhile, and those not yet
    dispatched when the run stops are logged then (worker -1); replay puts each ask back where it was made, so
    the restored optimizer is the one that stopped, its tree included, and that is the tree logged last.
    Asked between results on the simulated cluster, or by the asker thread for workers with a real clock."""
    config = {**CONFIG, "algorithm": algorithm, "budget": 16}
    objective = Objective("toy", toy, space=SPACE.to_dict())
    before = make_optimizer(algorithm, SPACE, seed=config["seed"], budget=16, **options)
    backend = (ThreadWorkers(3, lambda params: time.sleep(0.05) or toy(params)) if on_a_thread
               else SimulatedBackend(objective, 3, CostModel("lognormal", mean=1.0, sigma=0.5)))
    results = []
    with new_log(tmp_path / "run.h5", config) as log:
        run_study(before, backend, budget=16, recorder=log, ask_ahead="always",
                  should_stop=lambda: len(results) >= 10, on_result=lambda r, s: results.append(r))
    run = read(tmp_path / "run.h5")
    results_before = [int(np.sum(run.trials["seq"] < seq)) for seq in run.asks["seq"]]
    assert any(run.asks["told"] < results_before)  # some ask was made before results logged ahead of it
    assert (run.asks["worker"] == -1).any() and len(run.asks["trial_id"]) == len(before.trials)
    after = make_optimizer(algorithm, SPACE, seed=config["seed"], budget=16, **options)
    redo = load_resume(tmp_path / "run.h5").restore(after)
    assert after.state_dict()["events"] == before.state_dict()["events"]
    assert [c.id for c in redo] == [c.id for c in before.pending()]
    if before.has_tree:
        for name, column in before.tree_table().items():
            np.testing.assert_array_equal(after.tree_table()[name], column, err_msg=name)
            np.testing.assert_array_equal(run.tree[name], column, err_msg=name)


def test_a_log_of_format_3_resumes_by_recomputing_and_gains_the_columns_of_format_4(tmp_path):
    config = {**CONFIG, "algorithm": "soo", "budget": 20}
    before = interrupted(tmp_path / "run.h5", config, workers=2, stop_after=8)
    with h5py.File(tmp_path / "run.h5", "a") as handle:  # as pbo wrote it before format 4
        del handle["asks/told"], handle["decisions"]
        handle.attrs["log_format"] = 3
    state = load_resume(tmp_path / "run.h5")
    assert not any("told" in e or "decisions" in e for e in state.events)
    after = new_optimizer(config)
    redo = state.restore(after)
    for name, column in before.tree_table().items():
        np.testing.assert_array_equal(after.tree_table()[name], column)
    study = {"minimize": False, "key": "value", "optimum": None}
    with RunLog.reopen(tmp_path / "run.h5", n_workers=2, study=study) as log:
        drive(log, after, 20, workers=2, redo=redo)
    run = read(tmp_path / "run.h5")
    assert run.attrs["log_format"] == LOG_FORMAT and sorted(run.trials["trial_id"]) == list(range(21))
    old = len(before.trials)
    assert np.isnan(run.asks["told"][:old]).all() and (run.asks["told"][old + len(redo):] >= 0).all()
    assert set(run.decisions["trial_id"]) == set(range(old + 1, 21)) | {c.id for c in redo}  # redo: dispatched again


def test_an_ask_logged_after_results_it_had_not_seen_is_replayed_where_it_was_asked(tmp_path):
    """An ask made ahead is logged at its dispatch, after results that came in meanwhile: replay puts it back
    after the results it had seen (`told`), where the optimizer made it."""
    config = {**CONFIG, "algorithm": "soo"}
    before = interrupted(tmp_path / "run.h5", config, workers=3, stop_after=6)
    with h5py.File(tmp_path / "run.h5", "a") as handle:  # the last result and the ask logged before it swap
        asks, results = handle["asks/seq"][:], handle["trials/seq"][:]
        result = int(np.argmax(results))
        ask = int(np.argmax(np.where(asks < results[result], asks, -1)))
        handle["asks/seq"][ask], handle["trials/seq"][result] = results[result], asks[ask]
        decided = handle["decisions/seq"][:]
        handle["decisions/seq"][:] = np.where(decided == asks[ask], results[result], decided)  # written with it
    state = load_resume(tmp_path / "run.h5")
    assert state.events == before.state_dict()["events"]
