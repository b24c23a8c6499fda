"""Askers: the optimizer asked on the scheduler's thread, or on a thread of its own that keeps candidates ready."""

import threading
import time

import numpy as np
import pytest

from pbo.asker import AskAhead, ThreadAsker
from pbo.optimizers.base import TrialState
from pbo.optimizers.random import RandomSearch
from pbo.scheduler import run_study
from pbo.space import Space
from pbo.trial import TrialResult
from thread_workers import ThreadWorkers

X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


class Witness(RandomSearch):
    """Random search that notes, for each ask and tell, which thread made it."""

    def __init__(self, space, fail_after=None, **kwargs):
        super().__init__(space, **kwargs)
        self.calls, self.fail_after = [], fail_after

    def ask(self):
        if self.fail_after is not None and len(self.trials) >= self.fail_after:
            raise ZeroDivisionError("the model broke")
        cand = super().ask()
        self.calls.append(("ask", None if cand is None else cand.id, threading.current_thread().name))
        return cand

    def tell(self, candidate_id, value):
        self.calls.append(("tell", candidate_id, threading.current_thread().name))
        super().tell(candidate_id, value)


class Preparing(Witness):
    """Also notes each prepare() with the number of results told by then."""

    def prepare(self):
        self.calls.append(("prepare", self.n_told, threading.current_thread().name))


def threaded(optimizer, remaining, mode="always", workers=2):
    return ThreadAsker(optimizer, remaining, AskAhead(mode), workers)


def ok(candidate):
    return TrialResult(candidate.id, dict(candidate.params), candidate.u, TrialState.OK, value=1.0, t_start=0.0,
                       t_end=1.0)


def until(condition, what="got there"):
    """Until `condition()` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"the asker's thread never {what}"
        time.sleep(0.01)


def settle(asker):
    """Until the asker's thread has nothing left to do."""
    until(lambda: not asker.working(), "settled")


def test_while_every_worker_is_busy_the_thread_asks_two_candidates_ahead():
    optimizer = Witness(Space.from_dict(X), budget=10)
    asker = threaded(optimizer, remaining=10)
    asker.before_wait(idle=0)
    settle(asker)
    ready = [asker.take(), asker.take(), asker.take()]
    asker.close()
    assert [c.id for c in ready[:2]] == [1, 2] and ready[2] is None
    assert {thread for _, _, thread in optimizer.calls} == {"pbo-asker"}


def test_idle_workers_each_get_a_candidate_from_the_thread():
    asker = threaded(Witness(Space.from_dict(X), budget=10), remaining=10, mode="never")
    asker.before_wait(idle=3)
    settle(asker)
    assert [asker.take().id for _ in range(3)] == [1, 2, 3] and asker.take() is None
    asker.close()


def test_the_thread_never_asks_beyond_the_budget():
    optimizer = Witness(Space.from_dict(X), budget=3)
    asker = threaded(optimizer, remaining=3)
    asker.before_wait(idle=5)
    settle(asker)
    asker.close()
    assert [op for op, _, _ in optimizer.calls] == ["ask"] * 3


def test_results_are_told_in_the_order_they_were_passed_before_the_next_ask():
    optimizer = Witness(Space.from_dict(X), budget=10)
    asker = threaded(optimizer, remaining=10, mode="never")
    asker.before_wait(idle=2)
    settle(asker)
    first, second = asker.take(), asker.take()
    asker.tell(ok(second))
    asker.tell(ok(first))
    asker.before_wait(idle=1)
    settle(asker)
    asker.close()
    assert [(op, cid) for op, cid, _ in optimizer.calls[2:]] == [("tell", 2), ("tell", 1), ("ask", 3)]


def test_close_tells_the_results_still_queued():
    optimizer = Witness(Space.from_dict(X), budget=10)
    asker = threaded(optimizer, remaining=10, mode="never")
    asker.before_wait(idle=1)
    settle(asker)
    candidate = asker.take()
    asker.tell(ok(candidate))
    asker.close()
    assert optimizer.trials[candidate.id].state is TrialState.OK


def test_an_error_on_the_thread_is_raised_by_the_next_take():
    asker = threaded(Witness(Space.from_dict(X), budget=10, fail_after=1), remaining=10)
    asker.before_wait(idle=0)
    settle(asker)
    with pytest.raises(ZeroDivisionError, match="the model broke"):
        asker.take()
    asker.close()


def test_the_thread_reports_a_space_with_nothing_left_to_propose():
    space = Space.from_dict({"c": {"type": "categorical", "choices": ["a", "b"]}})
    optimizer = RandomSearch(space, budget=10)
    asker = threaded(optimizer, remaining=10)
    asker.before_wait(idle=0)
    settle(asker)
    taken = [asker.take(), asker.take()]
    for candidate in taken:
        asker.tell(ok(candidate))
    asker.before_wait(idle=1)
    settle(asker)
    assert asker.take() is None and asker.exhausted()
    asker.close()


