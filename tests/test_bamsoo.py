"""BaMSOO: the evaluate/approximate rule with a stubbed GP, B_N, fallbacks, GP data, parallel asks, restore."""

import hashlib
import math

import numpy as np
import pytest

from pbo.objectives.synthetic import FUNCTIONS
from pbo.optimizers import make_optimizer
from pbo.optimizers.bamsoo import MAX_APPROXIMATIONS, MAX_APPROXIMATIONS_PENDING, BaMSOO, confidence_bound
from pbo.optimizers.soo import SOO
from pbo.space import Space
from pbo.surrogate import GPSurrogate, ModelFittingError, half_rank_warp
from pbo.tree import APPROXIMATED, PENDING

from tree_support import HARTMANN3, run_parallel, run_sequential, unit_space


class StubGP:
    """A posterior with a given mean (a number or a function of u) and a constant sd; records its data.
    Its prior (mean 0, sd `prior_sd`) and leave-one-out predictions (every value missed by `loo_miss`, sd 1)
    cover any data by default, so BaMSOO leaves its sds as they are."""

    def __init__(self, mean=0.0, sd=1.0, fail=False, prior_sd=math.inf, loo_miss=0.0):
        self.mean, self.sd, self.fail, self.prior_sd, self.loo_miss = mean, sd, fail, prior_sd, loo_miss
        self.updates = []
        self.pending_seen = []

    def update(self, u, y):
        self.updates.append((np.array(u), np.array(y)))

    def predict(self, u, pending=None):
        self.pending_seen.append(None if pending is None else np.array(pending))
        if self.fail:
            raise ModelFittingError("stub cannot fit")
        mean = [self.mean(p) for p in u] if callable(self.mean) else np.full(len(u), self.mean)
        return np.asarray(mean, dtype=float), np.full(len(u), self.sd)

    def prior(self):
        return 0.0, self.prior_sd

    def loo(self):
        n = len(self.updates[-1][1])
        return np.full(n, self.loo_miss), np.ones(n)


def three_real_values(opt):
    """Root 1.0, then root's side children 0.5 and 2.0 (f+ = 2.0); the next child created is node 4."""
    for value in (1.0, 0.5, 2.0):
        cand = opt.ask()
        opt.tell(cand.id, value)


def test_confidence_bound_formula():
    assert confidence_bound(10, 0.05) == pytest.approx(math.sqrt(2 * math.log(math.pi ** 2 * 100 / (6 * 0.05))))
    assert confidence_bound(100, 0.05) > confidence_bound(10, 0.05) > confidence_bound(10, 0.5)


def test_child_whose_upper_bound_reaches_f_plus_is_evaluated():
    b4 = confidence_bound(4, 0.05)
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=(1.0 + 1e-9) / b4))
    three_real_values(opt)
    cand = opt.ask()
    assert cand.meta["node"] == 4 and opt.tree.nodes[4].state == PENDING


def test_child_below_f_plus_gets_the_gp_mean_without_evaluation():
    sd = (1.0 - 1e-6) / confidence_bound(4, 0.05)
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=sd))
    three_real_values(opt)
    cand = opt.ask()
    node4 = opt.tree.nodes[4]
    assert node4.state == APPROXIMATED and node4.value == 1.0
    # node 6 has a larger N, so a wider bound that reaches f+: it is the one evaluated
    assert cand.meta["node"] == 6 and opt.n_approximated == 1


def test_with_a_warp_the_gp_holds_warped_scores_and_the_tree_raw_ones():
    warped = half_rank_warp(np.array([1.0, 0.5, 2.0]))  # 0.5, below the median, moves; 1.0 and 2.0 stay
    stub = StubGP(mean=float(warped[1]), sd=1e-9)
    opt = BaMSOO(unit_space(1), surrogate=stub, warp="half_rank")
    three_real_values(opt)
    opt.ask()
    assert stub.updates[-1][1].tolist() == warped.tolist() and warped[1] != 0.5
    assert opt.tree.nodes[4].state == APPROXIMATED and opt.tree.nodes[4].value == pytest.approx(0.5)


