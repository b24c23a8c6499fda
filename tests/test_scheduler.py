"""The asynchronous scheduler, driven through an in-process backend (the simulated cluster)."""

import math
import time

import pytest

from pbo.backends.simulated import SimulatedBackend
from pbo.objectives import Objective
from pbo.objectives.cost import CostModel
from pbo.optimizers import make_optimizer
from pbo.optimizers.base import TrialState
from pbo.optimizers.random import RandomSearch
from pbo.scheduler import run_study
from pbo.space import Space

X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


class Journal:
    """A recorder, and a backend wrapper, writing every call into one list, in order."""

    def __init__(self, backend):
        self.backend, self.events = backend, []
        self.workers, self.now, self.wait, self.close = backend.workers, backend.now, backend.wait, backend.close
        self.allows_threads, self.master_time_counts = backend.allows_threads, backend.master_time_counts

    def submit(self, worker, task):
        self.events.append(("submit", worker, task.trial_id))
        self.backend.submit(worker, task)

    def record_submit(self, candidate, worker, t_submit):
        self.events.append(("record_submit", worker, candidate.id))

    def record_result(self, result):
        self.events.append(("record_result", result.worker, result.trial_id))

    def record_tree(self, table):
        self.events.append(("record_tree",))


def study(function, *, workers=2, budget=6, space=X, algorithm="random", cost=1.0, baseline=None, **kwargs):
    objective = Objective("f", function, space=space, baseline=baseline)
    optimizer = make_optimizer(algorithm, Space.from_dict(space), seed=0, budget=budget,
                               minimize=kwargs.pop("minimize", False))
    backend = Journal(SimulatedBackend(objective, workers, CostModel("fixed", mean=cost)))
    summary = run_study(optimizer, backend, budget=budget, recorder=backend, baseline=baseline is not None, **kwargs)
    return summary, optimizer, backend.events


def test_the_budget_counts_dispatched_evaluations_and_in_flight_work_finishes():
    summary, optimizer, _ = study(lambda p: p["x"], workers=4, budget=6)
    assert summary.evaluations == 6 and len(optimizer.trials) == 6
    assert all(t.state is TrialState.OK for t in optimizer.trials.values())
    assert summary.stopped == ""


def test_every_idle_worker_gets_work_at_once():
    summary, _, _ = study(lambda p: p["x"], workers=3, budget=6)
    assert sorted(r.t_submit for r in summary.results) == [0, 0, 0, 1, 1, 1]


def test_a_result_is_recorded_before_its_worker_gets_new_work():
    _, _, events = study(lambda p: p["x"], workers=2, budget=5)
    for i, event in enumerate(events):
        if event[0] == "record_result":
            later = [e for e in events[i + 1:] if e[0] == "submit" and e[1] == event[1]]
            earlier_submits = [e for e in events[:i] if e[0] == "submit" and e[1] == event[1]]
            assert earlier_submits[-1][2] == event[2]  # the worker's last task is the one recorded
            assert not later or events.index(later[0]) > i
    assert [e[0] for e in events[:2]] == ["record_submit", "submit"]


def test_failures_are_told_as_failures_with_their_reason():
    def half(p):
        if p["x"] < 0.5:
            raise RuntimeError("too small")
        return p["x"]

    summary, optimizer, _ = study(half, budget=8)
    failed = [t for t in optimizer.trials.values() if t.state is TrialState.FAILED]
    assert failed and all("RuntimeError: too small" in t.reason for t in failed)
    assert summary.failures == len(failed) and summary.evaluations == 8


def test_a_nan_value_is_a_failed_trial():
    summary, optimizer, _ = study(lambda p: math.nan, budget=2)
    assert [r.status for r in summary.results] == [TrialState.FAILED] * 2
    assert all("nan" in r.error for r in summary.results)


def test_a_mapping_without_the_key_is_a_failure_naming_the_keys():
    summary, _, _ = study(lambda p: {"acc": 1.0}, budget=1)
    assert "no 'value'" in summary.results[0].error and "['acc']" in summary.results[0].error


def test_metrics_are_every_numeric_entry():
    summary, _, _ = study(lambda p: {"value": 2.0, "acc": 0.5, "note": "text"}, budget=1)
    assert summary.results[0].metrics == {"value": 2.0, "acc": 0.5}


def test_max_failures_stops_the_run():
    summary, _, _ = study(lambda p: 1 / 0, workers=1, budget=10, max_failures=2)
    assert summary.stopped == "max_failures" and summary.evaluations == 3


def test_an_exhausted_space_ends_the_run_cleanly():
    space = {"k": {"type": "int", "low": 1, "high": 3}}
    summary, _, _ = study(lambda p: p["k"], workers=2, budget=10, space=space)
    assert summary.stopped == "exhausted" and summary.evaluations == 3


def test_the_baseline_is_trial_0_on_a_worker_and_is_not_told():
    summary, optimizer, events = study(lambda p: p["x"], workers=2, budget=3, baseline=lambda: {"value": 0.25})
    base = summary.results[[r.trial_id for r in summary.results].index(0)]
    assert base.status is TrialState.OK and base.value == 0.25 and base.params == {}
    assert 0 not in optimizer.trials and summary.evaluations == 3
    assert ("record_result", base.worker, 0) in events


def test_a_stop_request_abandons_work_in_flight():
    calls = []
    summary, optimizer, _ = study(lambda p: p["x"], workers=2, budget=10, should_stop=lambda: len(calls) > 2,
                                  on_result=lambda r, s: calls.append(r))
    assert summary.stopped == "signal" and summary.evaluations == 3
    assert len(optimizer.pending()) == 1  # in flight when the stop came: never told


