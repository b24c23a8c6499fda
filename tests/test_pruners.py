"""Pruners (pbo.pruners) on hand-made learning curves: each decision, the study's sign, and replay."""

from __future__ import annotations

import math

import pytest

from pbo.pruners import ASHA, PRUNERS, MedianPruner, Pruner, make_pruner


def feed(pruner: Pruner, curves: dict[int, list[float]]) -> dict[int, int | None]:
    """Report the curves step by step (steps 1, 2, ...), trial after trial; the step each trial was stopped at."""
    stopped: dict[int, int | None] = {}
    for trial_id, values in curves.items():
        stopped[trial_id] = None
        for step, value in enumerate(values, start=1):
            if pruner.should_stop(trial_id, step, value):
                stopped[trial_id] = step
                break
    return stopped


def test_no_pruner_never_stops():
    assert feed(make_pruner("none"), {1: [0.0] * 5, 2: [-1e9] * 5}) == {1: None, 2: None}


def test_median_waits_for_the_warm_up_then_stops_a_trial_below_the_median_at_that_step():
    pruner = MedianPruner(warmup_trials=3)
    curves = {1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 5], 4: [0.5, 9, 9], 5: [2.5, 3.5, 0.0]}
    assert feed(pruner, curves) == {1: None, 2: None, 3: None, 4: 1, 5: 3}


def test_median_lets_a_trial_at_the_median_go_on_and_respects_warmup_steps():
    pruner = MedianPruner(warmup_trials=2, warmup_steps=2)  # step 1 is never judged
    assert feed(pruner, {1: [1, 1, 1], 2: [3, 3, 3], 3: [0, 2, 2], 4: [0, 0, 0]}) == {1: None, 2: None, 3: None,
                                                                                        4: 2}


def test_median_compares_in_the_study_sense():
    curves = {1: [1.0], 2: [2.0], 3: [3.0]}
    assert feed(MedianPruner(warmup_trials=2), curves)[3] is None
    assert feed(MedianPruner(minimize=True, warmup_trials=2), curves)[3] == 1


def test_asha_judges_each_rung_at_min_resource_times_eta_powers_without_waiting_for_it_to_fill():
    pruner = ASHA(eta=2, min_resource=1)  # rungs at steps 1, 2, 4, 8
    assert [pruner.rung_step(k) for k in range(4)] == [1, 2, 4, 8]
    # Trial 1 is alone at every rung: the best so far, promoted. Trial 2 is worse at rung 0 (of 2, top 1).
    assert feed(pruner, {1: [1.0] * 8, 2: [0.5] * 8}) == {1: None, 2: 1}
    # Trial 3 is the best at rung 0 (3 values there: the top 1 goes on); at rung 1 it loses to trial 1.
    assert feed(pruner, {3: [1.2, 0.9]}) == {3: 2}
    assert {k: sorted(r.values()) for k, r in enumerate(pruner.rungs)} == {
        0: [0.5, 1.0, 1.2], 1: [0.9, 1.0], 2: [1.0], 3: [1.0]}


def test_asha_promotes_the_top_one_over_eta_of_a_rung():
    pruner = ASHA(eta=3, min_resource=1)
    for trial_id, value in enumerate([5.0, 4.0, 3.0, 2.0, 1.0], start=1):
        pruner.should_stop(trial_id, 1, value)
    assert not pruner.should_stop(6, 1, 4.5)  # 6 values: the top 2 are 5.0 and 4.5
    assert pruner.should_stop(7, 1, 4.2)  # 7 values: top 2 still 5.0 and 4.5


def test_asha_judges_every_rung_a_report_jumps_over_and_ranks_nan_last():
    pruner = ASHA(eta=2, min_resource=1)
    assert not pruner.should_stop(1, 4, 1.0)
    assert pruner.reached[1] == 3  # rungs 1, 2 and 4 recorded at once
    assert pruner.should_stop(2, 1, math.nan)


def test_asha_in_minimize_sense_keeps_the_smallest_values():
    pruner = ASHA(minimize=True, eta=2, min_resource=1)
    assert feed(pruner, {1: [0.3], 2: [0.1], 3: [0.9]}) == {1: None, 2: None, 3: 1}


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_replaying_the_reports_rebuilds_the_same_decisions(name):
    reports = [(t, s, v) for s in (1, 2, 3, 4) for t, v in ((1, 0.1 * s), (2, 0.3 * s), (3, 0.2 * s), (4, 0.0))]
    live = make_pruner(name, **({"warmup_trials": 2} if name == "median" else {}))
    for report in reports[:10]:
        live.should_stop(*report)
    rebuilt = make_pruner(name, **({"warmup_trials": 2} if name == "median" else {}))
    rebuilt.replay(reports[:10])
    assert [live.should_stop(*r) for r in reports[10:]] == [rebuilt.should_stop(*r) for r in reports[10:]]


@pytest.mark.parametrize("name, options, message", [
    ("hyperband", {}, "unknown pruner 'hyperband' (choose from none, median, asha)"),
    ("asha", {"rungs": 4}, "pruner 'asha' has no option(s) ['rungs']"),
    ("asha", {"eta": 1}, "eta (the reduction factor) must be a number >= 2"),
    ("median", {"warmup_trials": 0}, "warmup_trials must be an integer >= 1"),
])
def test_bad_pruner_settings_raise_one_line_naming_them(name, options, message):
    with pytest.raises(ValueError) as info:
        make_pruner(name, **options)
    assert message in str(info.value) and "\n" not in str(info.value)
