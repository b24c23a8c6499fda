"""The /reports table (log format 3): intermediate reports written as results are, read back as curves,
replayed on resume (pruned trials stay pruned, the pruner's reports come back in order), and logs of format 2,
which lack it, still read and resume."""

from __future__ import annotations

import math

import h5py
import numpy as np

from log_support import new_log, new_optimizer
from pbo.log import load_resume, read
from pbo.log.layout import LOG_FORMAT, REPORTS
from pbo.log.writer import RunLog
from pbo.optimizers.base import TrialState
from pbo.trial import Report, TrialResult


def report(trial_id: int, step: float, value: float, **metrics: float) -> Report:
    return Report(trial_id, 1, step, value, fidelity=step / 4, metrics=metrics, t=step)


def result(cand, status: TrialState, value: float, step: float) -> TrialResult:
    return TrialResult(cand.id, cand.params, cand.u, status, value=value, worker=1, t_submit=0.0, t_start=0.0,
                       t_end=1.0, step=step)


def killed_run(path):
    """Trial 1 reports twice and is pruned; trial 2 reports once and is still running at the 'kill'."""
    opt = new_optimizer()
    first, second = opt.ask(), opt.ask()
    log = new_log(path)
    log.record_submit(first, 1, 0.0)
    log.record_submit(second, 2, 0.0)
    log.record_report(report(1, 1, 0.5, loss=2.0))
    log.record_report(report(2, 1, 0.7))
    log.record_report(report(1, 2, 0.25, loss=1.5, acc=0.1))
    log.record_result(result(first, TrialState.PRUNED, 0.25, 2))
    return log, second


def test_reports_are_rows_with_their_metrics_and_a_trial_s_curve_is_its_reports_in_order(tmp_path):
    log, _ = killed_run(tmp_path / "run.h5")
    log.close()
    run = read(tmp_path / "run.h5")
    assert run.attrs["log_format"] == LOG_FORMAT == 5
    assert run.reports["trial_id"].tolist() == [1, 2, 1]
    curve = run.curve(1)
    assert curve["step"].tolist() == [1, 2] and curve["value"].tolist() == [0.5, 0.25]
    assert curve["fidelity"].tolist() == [0.25, 0.5] and curve["loss"].tolist() == [2.0, 1.5]
    assert math.isnan(curve["acc"][0]) and curve["acc"][1] == 0.1  # a metric that appeared later
    row = run.trials["trial_id"].tolist().index(1)
    assert (run.trials["status"][row], run.trials["value"][row], run.trials["step"][row]) == ("pruned", 0.25, 2)


def test_a_report_is_on_disk_when_record_report_returns(tmp_path):
    log, _ = killed_run(tmp_path / "run.h5")  # never closed: as if the master had been killed here
    with h5py.File(tmp_path / "run.h5", "r", swmr=True) as handle:
        assert handle["reports/trial_id"][:].tolist() == [1, 2, 1]
    log.close()


def test_resume_replays_a_pruned_trial_as_pruned_and_gives_every_report_in_order(tmp_path):
    log, second = killed_run(tmp_path / "run.h5")
    log.close()
    state = load_resume(tmp_path / "run.h5")
    assert {"op": "prune", "id": 1, "value": 0.25, "step": 2.0} in state.events
    assert state.reports() == [(1, 1.0, 0.5), (2, 1.0, 0.7), (1, 2.0, 0.25)]
    opt = new_optimizer()
    assert [c.id for c in state.restore(opt)] == [second.id]
    assert (opt.trials[1].state, opt.trials[1].value) == (TrialState.PRUNED, 0.25)


def test_a_trial_issued_again_after_a_resume_has_a_curve_of_its_new_attempt_only(tmp_path):
    log, second = killed_run(tmp_path / "run.h5")
    log.close()
    with RunLog.reopen(tmp_path / "run.h5", n_workers=2) as log:
        log.record_submit(second, 1, 5.0)
        log.record_report(report(2, 1, 0.6))
        log.record_report(report(2, 2, 0.8))
    run = read(tmp_path / "run.h5")
    assert run.curve(2)["value"].tolist() == [0.6, 0.8]
    assert np.sum(run.reports["trial_id"] == 2) == 3


def test_a_format_2_log_reads_with_no_reports_and_resume_adds_them(tmp_path):
    log, second = killed_run(tmp_path / "run.h5")
    log.close()
    with h5py.File(tmp_path / "run.h5", "a") as handle:  # what format 2 wrote
        del handle[REPORTS], handle["trials/step"]
        handle.attrs["log_format"] = 2
    run = read(tmp_path / "run.h5")
    assert len(run.reports["trial_id"]) == 0 and len(run.curve(1)["step"]) == 0
    assert np.isnan(run.trials["step"]).all()
    with RunLog.reopen(tmp_path / "run.h5", n_workers=2) as log:
        log.record_report(report(2, 1, 0.6))
    run = read(tmp_path / "run.h5")
    assert run.attrs["log_format"] == LOG_FORMAT and run.reports["trial_id"].tolist() == [2]
    assert np.isnan(run.trials["step"]).all() and len(run.trials["step"]) == run.n_trials