def test_the_best_follows_the_objective_sense():
    summary, optimizer, _ = study(lambda p: p["x"], budget=6, minimize=True)
    assert summary.best.value == min(r.value for r in summary.results)


def test_utilization_is_busy_time_over_workers_times_makespan():
    summary, _, _ = study(lambda p: p["x"], workers=2, budget=3)
    assert summary.makespan == 2.0 and summary.utilization == pytest.approx(3 / 4)


def test_tree_optimizers_are_recorded_after_each_tell_and_at_the_end():
    from pbo.optimizers.random import RandomSearch

    class Tree(RandomSearch):
        has_tree = True

        def tree_table(self):
            return {}

    objective = Objective("f", lambda p: p["x"], space=X)
    backend = Journal(SimulatedBackend(objective, 2, CostModel("fixed", mean=1.0)))
    run_study(Tree(Space.from_dict(X)), backend, budget=3, recorder=backend)
    kinds = [e[0] for e in backend.events]
    assert kinds.count("record_tree") == 4 and kinds[-1] == "record_tree"  # after each result, and at the end
    assert all(kinds[i - 1] == "record_result" for i, k in enumerate(kinds[:-1]) if k == "record_tree")


class Diary(RandomSearch):
    """Random search that notes each ask and tell in order, and may think for a while on each ask."""

    def __init__(self, space, ask_seconds=0.0, **kwargs):
        super().__init__(space, **kwargs)
        self.diary, self.ask_seconds = [], ask_seconds

    def ask(self):
        time.sleep(self.ask_seconds)
        cand = super().ask()
        self.diary.append(("ask", cand.id))
        return cand

    def tell(self, candidate_id, value):
        self.diary.append(("tell", candidate_id))
        super().tell(candidate_id, value)


def diary_study(*, workers, budget=6, ask_ahead="always", cost=1.0, ask_seconds=0.0, optimizer=None):
    objective = Objective("f", lambda p: p["x"], space=X)
    optimizer = optimizer or Diary(Space.from_dict(X), ask_seconds=ask_seconds, budget=budget)
    backend = Journal(SimulatedBackend(objective, workers, CostModel("fixed", mean=cost)))
    summary = run_study(optimizer, backend, budget=budget, recorder=backend, ask_ahead=ask_ahead)
    return summary, optimizer, backend.events


def asked_ahead(diary, workers):
    """Whether some ask came while every worker was busy (more asks outstanding than workers)."""
    outstanding = 0
    for op, _ in diary:
        outstanding += 1 if op == "ask" else -1
        if outstanding > workers:
            return True
    return False


def test_asking_ahead_gives_a_freed_worker_the_point_asked_before_its_result():
    _, optimizer, events = diary_study(workers=2)
    assert optimizer.diary[:4] == [("ask", 1), ("ask", 2), ("ask", 3), ("tell", 1)]
    first_result = next(i for i, e in enumerate(events) if e[0] == "record_result")
    assert events[first_result + 1:first_result + 3] == [("record_submit", 1, 3), ("submit", 1, 3)]


def test_asking_ahead_stays_within_the_budget():
    summary, optimizer, events = diary_study(workers=3, budget=7)
    assert len(optimizer.trials) == 7 and summary.evaluations == 7
    assert sorted(e[2] for e in events if e[0] == "submit") == list(range(1, 8))


def test_one_worker_never_asks_ahead():
    _, optimizer, _ = diary_study(workers=1, budget=4)
    assert not asked_ahead(optimizer.diary, 1)


def test_auto_asks_ahead_only_when_asks_are_slow_next_to_trials():
    _, slow_asks, _ = diary_study(workers=2, budget=8, ask_ahead="auto", cost=0.05, ask_seconds=0.002)
    _, quick_asks, _ = diary_study(workers=2, budget=8, ask_ahead="auto", cost=1000.0, ask_seconds=0.002)
    assert asked_ahead(slow_asks.diary, 2) and not asked_ahead(quick_asks.diary, 2)


def test_an_optimizer_whose_replay_depends_on_result_order_never_asks_ahead():
    class InOrder(RandomSearch):
        order_free_replay = False

    optimizer = InOrder(Space.from_dict(X), budget=6)
    journal = Journal(SimulatedBackend(Objective("f", lambda p: p["x"], space=X), 2, CostModel("fixed", mean=1.0)))
    told_before_third_ask = []
    ask = optimizer.ask
    optimizer.ask = lambda: told_before_third_ask.append(optimizer.n_told) or ask()
    run_study(optimizer, journal, budget=6, ask_ahead="always")
    assert told_before_third_ask[2] >= 1


def test_a_stop_records_the_point_asked_ahead_as_never_dispatched():
    """So the log holds every ask the optimizer made, and resume rebuilds the state it stopped in."""
    objective = Objective("f", lambda p: p["x"], space=X)
    optimizer = Diary(Space.from_dict(X), budget=10)
    backend = Journal(SimulatedBackend(objective, 2, CostModel("fixed", mean=1.0)))
    results = []
    run_study(optimizer, backend, budget=10, recorder=backend, ask_ahead="always",
              should_stop=lambda: len(results) >= 3, on_result=lambda r, s: results.append(r))
    recorded = {e[2]: e[1] for e in backend.events if e[0] == "record_submit"}
    submitted = {e[2] for e in backend.events if e[0] == "submit"}
    assert set(recorded) == set(optimizer.trials) and max(optimizer.trials) not in submitted
    assert recorded[max(optimizer.trials)] == -1
