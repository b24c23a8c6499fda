"""What every optimizer in ALGORITHMS must do, driven through the plain ask/tell loop a scheduler uses."""

import math
import warnings

import numpy as np
import pytest

from pbo.objectives.synthetic import FUNCTIONS
from pbo.optimizers import ALGORITHMS, TrialState, make_optimizer
from pbo.space import Space

BRANIN = FUNCTIONS["branin"]
PLANE = Space.from_dict(BRANIN.space())
MIXED = Space.from_dict({
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "rank": {"type": "int", "low": 2, "high": 64},
    "schedule": {"type": "categorical", "choices": ["cosine", "linear", "constant"]},
})
TINY = Space.from_dict({"k": {"type": "int", "low": 1, "high": 3},
                        "mode": {"type": "categorical", "choices": ["a", "b"]}})

#: Cheaper acquisition optimization so that each test takes seconds; the behaviour under test is the same.
FAST = {"bo": {"num_restarts": 2, "raw_samples": 32, "mc_samples": 32}}

pytestmark = pytest.mark.parametrize("name", sorted(ALGORITHMS))


def build(name, space=PLANE, budget=24, seed=0):
    return make_optimizer(name, space, seed=seed, budget=budget, **FAST.get(name, {}))


def mixed_objective(p):
    return (-(p["dropout"] - 0.1) ** 2 - (math.log10(p["learning_rate"]) + 4) ** 2 / 4
            - (p["rank"] - 16) ** 2 / 1000 + (p["schedule"] == "cosine") * 0.1)


def run_parallel(opt, n_evals, objective, workers, on_ask=None):
    """Keep up to `workers` asks outstanding; tell the oldest when full or when ask() has nothing.

    Returns the largest number of asks that were outstanding at once.
    """
    pending, told, most = [], 0, 0
    while told < n_evals:
        cand = opt.ask() if len(pending) < workers else None
        if cand is not None:
            pending.append(cand)
            most = max(most, len(pending))
            if on_ask:
                on_ask(cand)
            continue
        assert pending, f"{opt.name} asked for nothing with no evaluation pending"
        done = pending.pop(0)
        opt.tell(done.id, objective(done))
        told += 1
    return most


def test_eight_outstanding_asks_are_distinct_and_never_repeat(name):
    opt = build(name, budget=24)
    seen = set()

    def distinct(cand):
        key = tuple(np.round(cand.u, 12))
        assert key not in seen, f"{name} proposed {cand.params} twice"
        seen.add(key)

    most = run_parallel(opt, 24, lambda c: BRANIN(c.params), workers=8, on_ask=distinct)
    assert most == 8


def test_failures_and_timeouts_do_not_stop_the_run(name):
    opt = build(name, budget=20)

    def flaky(cand):
        if cand.id % 3 == 0:
            opt.tell_failure(cand.id, "CUDA out of memory")
        elif cand.id % 5 == 0:
            opt.tell_failure(cand.id, "walltime", TrialState.TIMEOUT)
        elif cand.id % 7 == 0:
            return float("nan")
        else:
            return BRANIN(cand.params)
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(20):
            cand = opt.ask()
            value = flaky(cand)
            if opt.trials[cand.id].state is TrialState.PENDING:
                opt.tell(cand.id, value)
    states = [t.state for t in opt.trials.values()]
    assert len(states) == 20 and TrialState.TIMEOUT in states and TrialState.FAILED in states
    assert opt.best().state is TrialState.OK
    assert opt.ask() is not None


def pruned_run(opt, n_evals=16):
    """Sequential asks; every third trial is pruned at step 2 with a value far better than any real one (a
    low-fidelity value the optimizer must not take as final)."""
    for _ in range(n_evals):
        cand = opt.ask()
        if cand.id % 3 == 0:
            opt.tell_pruned(cand.id, 1e6, 2)
        else:
            opt.tell(cand.id, BRANIN(cand.params))


