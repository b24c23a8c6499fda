"""SOO: the sweep rule, equivalence with the sequential algorithm, parallel asks, failures, discrete spaces."""

import math
from collections import deque

import numpy as np
import pytest

from pbo.objectives.synthetic import FUNCTIONS
from pbo.optimizers import make_optimizer
from pbo.optimizers.base import ReplayDivergence
from pbo.optimizers.soo import SOO
from pbo.space import Space
from pbo.tree import EVALUATED, FAILED, INHERITED, PENDING, Tree
from tree_support import HARTMANN3, run_parallel, run_sequential, unit_space


def reference_soo(f, dim, n_evals, k=3, h_max=math.sqrt):
    """Sequential SOO written straight from Munos (2011), Algorithm 3: the unit points it evaluates, in order."""
    nodes = [{"lo": np.zeros(dim), "hi": np.ones(dim), "depth": 0, "leaf": True}]
    nodes[0]["c"] = np.full(dim, 0.5)
    nodes[0]["v"] = f(nodes[0]["c"])
    evaluated = [nodes[0]["c"]]
    t = 0
    while True:
        v_max, h = -math.inf, 0
        while h <= min(max(n["depth"] for n in nodes), h_max(t)):
            leaves = [n for n in nodes if n["leaf"] and n["depth"] == h]
            if leaves:
                best = max(leaves, key=lambda n: n["v"])  # first of the ties = oldest
                if best["v"] >= v_max:
                    side = int(np.argmax(np.round(best["hi"] - best["lo"], 12)))  # first of the widest
                    cuts = np.linspace(best["lo"][side], best["hi"][side], k + 1)
                    for i in range(k):
                        lo, hi = best["lo"].copy(), best["hi"].copy()
                        lo[side], hi[side] = cuts[i], cuts[i + 1]
                        child = {"lo": lo, "hi": hi, "depth": h + 1, "leaf": True}
                        if i == k // 2 and k % 2:
                            child["c"], child["v"] = best["c"], best["v"]
                        else:
                            child["c"] = (lo + hi) / 2
                            child["v"] = f(child["c"])
                            evaluated.append(child["c"])
                            if len(evaluated) == n_evals:
                                return evaluated
                        nodes.append(child)
                    best["leaf"] = False
                    v_max = best["v"]
                    t += 1
            h += 1


# Without a depth limit the first 100 evaluations: later the tree reaches the 1e-9 widths that pbo does not
# split further (points would collide), which the transcription ignores.
@pytest.mark.parametrize("h_max, limit, n", [("auto", lambda t: math.inf, 100), ("none", lambda t: math.inf, 100),
                                             ("sqrt", math.sqrt, 150)])
def test_one_worker_reproduces_the_sequential_algorithm(h_max, limit, n):
    expected = reference_soo(HARTMANN3.at_unit, 3, n, h_max=limit)
    got = run_sequential(SOO(unit_space(3), h_max=h_max, tie_break="index"), HARTMANN3, n)
    assert np.allclose(np.array(got), np.array(expected), atol=1e-12)


def test_soo_is_deterministic():
    a = run_sequential(SOO(unit_space(3)), HARTMANN3, 60)
    b = run_sequential(SOO(unit_space(3)), HARTMANN3, 60)
    assert np.array_equal(np.array(a), np.array(b))


def hand_built():
    """Root 0; children 1 (1.0), 2 (inherits 0.0), 3 (3.0); 3's children 4 (0.5), 5 (3.0), 6 (0.8);
    5's children 7 (2.5), 8 (3.0), 9 (2.0)."""
    opt = SOO(unit_space(2), h_max=3)
    tree = Tree(2)
    tree.set_value(0, 0.0, EVALUATED)
    for parent, values in ((0, (1.0, 3.0)), (3, (0.5, 0.8)), (5, (2.5, 2.0))):
        left, _, right = tree.expand(parent)
        tree.set_value(left.id, values[0], EVALUATED)
        tree.set_value(right.id, values[1], EVALUATED)
    opt.tree, opt._queue, opt.n_expansions = tree, deque(), 3
    return opt