def test_a_run_that_may_ask_ahead_asks_on_the_thread_and_keeps_the_budget():
    optimizer = Witness(Space.from_dict(X), budget=8)
    summary = run_study(optimizer, ThreadWorkers(2, lambda p: time.sleep(0.02) or p["x"]), budget=8,
                        ask_ahead="always")
    assert summary.evaluations == 8 and sorted(r.trial_id for r in summary.results) == list(range(1, 9))
    threads = [thread for op, _, thread in optimizer.calls if op == "ask"]
    assert threads == ["pbo-asker"] * 8 and all(np.isfinite(r.value) for r in summary.results)


def test_the_optimizer_stays_on_the_main_thread_when_the_backend_allows_no_threads():
    optimizer = Witness(Space.from_dict(X), budget=6)
    backend = ThreadWorkers(2, lambda p: time.sleep(0.02) or p["x"])
    backend.allows_threads = False
    run_study(optimizer, backend, budget=6, ask_ahead="always")
    assert {thread for _, _, thread in optimizer.calls} == {"MainThread"}


def test_a_stop_abandons_the_ready_points_and_leaves_every_worker_result_told():
    optimizer = Witness(Space.from_dict(X), budget=20)
    backend = ThreadWorkers(2, lambda p: time.sleep(0.02) or p["x"])
    results = []
    summary = run_study(optimizer, backend, budget=20, ask_ahead="always", should_stop=lambda: len(results) >= 4,
                        on_result=lambda r, s: results.append(r))
    assert summary.stopped == "signal" and len(optimizer.trials) > len(backend.submitted)
    assert all(optimizer.trials[r.trial_id].state is TrialState.OK for r in summary.results)


def test_an_optimizer_error_on_the_thread_ends_the_run_with_that_error():
    optimizer = Witness(Space.from_dict(X), budget=10, fail_after=4)
    with pytest.raises(ZeroDivisionError, match="the model broke"):
        run_study(optimizer, ThreadWorkers(2, lambda p: time.sleep(0.01) or p["x"]), budget=10, ask_ahead="always")


def test_a_paced_policy_affords_half_the_mean_time_between_results_once_trials_were_timed():
    policy = AskAhead("auto", paced=True)
    assert policy.time_per_ask(4) is None
    for seconds in (1.0, 2.0, 9.0):
        policy.observe(TrialResult(1, {}, np.zeros(1), TrialState.OK, value=1.0, t_start=0.0, t_end=seconds))
    assert policy.time_per_ask(4) == pytest.approx(0.5 * 2.0 / 4)


def test_each_ask_is_told_the_time_it_may_take_and_none_when_the_master_time_is_free():
    optimizer = Witness(Space.from_dict(X), budget=10)
    for paced, expected in ((True, 0.25), (False, None)):
        policy = AskAhead("auto", paced=paced)
        policy.observe(ok(optimizer.ask()))  # a one-second trial
        policy.ask(optimizer, 2)
        assert optimizer.time_per_ask == expected


def test_the_thread_prepares_the_next_ask_before_the_first_result_and_then_only_after_new_results():
    optimizer = Preparing(Space.from_dict(X), budget=10)
    asker = threaded(optimizer, remaining=10, mode="never")
    asker.before_wait(idle=2)
    settle(asker)
    until(lambda: ("prepare", 0, "pbo-asker") in optimizer.calls)  # once before the first result
    first, second = asker.take(), asker.take()
    asker.before_wait(idle=0)
    asker.tell(ok(first))
    asker.tell(ok(second))
    until(lambda: ("prepare", 2, "pbo-asker") in optimizer.calls)
    time.sleep(0.05)
    asker.close()
    ops = " ".join(op for op, _, _ in optimizer.calls).split("prepare")
    assert ops[-1] == "" and all("tell" in before for before in ops[1:-1])  # then each follows new results


def test_the_thread_prepares_nothing_after_results_once_the_budget_is_asked():
    optimizer = Preparing(Space.from_dict(X), budget=2)
    asker = threaded(optimizer, remaining=2, mode="never")
    asker.before_wait(idle=2)
    settle(asker)
    first, second = asker.take(), asker.take()
    asker.tell(ok(first))
    asker.tell(ok(second))
    asker.close()
    ops = [op for op, _, _ in optimizer.calls]
    assert "prepare" not in ops[ops.index("tell"):]


def test_a_told_result_gets_its_worker_a_candidate_without_waiting_for_the_scheduler():
    asker = threaded(Witness(Space.from_dict(X), budget=10), remaining=10, mode="never")
    asker.before_wait(idle=1)
    settle(asker)
    candidate = asker.take()
    asker.before_wait(idle=0)
    asker.tell(ok(candidate))
    settle(asker)
    assert asker.take().id == 2
    asker.close()
