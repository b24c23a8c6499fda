"""The Optimizer base class contract: ids, tell bookkeeping, failures, sign, incumbent, duplicates, replay."""

import numpy as np
import pytest

from pbo.optimizers import Optimizer, Proposal, ReplayDivergence, ReplayError, TrialState, make_optimizer
from pbo.space import Space

LINE = Space.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})


class Scripted(Optimizer):
    """Proposes the given unit points in order, then nothing."""

    name = "scripted"

    def __init__(self, space, points, **kwargs):
        super().__init__(space, **kwargs)
        self.points = [np.atleast_1d(np.asarray(p, dtype=float)) for p in points]

    def _ask(self):
        return Proposal(self.points.pop(0)) if self.points else None


def test_ids_start_at_one_and_increase():
    opt = Scripted(LINE, [0.1, 0.2, 0.3])
    assert [opt.ask().id for _ in range(3)] == [1, 2, 3]


def test_ask_returns_none_when_the_hook_has_nothing():
    opt = Scripted(LINE, [0.5])
    opt.ask()
    assert opt.ask() is None


def test_tell_of_an_unknown_id_is_refused():
    opt = Scripted(LINE, [0.5])
    opt.ask()
    with pytest.raises(KeyError, match="no candidate 7 was asked"):
        opt.tell(7, 1.0)


def test_second_tell_of_the_same_trial_is_refused():
    opt = Scripted(LINE, [0.5])
    cand = opt.ask()
    opt.tell(cand.id, 1.0)
    with pytest.raises(ValueError, match="already ok"):
        opt.tell(cand.id, 2.0)
    with pytest.raises(ValueError, match="already ok"):
        opt.tell_failure(cand.id, "late crash")
    assert opt.trials[cand.id].value == 1.0


@pytest.mark.parametrize("value", [None, float("nan"), float("inf")])
def test_missing_or_non_finite_value_is_a_failure_with_a_warning(value):
    opt = Scripted(LINE, [0.5])
    cand = opt.ask()
    with pytest.warns(RuntimeWarning, match="recorded as failed"):
        opt.tell(cand.id, value)
    assert opt.trials[cand.id].state is TrialState.FAILED
    assert opt.best() is None
    assert opt.completed()[0].shape == (0, 1)


def test_tell_failure_takes_only_failed_or_timeout():
    opt = Scripted(LINE, [0.5, 0.6])
    a, b = opt.ask(), opt.ask()
    opt.tell_failure(a.id, "walltime", TrialState.TIMEOUT)
    assert opt.trials[a.id].state is TrialState.TIMEOUT and opt.trials[a.id].reason == "walltime"
    with pytest.raises(ValueError, match="failed or timeout"):
        opt.tell_failure(b.id, "", TrialState.OK)


def test_minimize_flips_the_score_but_keeps_the_value():
    opt = Scripted(LINE, [0.1, 0.2], minimize=True)
    a, b = opt.ask(), opt.ask()
    opt.tell(a.id, 3.0)
    opt.tell(b.id, -1.0)
    assert opt.best().candidate.id == b.id
    assert opt.best().value == -1.0
    assert opt.completed()[1].tolist() == [-3.0, 1.0]


def test_best_is_the_highest_value_when_maximizing():
    opt = Scripted(LINE, [0.1, 0.2, 0.3])
    for cand, value in zip([opt.ask() for _ in range(3)], [1.0, 5.0, 2.0]):
        opt.tell(cand.id, value)
    assert opt.best().value == 5.0


def test_pending_lists_candidates_until_they_are_told():
    opt = Scripted(LINE, [0.1, 0.2])
    a, b = opt.ask(), opt.ask()
    opt.tell(a.id, 1.0)
    assert [c.id for c in opt.pending()] == [b.id]
    assert opt.n_told == 1


def test_a_duplicate_proposal_is_refused():
    opt = Scripted(LINE, [0.25, 0.25])
    opt.ask()
    with pytest.raises(RuntimeError, match="proposed .* again"):
        opt.ask()