def test_sweep_expands_the_best_leaf_per_depth_when_not_below_v_max():
    opt = hand_built()
    parents = []
    for _ in range(8):
        cand = opt.ask()
        parents.append(opt.tree.nodes[cand.meta["node"]].parent)
        opt.tell(cand.id, -10.0)
    # depth 1: node 1 (1.0; v_max = 1.0); depth 2: 1's middle child 11 inherits 1.0 >= v_max, beating
    # nodes 4 (0.5) and 6 (0.8); depth 3: node 8 (3.0); then a new sweep starts at depth 1 with node 2.
    assert parents == [1, 1, 11, 11, 8, 8, 2, 2]


def test_sweep_skips_a_depth_whose_best_leaf_is_below_v_max():
    opt = hand_built()
    opt.tree.set_value(1, 2.9, EVALUATED)  # depth 1 best: 2.9; depth 2 then holds only lower values
    first = [opt.tree.nodes[opt.ask().meta["node"]].parent for _ in range(2)]
    assert first == [1, 1]
    for cand in opt.pending():
        opt.tell(cand.id, -10.0)
    # depth 2: 1's middle child (2.9) is the best leaf and ties v_max, so it is expanded; depth 3: node 8.
    assert opt.tree.nodes[opt.ask().meta["node"]].parent == 11


def test_eight_outstanding_asks_never_repeat_a_point_and_always_find_work():
    opt = SOO(unit_space(3))
    asked = run_parallel(opt, HARTMANN3, 200, workers=8)
    keys = {tuple(np.round(c.u, 12)) for c in asked}
    assert len(keys) == len(asked) == 200


def test_parallel_run_still_converges():
    opt = SOO(unit_space(3))
    run_parallel(opt, HARTMANN3, 200, workers=8)
    assert HARTMANN3.optimum - opt.best().value < 0.1


def test_pending_centre_is_waited_for_not_proposed_again():
    opt = SOO(unit_space(1))
    root = opt.ask()
    children = [opt.ask(), opt.ask()]  # root still pending: the root is split speculatively
    middle = opt.tree.nodes[2]
    assert middle.candidate == root.id and middle.state == "pending"
    assert {opt.tree.nodes[c.meta["node"]].parent for c in children} == {0}
    opt.tell(root.id, 1.0)
    assert (middle.state, middle.value) == (INHERITED, 1.0)
    assert opt.tree.root.state == EVALUATED


def splits_of_pending_leaves(opt, workers, n):
    """Run with `workers` asks outstanding; for each split of a pending leaf, whether some leaf with a known
    value could have been split instead."""
    tree, expand, found = opt.tree, opt.tree.expand, []

    def recording_expand(node_id, k=3, side=None):
        if tree.nodes[node_id].state == PENDING:
            found.append(any(leaf.state != PENDING and tree.can_expand(leaf)
                             for depth in range(tree.depth + 1) for leaf in tree.leaves(depth)))
        return expand(node_id, k, side)

    tree.expand = recording_expand
    run_parallel(opt, HARTMANN3, n, workers=workers)
    return found


def test_a_pending_leaf_is_split_only_when_no_leaf_with_a_known_value_can_be():
    found = splits_of_pending_leaves(SOO(unit_space(3)), workers=8, n=80)
    assert found and not any(found)


def test_with_expand_pending_always_pending_leaves_compete_in_every_sweep():
    assert any(splits_of_pending_leaves(SOO(unit_space(3), expand_pending="always"), workers=8, n=80))