def test_paper_rule_gives_a_skipped_child_its_lower_bound():
    sd = (1.0 - 1e-6) / confidence_bound(4, 0.05)
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=sd), approximate_with="lcb")
    three_real_values(opt)
    opt.ask()
    assert opt.tree.nodes[4].value == pytest.approx(1e-6, abs=1e-12)


def test_sds_are_scaled_until_the_prior_bounds_cover_every_real_value():
    # real values 1.0 (node 0, counted as N = 1), 0.5 (node 1) and 2.0 (node 3); prior mean 0, sd 0.1
    sd = (1.0 - 1e-6) / confidence_bound(4, 0.05)  # unscaled, node 4 would be approximated
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=sd, prior_sd=0.1))
    three_real_values(opt)
    cand = opt.ask()
    expected = max(1.0 / confidence_bound(1, 0.05), 2.0 / confidence_bound(3, 0.05)) / 0.1
    assert opt.sd_scale == pytest.approx(expected) and cand.meta["node"] == 4


def test_sds_are_scaled_until_leave_one_out_bounds_cover_every_real_value():
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=0.1, loo_miss=20.0))
    three_real_values(opt)
    opt.ask()
    assert opt.sd_scale == pytest.approx(20.0 / confidence_bound(1, 0.05))  # the node with the smallest N


def test_a_prior_that_covers_the_real_values_is_left_alone():
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=1.0, sd=0.1, prior_sd=10.0))
    three_real_values(opt)
    opt.ask()
    assert opt.sd_scale == 1.0


def test_a_gp_fitted_on_flat_data_with_one_narrow_peak_does_not_rule_out_unexplored_cells():
    """Shekel's failure: fitted on flat values and one peak, the GP's prior sd is so small that far from
    the data mean + B_N sd < f+, so BaMSOO would never evaluate anything but the peak again."""
    peak = np.array([5 / 6, 0.5])

    def spiky(u):
        return 0.05 * float(np.sin(7 * u[0] + 3 * u[1])) + 5.0 * float(np.sum((u - peak) ** 2) < 1e-4)

    # The tree and the fits this scenario was built on (each fit from the initial values).
    opt = BaMSOO(unit_space(2), tie_break="index", surrogate=GPSurrogate(2, warm_start=False))
    for _ in range(30):
        cand = opt.ask()
        opt.tell(cand.id, spiky(cand.u))
    opt.ask()
    assert opt.best().score > 4.0  # the peak's centre is one of the root's children
    far = np.array([[0.02, 0.98]])
    mean, sd = (float(a[0]) for a in opt.surrogate.predict(far))
    bound = confidence_bound(len(opt.tree.nodes), opt.eta)
    assert mean + bound * sd < opt.best().score  # the fitted model alone rules the corner out
    assert mean + bound * sd * opt.sd_scale >= opt.best().score


def test_gp_is_not_consulted_before_min_points_real_values():
    stub = StubGP(mean=-100.0, sd=0.0)
    opt = BaMSOO(unit_space(1), surrogate=stub, min_points=3)
    three_real_values(opt)
    assert stub.updates == [] and opt.n_approximated == 0


def test_confident_gp_reduces_to_soo_and_failing_gp_falls_back_to_soo():
    soo = run_sequential(SOO(unit_space(3)), HARTMANN3, 60)
    for stub in (StubGP(mean=0.0, sd=1e6), StubGP(fail=True)):
        got = run_sequential(BaMSOO(unit_space(3), surrogate=stub), HARTMANN3, 60)
        assert np.array_equal(np.array(got), np.array(soo))