def test_a_pruned_trial_is_never_a_success_nor_proposed_again_and_replays(name):
    opt = build(name, budget=30)
    pruned_run(opt)
    pruned = [t for t in opt.trials.values() if t.state is TrialState.PRUNED]
    assert len(pruned) == 5 and all(t.value == 1e6 for t in pruned)
    assert opt.best().state is TrialState.OK and opt.best().value < 1e6
    assert len(opt.completed()[1]) == 11  # the GP data, where there is one: successes only
    restored = build(name, budget=30)
    restored.load_state_dict(opt.state_dict())
    assert [t.state for t in restored.trials.values()] == [t.state for t in opt.trials.values()]
    more = [opt.ask() for _ in range(4)]
    assert [c.u.tolist() for c in more] == [restored.ask().u.tolist() for _ in range(4)]
    assert not any(np.allclose(c.u, t.candidate.u) for c in more for t in pruned)


def test_same_seed_gives_the_same_run(name):
    runs = []
    for _ in range(2):
        opt = build(name, budget=12)
        run_parallel(opt, 12, lambda c: BRANIN(c.params), workers=3)
        runs.append([t.candidate.u.tolist() for t in opt.trials.values()])
    assert runs[0] == runs[1]


def test_prepare_between_results_changes_no_record_and_the_run_goes_on(name):
    opt = build(name, budget=30)
    run_parallel(opt, 14, lambda c: BRANIN(c.params), workers=3)
    events = opt.state_dict()["events"]
    opt.prepare()
    opt.prepare()
    assert opt.state_dict()["events"] == events
    run_parallel(opt, 8, lambda c: BRANIN(c.params), workers=3)
    assert opt.n_told == 22


def test_restored_state_continues_like_the_uninterrupted_run(name):
    values = {}

    def value(cand):
        return values.setdefault(cand.id, BRANIN(cand.params))

    opt = build(name, budget=30)
    run_parallel(opt, 14, value, workers=3)
    assert opt.pending(), "the saved state should include pending asks"
    restored = build(name, budget=30)
    restored.load_state_dict(opt.state_dict())
    assert [c.id for c in restored.pending()] == [c.id for c in opt.pending()]
    for twin in (opt, restored):
        for cand in twin.pending():
            twin.tell(cand.id, value(cand))
    proposals = [[twin.ask().u.tolist() for _ in range(3)] for twin in (opt, restored)]
    assert proposals[0] == proposals[1]


def test_mixed_space_gives_valid_natural_values(name):
    opt = build(name, MIXED, budget=16)
    run_parallel(opt, 16, lambda c: mixed_objective(c.params), workers=2)
    for trial in opt.trials.values():
        p = trial.candidate.params
        assert 0.0 <= p["dropout"] <= 0.5 and 1e-6 <= p["learning_rate"] <= 1e-2
        assert isinstance(p["rank"], int) and 2 <= p["rank"] <= 64
        assert p["schedule"] in ("cosine", "linear", "constant")
        assert np.allclose(MIXED.to_unit(p), trial.candidate.u)


def judged_without_evaluation(opt):
    """Points a tree method valued from its GP instead of evaluating them (BaMSOO's approximated nodes)."""
    if not opt.has_tree:
        return set()
    table = opt.tree_table()
    return {tuple(TINY.from_unit(TINY.snap(c)).values())
            for c, state in zip(table["center"], table["state"]) if state == "approximated"}


def test_small_discrete_space_is_exhausted_cleanly(name):
    opt = build(name, TINY, budget=10)
    asked = []
    for _ in range(10):
        cand = opt.ask()
        if cand is None:
            break
        asked.append((cand.params["k"], cand.params["mode"]))
        opt.tell(cand.id, cand.params["k"] + (cand.params["mode"] == "b"))
    every_point = {(k, m) for k in (1, 2, 3) for m in ("a", "b")}
    assert len(set(asked)) == len(asked)
    assert set(asked) | judged_without_evaluation(opt) == every_point
    assert opt.ask() is None