def test_with_expand_pending_never_a_pending_leaf_is_not_split_and_the_ask_waits():
    opt = SOO(unit_space(3), expand_pending="never")
    root = opt.ask()
    assert opt.ask() is None  # nothing to split while the root's value is unknown
    opt.tell(root.id, HARTMANN3(root.params))
    split_states, expand = [], opt.tree.expand
    opt.tree.expand = lambda node_id, k=3, side=None: (split_states.append(opt.tree.nodes[node_id].state)
                                                       or expand(node_id, k, side))
    rng, pending = np.random.default_rng(0), []
    while len(opt.trials) < 60:
        cand = opt.ask()
        if cand is not None:
            pending.append(cand)
        if cand is None or len(pending) == 8:
            done = pending.pop(rng.integers(len(pending)))
            opt.tell(done.id, HARTMANN3(done.params))
    assert len(split_states) > 10 and PENDING not in split_states


def failing_hartmann(params):
    return None if params["x1"] > 0.6 else HARTMANN3(params)


def run_with_failures(opt, n):
    for _ in range(n):
        cand = opt.ask()
        value = failing_hartmann(cand.params)
        if value is None:
            opt.tell_failure(cand.id, "diverged")
        else:
            opt.tell(cand.id, value)


def test_failures_rank_below_values_and_never_crash():
    opt = SOO(unit_space(3))
    run_with_failures(opt, 150)
    failed = [n for n in opt.tree.nodes if n.state == FAILED]
    assert failed and all(n.center[0] > 0.6 for n in failed)
    assert opt.best().candidate.params["x1"] <= 0.6
    assert opt.tree_table()["state"].tolist().count("failed") == len(failed)


def test_a_pruned_centre_and_the_middle_child_sharing_it_rank_by_the_last_report():
    opt = SOO(unit_space(1), minimize=True)
    root = opt.ask()
    opt.tell_pruned(root.id, 0.25, 3)  # minimize: the score is -0.25
    assert (opt.tree.root.state, opt.tree.root.value) == ("pruned", -0.25)
    for cand in (opt.ask(), opt.ask()):  # the root's side children; the middle one shares its centre
        opt.tell(cand.id, 1.0)
    middle = opt.tree.nodes[2]
    assert (middle.state, middle.value) == ("pruned", -0.25)
    assert opt.tree_table()["value"][0] == 0.25  # in the user's sign
    assert opt._best_leaf(1) is middle  # -0.25 beats the side children's -1.0


def test_a_pruned_centre_that_never_reported_is_a_failed_one():
    opt = SOO(unit_space(1))
    opt.tell_pruned(opt.ask().id, None)
    assert opt.tree.root.state == FAILED


def test_failure_policy_never_leaves_failed_cells_unsplit():
    opt = SOO(unit_space(3), failure="never")
    run_with_failures(opt, 150)
    assert not any(n.expanded for n in opt.tree.nodes if n.state == FAILED)


def test_restore_after_tells_with_outstanding_asks_gives_the_same_next_proposals():
    space = unit_space(3)
    live = SOO(space)
    rng = np.random.default_rng(1)
    outstanding = [live.ask() for _ in range(5)]
    for _ in range(40):
        cand = outstanding.pop(rng.integers(len(outstanding)))
        live.tell(cand.id, HARTMANN3(cand.params))
        outstanding.append(live.ask())
    restored = SOO(space)
    restored.load_state_dict(live.state_dict())
    for cand in outstanding:
        for opt in (live, restored):
            opt.tell(cand.id, HARTMANN3(cand.params))
    nxt = [(live.ask(), restored.ask()) for _ in range(20)]
    assert all(a.id == b.id and np.array_equal(a.u, b.u) for a, b in nxt)


def test_discrete_space_is_exhausted_without_repeating_a_point():
    space = Space.from_dict({"r": {"type": "int", "low": 1, "high": 5},
                             "c": {"type": "categorical", "choices": ["a", "b"]}})
    opt = SOO(space)
    seen = []
    while (cand := opt.ask()) is not None:
        seen.append((cand.params["r"], cand.params["c"]))
        opt.tell(cand.id, -abs(cand.params["r"] - 4) + (cand.params["c"] == "b"))
    assert sorted(seen) == sorted((r, c) for r in range(1, 6) for c in "ab")
    assert opt.best().candidate.params == {"r": 4, "c": "b"}
    assert any(n.state == INHERITED and n.parent >= 0 and n.center.tolist() != opt.tree.nodes[n.parent].center.tolist()
               for n in opt.tree.nodes)