def test_gp_sees_real_values_only():
    def bowl(u):
        return -float(np.sum((u - 0.3) ** 2))

    stub = StubGP(mean=bowl, sd=0.01)
    opt = BaMSOO(unit_space(2), surrogate=stub)
    for _ in range(40):
        cand = opt.ask()
        if cand.params["x1"] > 0.8:
            opt.tell_failure(cand.id, "crashed")
        else:
            opt.tell(cand.id, bowl(cand.u))
    opt.ask()  # the GP is conditioned on new values when the next child is decided
    u, y = stub.updates[-1]
    real = [t for t in opt.trials.values() if t.state.value == "ok"]
    assert opt.n_approximated > 0 and len(y) == len(real)
    approximated = {tuple(n.center) for n in opt.tree.nodes if n.state == APPROXIMATED}
    assert not approximated & {tuple(p) for p in u}


def test_middle_child_of_an_approximated_node_is_decided_again():
    opt = BaMSOO(unit_space(1), surrogate=StubGP(mean=0.0, sd=0.0))
    three_real_values(opt)
    opt.ask()  # everything is approximated for a while, then MAX_APPROXIMATIONS forces an evaluation
    approx_parents = [n for n in opt.tree.nodes if n.state == APPROXIMATED and n.expanded]
    assert approx_parents
    middle = opt.tree.nodes[approx_parents[0].children[1]]
    assert middle.state == APPROXIMATED and middle.value == 0.0


@pytest.mark.parametrize("mode", ["ignore", "believer"])
def test_believer_mode_conditions_the_rule_on_the_points_being_evaluated(mode):
    stub = StubGP(mean=1.0, sd=10.0)
    opt = BaMSOO(unit_space(2), surrogate=stub, pending=mode)
    three_real_values(opt)
    first = opt.ask()  # decided with nothing pending
    opt.ask()  # decided while `first` is pending
    assert stub.pending_seen[0] is None
    if mode == "believer":
        assert stub.pending_seen[-1].tolist() == [first.u.tolist()]
    else:
        assert stub.pending_seen[-1] is None


def test_restore_with_outstanding_asks_gives_the_same_next_proposals():
    f = FUNCTIONS["branin"]
    space = Space.from_dict(f.space())
    live = BaMSOO(space)
    rng = np.random.default_rng(3)
    outstanding = [live.ask() for _ in range(4)]
    for _ in range(30):
        cand = outstanding.pop(rng.integers(len(outstanding)))
        live.tell(cand.id, f(cand.params))
        outstanding.append(live.ask())
    restored = BaMSOO(space)
    restored.load_state_dict(live.state_dict())
    for cand in outstanding:
        for opt in (live, restored):
            opt.tell(cand.id, f(cand.params))
    for _ in range(20):
        a, b = live.ask(), restored.ask()
        assert a.id == b.id and np.array_equal(a.u, b.u)
        for opt in (live, restored):
            opt.tell(a.id, f(a.params))


@pytest.mark.parametrize("options, message", [({"eta": 1.5}, "eta must"), ({"min_points": 1}, "min_points"),
                                              ({"approximate_with": "ucb"}, "approximate_with"),
                                              ({"pending": "hope"}, "pending must be one of ignore, believer"),
                                              ({"parallel": "fast"}, "parallel must be one of sweep, ucb"),
                                              ({"warp": "log"}, "warp must be one of none, half_rank"),
                                              ({"split": "longest"}, "split must be one of widest, gp"),
                                              ({"noise_margin": -1}, "noise_margin must be >= 0")])
def test_bad_options_are_refused_in_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("bamsoo", unit_space(1), **options)


def test_branin_sanity(capsys):
    f = FUNCTIONS["branin"]
    opt = make_optimizer("bamsoo", Space.from_dict(f.space()))
    run_sequential(opt, f, 200)
    regret = f.optimum - opt.best().value
    with capsys.disabled():
        print(f"\nBaMSOO branin regret after 200 evaluations: {regret:.2e} ({opt.n_approximated} approximated)")
    assert regret < 1e-3