def test_points_that_snap_to_the_same_integer_are_duplicates():
    space = Space.from_dict({"k": {"type": "int", "low": 1, "high": 4}})
    opt = Scripted(space, [0.26, 0.49])
    assert opt.ask().params == {"k": 2}
    assert opt.lookup(np.array([0.3])) is not None
    with pytest.raises(RuntimeError, match="again"):
        opt.ask()


def test_state_dict_restores_trials_and_incumbent():
    opt = make_optimizer("random", LINE, seed=3)
    cands = [opt.ask() for _ in range(4)]
    opt.tell(cands[0].id, 1.0)
    opt.tell_failure(cands[1].id, "oom")
    opt.tell(cands[2].id, 2.0)
    restored = make_optimizer("random", LINE, seed=3)
    restored.load_state_dict(opt.state_dict())
    assert restored.best().candidate.id == cands[2].id
    assert [c.id for c in restored.pending()] == [cands[3].id]
    assert restored.trials[cands[1].id].state is TrialState.FAILED
    assert restored.ask().u.tolist() == opt.ask().u.tolist()


def test_replay_that_recomputes_another_point_warns_once_and_keeps_the_recorded_one():
    opt = make_optimizer("random", LINE, seed=1)
    for _ in range(3):
        opt.tell(opt.ask().id, 1.0)
    restored = make_optimizer("random", LINE, seed=2)
    with pytest.warns(ReplayDivergence, match=r"replay diverged from the record at trial 1 \(recorded") as caught:
        restored.load_state_dict(opt.state_dict())
    assert len([w for w in caught if w.category is ReplayDivergence]) == 1  # the first divergence only
    assert [t.candidate.u.tolist() for t in restored.trials.values()] == [
        t.candidate.u.tolist() for t in opt.trials.values()]
    assert restored.n_told == 3 and restored.ask().id == 4


def test_replay_of_an_ask_out_of_sequence_is_refused():
    opt = make_optimizer("random", LINE, seed=1)
    opt.ask()
    events = opt.state_dict()["events"]
    events[0]["id"] = 2
    with pytest.raises(ReplayError, match="ask 2 is out of sequence"):
        make_optimizer("random", LINE, seed=1).replay(events)


def test_replay_of_a_point_recorded_twice_is_refused():
    opt = make_optimizer("random", LINE, seed=1)
    first, second = opt.ask(), opt.ask()
    events = opt.state_dict()["events"]
    events[1]["u"] = first.u.tolist()
    with pytest.raises(ReplayError, match="ask 2 records the point of trial 1 again"):
        make_optimizer("random", LINE, seed=1).replay(events)


def test_each_ask_records_how_many_results_it_had_seen():
    opt = make_optimizer("random", LINE, seed=1)
    first, second = opt.ask(), opt.ask()
    opt.tell(first.id, 1.0)
    opt.tell_failure(second.id, "oom")
    assert [first.meta["told"], second.meta["told"], opt.ask().meta["told"]] == [0, 0, 2]
    assert [e["told"] for e in opt.state_dict()["events"] if e["op"] == "ask"] == [0, 0, 2]


def test_state_of_another_algorithm_is_refused():
    opt = make_optimizer("random", LINE, seed=1)
    opt.ask()
    with pytest.raises(ReplayError, match="'random', not 'lhs'"):
        make_optimizer("lhs", LINE, seed=1, budget=4).load_state_dict(opt.state_dict())


def test_load_state_dict_needs_a_fresh_optimizer():
    opt = make_optimizer("random", LINE, seed=1)
    opt.ask()
    with pytest.raises(ReplayError, match="fresh optimizer"):
        opt.load_state_dict(opt.state_dict())


def test_unknown_algorithm_and_option_are_named():
    with pytest.raises(ValueError, match="unknown algorithm 'cmaes'"):
        make_optimizer("cmaes", LINE)
    with pytest.raises(ValueError, match=r"no option\(s\) \['depth'\]"):
        make_optimizer("random", LINE, depth=3)