def test_minimize_reports_tree_values_in_the_users_sign():
    opt = SOO(unit_space(1), minimize=True)
    cand = opt.ask()
    opt.tell(cand.id, 3.0)
    assert opt.tree_table()["value"][0] == 3.0


@pytest.mark.parametrize("options, message", [({"k": 1}, "k must be"), ({"failure": "retry"}, "failure must"),
                                              ({"h_max": -1}, "h_max must"),
                                              ({"h_max": "log"}, "h_max must be one of auto, none, sqrt"),
                                              ({"expand_pending": True}, "expand_pending must be one of idle"),
                                              ({"design": -1}, "design must be an integer >= 0 or .blind."),
                                              ({"design": 2.5}, "design must be an integer >= 0 or .blind.")])
def test_bad_options_are_refused_in_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("soo", unit_space(1), **options)


def test_branin_sanity(capsys):
    f = FUNCTIONS["branin"]
    opt = make_optimizer("soo", Space.from_dict(f.space()))
    run_sequential(opt, f, 200)
    with capsys.disabled():
        print(f"\nSOO branin regret after 200 evaluations: {f.optimum - opt.best().value:.2e}")
    assert f.optimum - opt.best().value < 1e-2


@pytest.mark.parametrize("tie_break, side", [("index", 0), ("variation", 1)])
def test_equally_wide_sides_split_by_index_or_by_the_variation_seen_along_them(tie_break, side):
    opt = SOO(unit_space(2), tie_break=tie_break)
    for _ in range(40):
        cand = opt.ask()
        opt.tell(cand.id, -(cand.params["x2"] - 0.3) ** 2)  # varies along x2 only
    squares = [n for n in opt.tree.nodes[1:] if n.expanded and np.isclose(*(n.upper - n.lower))]
    assert squares and {opt.tree.split_side(n) for n in squares} == {side}


def test_bad_tie_break_is_refused_in_one_line():
    with pytest.raises(ValueError, match="tie_break must be one of index, variation"):
        SOO(unit_space(2), tie_break="random")


LISTED = {"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
          "rank": {"type": "int", "low": 2, "high": 64}, "dropout": {"type": "float", "low": 0.0, "high": 0.5}}


def lora_like(params):
    return (-(math.log10(params["lr"]) + 3.2) ** 2 - 0.3 * (math.log2(params["rank"]) - 4) ** 2
            - 4 * (params["dropout"] - 0.12) ** 2 + 0.1 * math.sin(3 * params["dropout"]))


@pytest.mark.parametrize("algorithm, options", [("soo", {}), ("bamsoo", {}), ("soo", {"design": 5}),
                                                ("bamsoo", {"design": 5})])
def test_the_points_do_not_depend_on_the_order_in_which_the_space_lists_its_variables(algorithm, options):
    def points(order):
        opt = make_optimizer(algorithm, Space.from_dict({name: LISTED[name] for name in order}), seed=0, **options)
        for _ in range(40):
            cand = opt.ask()
            opt.tell(cand.id, lora_like(cand.params))
        return [tuple(t.candidate.params[name] for name in sorted(LISTED)) for t in opt.trials.values()]

    assert points(["lr", "rank", "dropout"]) == points(["dropout", "lr", "rank"]) == points(["rank", "dropout", "lr"])


# ---- an initial design --------------------------------------------------------------------------------------


