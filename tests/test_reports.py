"""The reporting protocol on one worker (pbo.worker, pbo.isolation): what an objective's `report` does, what the
master's answer does to the trial, and how a trial told to stop ends. Backends are covered by the conformance
suite (test_backend_conformance.py)."""

from __future__ import annotations

import math
import time

import pytest

from pbo.isolation import wait_any
from pbo.objectives import Objective
from pbo.trial import Task, TrialPruned, TrialState
from pbo.worker import Evaluator, takes_report

GRACE = 0.5


def curve(params, report):
    """Reports 10 * step at steps 1..4 and returns 100; returns -1 when told to stop."""
    for step in range(1, 5):
        if not report(step, 10.0 * step, loss=1.0 / step):
            return -1.0
    return 100.0


def stubborn(params, report):
    report(1, 0.5)
    time.sleep(30)
    return 1.0


def run(function, stop_at=None, isolate=True, **options):
    """Evaluate one task, answering each report "go on" until step `stop_at`; (reports, outcome)."""
    evaluator = Evaluator(Objective("t", function), 1, isolate=isolate, grace=GRACE, **options)
    running = evaluator.start(Task(7, {"x": 0.5}))
    reports = []
    while True:
        if running.child is not None:
            wait_any([running.child], 0.1)
        for report in running.reports():
            reports.append(report)
            running.answer(stop_at is None or report.step < stop_at)
        finished = running.poll()
        if finished is not None and not (running.child is not None and running.child.inbox):
            return reports, evaluator.finish(running, finished)


def test_a_plain_function_gets_no_report_and_runs_as_before():
    reports, outcome = run(lambda params: params["x"] * 2)
    assert reports == [] and (outcome.status, outcome.value) == (TrialState.OK, 1.0)
    assert math.isnan(outcome.step)


def test_only_a_parameter_named_report_asks_for_the_report_function():
    assert takes_report(curve) and takes_report(lambda params, *, report: 0)
    assert not takes_report(lambda params: 0) and not takes_report(lambda params, **kw: 0)


@pytest.mark.parametrize("isolate", [True, False], ids=["child", "inline"])
def test_reports_arrive_in_order_and_a_trial_told_to_go_on_ends_with_its_own_value(isolate):
    reports, outcome = run(curve, isolate=isolate)
    assert [(r.trial_id, r.worker, r.step, r.value, r.metrics) for r in reports] == [
        (7, 1, s, 10.0 * s, {"loss": 1.0 / s}) for s in (1, 2, 3, 4)]
    assert (outcome.status, outcome.value, outcome.step) == (TrialState.OK, 100.0, 4.0)


def test_a_stop_makes_report_return_false_and_the_trial_pruned_with_its_last_report():
    reports, outcome = run(curve, stop_at=2)
    assert [r.step for r in reports] == [1, 2]
    assert (outcome.status, outcome.value, outcome.step, outcome.metrics) == (
        TrialState.PRUNED, 20.0, 2.0, {"loss": 0.5})
    assert outcome.error == ""


def test_with_report_raises_a_stop_raises_trial_pruned_in_the_objective():
    def unaware(params, report):
        report(1, 3.0)
        return 0.0

    _, outcome = run(unaware, stop_at=1, report_raises=True)
    assert (outcome.status, outcome.value, outcome.step) == (TrialState.PRUNED, 3.0, 1.0)
    assert "TrialPruned: stopped by the master at step 1" in outcome.error


def test_an_objective_raising_trial_pruned_by_itself_is_pruned_not_failed():
    def quits(params, report):
        report(1, 0.25)
        raise TrialPruned("not worth it")

    _, outcome = run(quits)
    assert (outcome.status, outcome.value, outcome.step) == (TrialState.PRUNED, 0.25, 1.0)
    assert "TrialPruned: not worth it" in outcome.error


def test_an_objective_that_ignores_the_stop_is_killed_after_the_grace_period_and_pruned():
    start = time.monotonic()
    _, outcome = run(stubborn, stop_at=1)
    assert GRACE <= time.monotonic() - start < GRACE + 2.0
    assert (outcome.status, outcome.value, outcome.step) == (TrialState.PRUNED, 0.5, 1.0)
    assert outcome.error == f"killed {GRACE:g} s after the stop request"


def test_a_report_that_is_not_a_number_fails_the_trial_naming_the_argument():
    _, outcome = run(lambda params, report: report(1, "high"))
    assert outcome.status is TrialState.FAILED and "report: value must be a number" in outcome.error