def test_variation_tie_break_splits_first_the_side_of_the_gps_shortest_lengthscale():
    opt = BaMSOO(unit_space(2), tie_break="variation")
    for _ in range(30):
        cand = opt.ask()
        opt.tell(cand.id, -(cand.params["x2"] - 0.3) ** 2)  # varies along x2 only
    squares = [n for n in opt.tree.nodes[1:] if n.expanded and np.isclose(*(n.upper - n.lower))]
    assert squares and {opt.tree.split_side(n) for n in squares} == {1}


def test_gp_split_rule_cuts_again_along_the_side_the_function_varies_along():
    shapes = {}
    for split in ("widest", "gp"):
        opt = BaMSOO(unit_space(2), split=split)
        for _ in range(30):
            cand = opt.ask()
            opt.tell(cand.id, -(cand.params["x2"] - 0.3) ** 2 - 0.01 * cand.params["x1"])
        shapes[split] = min((n.upper[1] - n.lower[1]) / (n.upper[0] - n.lower[0]) for n in opt.tree.nodes if n.expanded)
    assert shapes["widest"] == pytest.approx(1 / 3) and shapes["gp"] < 1 / 3 - 1e-9


def noisy_plateau(params):
    """1 plus noise of sd 0.01, the same at the same point."""
    seed = int(hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:8], 16)
    return 1.0 + 0.01 * np.random.default_rng(seed).standard_normal()


def test_noise_margin_keeps_sweeps_from_diving_after_lucky_draws_on_a_plateau():
    depths = {}
    for margin in (0.0, 2.0):
        opt = BaMSOO(unit_space(2), noise_margin=margin)
        run_sequential(opt, noisy_plateau, 40)
        depths[margin] = opt.tree.depth
    assert depths[2.0] < depths[0.0] / 2


def test_recommendation_is_the_best_trial_on_a_deterministic_objective():
    opt = BaMSOO(unit_space(2))
    run_sequential(opt, lambda p: -((p["x1"] - 0.3) ** 2 + (p["x2"] - 0.6) ** 2), 25)
    assert opt.recommend() is opt.best()


def test_soo_options_have_the_same_defaults_as_in_soo():
    import inspect

    from pbo.optimizers.soo import SOO
    soo, bamsoo = (inspect.signature(cls.__init__).parameters for cls in (SOO, BaMSOO))
    assert {name: bamsoo[name].default for name in soo if name != "self"} == \
        {name: soo[name].default for name in soo if name != "self"}


def test_ucb_rule_splits_for_idle_workers_the_leaf_whose_new_centre_has_the_largest_upper_bound():
    target = np.array([0.5, 5 / 6])  # a centre that splitting leaf 2, (1/2, 1/2), would add
    stub = StubGP(mean=lambda u: -float(np.abs(u - target).sum()), sd=10.0)
    opt = BaMSOO(unit_space(2), surrogate=stub, parallel="ucb")
    three_real_values(opt)
    opt.ask(), opt.ask()  # the sweep's next split: two children pending at depth 2, where the sweep now waits
    cand = opt.ask()
    assert opt.tree.nodes[cand.meta["node"]].parent == 2


def test_ucb_rule_splits_nothing_the_bamsoo_rule_would_approximate():
    stub = StubGP(mean=0.0, sd=1e-3)  # every new centre hopeless against f+ = 2
    opt = BaMSOO(unit_space(2), surrogate=stub, parallel="ucb")
    three_real_values(opt)
    assert opt._fill_leaf() is None


@pytest.mark.parametrize("parallel", ["sweep", "ucb"])
def test_eight_outstanding_asks_never_repeat_a_point_under_either_parallel_rule(parallel):
    f = FUNCTIONS["hartmann3"]
    opt = BaMSOO(Space.from_dict(f.space()), parallel=parallel)
    asked = run_parallel(opt, f, 60, workers=8)
    assert len({tuple(np.round(c.u, 12)) for c in asked}) == 60