def test_a_design_is_asked_first_one_point_per_slice_of_each_axis_then_the_root_centre():
    opt = SOO(unit_space(2), design=4)
    cands = [opt.ask() for _ in range(5)]
    design = np.array([c.u for c in cands[:4]])
    assert [c.meta["phase"] for c in cands] == ["design"] * 4 + ["soo"]
    assert all(sorted(np.floor(design[:, side] * 4).astype(int)) == [0, 1, 2, 3] for side in range(2))
    assert np.allclose(cands[4].u, 0.5) and cands[4].meta["node"] == 0


def test_a_leaf_ranks_by_the_best_design_value_inside_its_box():
    opt = SOO(unit_space(1), design=1)
    design, root = opt.ask(), opt.ask()
    opt.tell(design.id, 10.0)  # far better than any centre
    opt.tell(root.id, 0.0)
    children = [opt.ask(), opt.ask()]  # the root's side children
    for cand in children:
        opt.tell(cand.id, 1.0)  # both centres beat the middle one (0), neither the design point
    holder = next(n for n in opt.tree.leaves(1) if n.lower[0] <= design.u[0] <= n.upper[0])
    assert opt._rank(holder) == 10.0 and holder.value < 10.0
    opt.ask()
    assert opt.tree.nodes[holder.id].expanded  # split at depth 1 though another leaf's centre is as good


@pytest.mark.parametrize("algorithm, design, workers", [("soo", 5, 1), ("soo", "blind", 8), ("bamsoo", "blind", 8)])
def test_a_run_with_a_design_is_restored_by_replay_to_the_same_tree(algorithm, design, workers):
    opt = make_optimizer(algorithm, unit_space(3), design=design)
    run_parallel(opt, HARTMANN3, 40, workers=workers)
    restored = make_optimizer(algorithm, unit_space(3), design=design)
    restored.load_state_dict(opt.state_dict())
    assert restored.tree_table()["value"].tolist() == opt.tree_table()["value"].tolist()
    assert np.allclose(restored.ask().u, opt.ask().u)


def test_a_recorded_design_point_is_kept_when_replay_draws_another_with_a_warning():
    opt = SOO(unit_space(2), design=3, seed=1)
    cands = [opt.ask() for _ in range(4)]
    for cand in cands:
        opt.tell(cand.id, float(cand.u.sum()))
    restored = SOO(unit_space(2), design=3, seed=2)  # another design: as another scipy might draw
    with pytest.warns(ReplayDivergence, match="replay diverged"):
        restored.load_state_dict({**opt.state_dict(), "seed": 2})
    assert [t.candidate.u.tolist() for t in restored.trials.values()] == [c.u.tolist() for c in cands]


def test_a_blind_design_changes_nothing_with_one_worker():
    textbook = run_sequential(SOO(unit_space(3)), HARTMANN3, 60)
    blind = run_sequential(SOO(unit_space(3), design="blind"), HARTMANN3, 60)
    assert np.array_equal(np.array(blind), np.array(textbook))


def test_asks_made_blind_after_the_root_are_design_points_until_a_result_is_known():
    opt = SOO(unit_space(5), design="blind")
    first = [opt.ask() for _ in range(16)]
    assert first[0].meta["node"] == 0 and [c.meta["phase"] for c in first[1:]] == ["design"] * 15
    assert len(opt.tree.nodes) == 1  # the tree did not split blind
    lows = np.array([c.u for c in first[1:]]) < 0.5
    assert lows.any(axis=0).all() and (~lows).any(axis=0).all()  # both halves of every side are covered
    opt.tell(first[0].id, 1.0)
    assert opt.ask().meta["phase"] == "soo"


def test_a_blind_design_does_not_depend_on_the_order_of_the_variables():
    def first_asks(order):
        opt = make_optimizer("soo", Space.from_dict({name: LISTED[name] for name in order}), design="blind")
        return [tuple(opt.ask().params[name] for name in sorted(LISTED)) for _ in range(8)]

    assert first_asks(["lr", "rank", "dropout"]) == first_asks(["dropout", "lr", "rank"])