def grown(opt, evaluations=40):
    """`opt` after `evaluations` sequential asks and tells on a smooth 2-D function (a tree of many leaves)."""
    for _ in range(evaluations):
        cand = opt.ask()
        opt.tell(cand.id, -float(((cand.u - 0.3) ** 2).sum()))
    return opt


def test_capped_fill_considers_the_best_leaf_of_each_depth_and_no_more_than_fill_leaves():
    opt = grown(BaMSOO(unit_space(2), surrogate=StubGP(sd=10.0), fill_leaves=4))
    considered = opt._fill_candidates()
    expandable = [n for d in range(opt.tree.depth + 1) for n in opt.tree.leaves(d) if opt.tree.can_expand(n)]
    assert len(expandable) > 4 and len(considered) == 4
    best = sorted((max((n for n in expandable if n.depth == d), key=opt._rank) for d in {n.depth for n in expandable}),
                  key=opt._rank, reverse=True)[:4]
    assert {n.id for n in best} <= {n.id for n in considered}


def test_capped_fill_picks_the_leaf_of_largest_upper_bound_among_those_it_considers():
    target = np.array([0.9, 0.1])
    stub = StubGP(mean=lambda u: 10.0 - float(np.abs(u - target).sum()), sd=10.0)
    opt = grown(BaMSOO(unit_space(2), surrogate=stub, fill_leaves=3))
    considered = opt._fill_candidates()
    scores = {n.id: max(stub.mean(opt.space.snap(c)) for c in opt.tree.new_centers(n, opt.k)) for n in considered}
    assert opt._fill_leaf().id == max(scores, key=scores.get)


def test_the_gp_window_holds_at_most_gp_points_values_the_best_included():
    stub = StubGP()
    opt = grown(BaMSOO(unit_space(2), surrogate=stub, gp_points=8), evaluations=30)
    opt._surrogate_ready()
    u, y = stub.updates[-1]
    assert len(y) == 8 and max(y) == max(opt._real_y)


@pytest.mark.parametrize("option", [{"gp_points": 2}, {"fill_leaves": 0}, {"gp_points": 10.5}])
def test_scale_caps_are_validated_in_one_line(option):
    with pytest.raises(ValueError, match=f"bamsoo: {next(iter(option))} must be an integer"):
        BaMSOO(unit_space(2), **option)


def test_the_believer_is_conditioned_on_at_most_gp_points_pending_points_the_latest_asked():
    stub = StubGP(sd=10.0)
    opt = grown(BaMSOO(unit_space(2), surrogate=stub, gp_points=4), evaluations=10)
    asked = [opt.ask() for _ in range(6)]
    np.testing.assert_array_equal(opt._believed(), np.array([c.u for c in asked[-4:]]))
    assert all(p is None or len(p) <= 4 for p in stub.pending_seen)


@pytest.mark.parametrize("pending, limit", [(False, MAX_APPROXIMATIONS), (True, MAX_APPROXIMATIONS_PENDING)])
def test_a_gp_that_rules_out_everything_forces_an_evaluation_after_a_run_of_approximations(pending, limit):
    opt = BaMSOO(unit_space(2), surrogate=StubGP(mean=0.0, sd=0.0), parallel="sweep")
    three_real_values(opt)
    if pending:
        opt.ask()  # a child decided while nothing is pending, then outstanding
    before = opt.n_approximated
    opt.ask()
    assert opt.n_approximated - before == limit


def test_a_designs_values_feed_the_gp_and_f_plus_so_even_the_root_may_be_judged():
    stub = StubGP(mean=-100.0, sd=0.0)  # rules out every centre
    opt = BaMSOO(unit_space(2), surrogate=stub, min_points=3, design=3)
    for value in (1.0, 5.0, 2.0):
        cand = opt.ask()
        opt.tell(cand.id, value)
    first = opt.ask()  # the root (node 0) is approximated, a centre below it is sent for evaluation
    assert len(stub.updates[-1][1]) == 3 and opt._f_plus == 5.0
    assert opt.tree.root.state == APPROXIMATED and first.meta["phase"] == "bamsoo"
