"""GP-BO specifics: the initial design, the GP phase, its fallback, discrete spaces and cheap replay."""

import warnings

import numpy as np
import pytest
from botorch.exceptions import ModelFittingError
from gpytorch.utils.warnings import NumericalWarning

import pbo.optimizers.bo as bo
import pbo.surrogate as surrogate
from pbo.optimizers import make_optimizer
from pbo.space import Space
from gp_support import record_fits

LINE = Space.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
CUBE = Space.from_dict({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)})
FAST = {"num_restarts": 2, "raw_samples": 32, "mc_samples": 32}


def parabola(cand):
    return -(cand.params["x"] - 0.3) ** 2


def run(opt, n, objective=parabola):
    for _ in range(n):
        cand = opt.ask()
        opt.tell(cand.id, objective(cand))
    return opt


@pytest.mark.parametrize("dim, budget, expected", [(1, None, 5), (3, None, 7), (3, 4, 4)])
def test_design_size_is_2d_plus_1_at_least_5_capped_by_budget(dim, budget, expected):
    space = Space.from_dict({f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(dim)})
    assert len(make_optimizer("bo", space, budget=budget).design) == expected


def test_design_is_handed_out_first_then_the_gp_takes_over():
    opt = make_optimizer("bo", CUBE, seed=0, n_init=4, **FAST)
    phases = [c.meta["phase"] for c in [opt.ask() for _ in range(4)]]
    assert phases == ["design"] * 4
    for cand in opt.pending():
        opt.tell(cand.id, float(cand.u.sum()))
    assert opt.ask().meta["phase"] == "gp"


@pytest.mark.parametrize("noise", [None, 1e-6])
def test_gp_steps_converge_on_a_smooth_function(noise):
    opt = run(make_optimizer("bo", LINE, seed=1, n_init=4, noise=noise, **FAST), 12)
    assert abs(opt.best().candidate.params["x"] - 0.3) < 0.01


@pytest.mark.parametrize("pending", bo.PENDING_MODES)
def test_pending_points_push_the_next_proposal_away(pending):
    # Right after the design, while the model is uncertain (once it has converged, refining next to a
    # pending point is what both modes rightly do).
    opt = run(make_optimizer("bo", LINE, seed=1, n_init=4, pending=pending, **FAST), 4)
    first, second = opt.ask(), opt.ask()
    assert abs(first.u[0] - second.u[0]) > 1e-3


def test_a_failed_gp_fit_falls_back_to_a_random_point_with_a_warning(monkeypatch):
    def broken_fit(mll, **options):
        raise ModelFittingError("all attempts to fit the model have failed")

    opt = run(make_optimizer("bo", LINE, seed=0, n_init=3, **FAST), 3)
    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", broken_fit)
    with pytest.warns(RuntimeWarning, match="GP step failed .*ModelFittingError"):
        cand = opt.ask()
    assert cand.meta["phase"] == "fallback"


def test_a_bug_in_the_gp_step_raises_instead_of_becoming_a_random_point(monkeypatch):
    def buggy_fit(mll, **options):
        raise TypeError("unexpected keyword")

    opt = run(make_optimizer("bo", LINE, seed=0, n_init=3, **FAST), 3)
    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", buggy_fit)
    with pytest.raises(TypeError, match="unexpected keyword"):
        opt.ask()


def test_random_points_until_two_trials_succeed():
    opt = make_optimizer("bo", LINE, seed=0, n_init=2, **FAST)
    for cand in [opt.ask(), opt.ask()]:
        opt.tell_failure(cand.id, "crashed")
    assert opt.ask().meta["phase"] == "random"


def test_integer_space_is_filled_without_repeats():
    space = Space.from_dict({"k": {"type": "int", "low": 0, "high": 5}})
    opt = run(make_optimizer("bo", space, seed=0, n_init=2, **FAST), 6, lambda c: -abs(c.params["k"] - 2))
    assert sorted(t.candidate.params["k"] for t in opt.trials.values()) == list(range(6))
    assert opt.ask() is None


def test_replay_returns_recorded_points_without_fitting_a_gp():
    opt = run(make_optimizer("bo", LINE, seed=2, n_init=3, **FAST), 8)
    restored = make_optimizer("bo", LINE, seed=2, n_init=3, **FAST)
    restored._acquisition_maximizers = lambda seed: pytest.fail("replay optimized the acquisition")
    restored.load_state_dict(opt.state_dict())
    assert restored.best().candidate.u.tolist() == opt.best().candidate.u.tolist()


@pytest.mark.parametrize("options, message", [
    ({"n_init": 0}, "n_init must be at least 1"),
    ({"raw_samples": 0}, "must be at least 1"),
    ({"noise": -1.0}, "noise must be positive"),
    ({"refit_growth": -0.1}, "refit_growth must be >= 0"),
    ({"pending": "hope"}, "pending must be one of believer, qlognei, got 'hope'"),
    ({"gp_points": 3}, "gp_points must be an integer >= 4"),
    ({"large_restarts": 0}, "large_restarts and large_raw_samples must be at least 1"),
    ({"large_n": 0}, "large_n must be an integer >= 1"),
    ({"warp": "log"}, "warp must be one of none, half_rank, got 'log'"),
    ({"pruned": "keep"}, "pruned must be one of exclude, below_median, got 'keep'"),
])
def test_invalid_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("bo", LINE, **options)


def test_hyperparameters_are_fitted_when_the_data_have_grown_by_a_fifth():
    opt = make_optimizer("bo", LINE, refit_growth=0.2, **FAST)
    assert sorted({opt.fit_size(n) for n in range(2, 31)}) == [2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 27]


def test_between_scheduled_fits_the_gp_keeps_its_hyperparameters():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, refit_growth=0.2, **FAST), 16)
    gp_asks = range(4, 16)  # successful trials when each GP ask was made
    assert opt.n_fits == len({opt.fit_size(n) for n in gp_asks}) < len(gp_asks)


def test_by_default_hyperparameters_are_fitted_on_every_ask():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 10)
    assert opt.n_fits == 6


def test_each_fit_starts_from_the_previous_fits_hyperparameters(monkeypatch):
    starts, fitted = record_fits(monkeypatch, surrogate)
    run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 7)
    assert len(starts) == 3
    assert all(start.equal(previous) for start, previous in zip(starts[1:], fitted))


def truth(cand):
    return -10 * (cand.params["x"] - 0.3) ** 2


def test_recommendations_on_a_noisy_objective_are_truly_better_than_the_luckiest_draws():
    raw, recommended = [], []
    for noise_seed in range(8):
        opt = make_optimizer("bo", LINE, seed=0, n_init=30, **FAST)
        rng = np.random.default_rng(noise_seed)
        for cand in [opt.ask() for _ in range(30)]:
            opt.tell(cand.id, truth(cand) + 0.2 * rng.standard_normal())
        raw.append(truth(opt.best().candidate))
        recommended.append(truth(opt.recommend().candidate))
    assert np.mean(recommended) > np.mean(raw) and min(recommended) > min(raw)


def test_recommendation_is_the_best_trial_on_a_deterministic_objective_up_to_the_noise_floor():
    opt = run(make_optimizer("bo", LINE, seed=1, n_init=4, **FAST), 10)
    _, y = opt.completed()
    assert opt.best().score - opt.recommend().score <= 1e-6 * (y.max() - y.min())  # the floor: 1e-6 of the spread


def test_past_large_n_points_fits_come_at_a_fifth_of_growth_at_least():
    opt = make_optimizer("bo", LINE, large_n=10, **FAST)
    assert sorted({opt.fit_size(n) for n in range(2, 31)}) == [*range(2, 11), 12, 15, 18, 22, 27]


def test_a_full_window_holds_at_most_gp_points_values_and_pending_points_and_searches_from_fewer_starts(monkeypatch):
    seen = {}
    conditioned = bo.GPBO._conditioned

    def spy_conditioned(self, x, y, hyperparameters):
        seen.setdefault("sizes", []).append(len(y))
        return conditioned(self, x, y, hyperparameters)

    def spy_starts(self, acq, x, y, rng, n_raw, restarts):
        seen["raw"], seen["restarts"] = n_raw, restarts
        return starts(self, acq, x, y, rng, n_raw, restarts)

    starts = bo.GPBO._starts
    monkeypatch.setattr(bo.GPBO, "_conditioned", spy_conditioned)
    monkeypatch.setattr(bo.GPBO, "_starts", spy_starts)
    opt = run(make_optimizer("bo", LINE, seed=0, num_restarts=4, raw_samples=64, gp_points=8, large_n=12,
                             large_restarts=2, large_raw_samples=16), 12)
    pending = [opt.ask() for _ in range(12)]
    assert len(pending) == 12 and max(seen["sizes"]) <= 16  # 8 values + 8 believed pending points
    assert (seen["raw"], seen["restarts"]) == (16, 2)


def gp_scores_after_pruning(mode):
    """Successes 1, 3, 2 (median 2), then a trial pruned at 10 and one pruned at 0.5: the GP's scores."""
    opt = make_optimizer("bo", LINE, n_init=5, **({} if mode is None else {"pruned": mode}), **FAST)
    for value in (1.0, 3.0, 2.0):
        opt.tell(opt.ask().id, value)
    for value in (10.0, 0.5):
        opt.tell_pruned(opt.ask().id, value, step=1)
    return opt._gp_data()[1].tolist()


def test_exclude_leaves_pruned_trials_out_of_the_gp():
    assert gp_scores_after_pruning("exclude") == [1.0, 3.0, 2.0]


def test_by_default_the_gp_gets_pruned_trials_at_most_at_the_median_of_the_successes():
    assert gp_scores_after_pruning(None) == [1.0, 3.0, 2.0, 2.0, 0.5]


def test_without_a_time_limit_every_gp_ask_is_a_full_one():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 10)
    assert all("effort" not in t.candidate.meta for t in opt.trials.values())


def test_once_a_full_ask_took_longer_than_afforded_asks_are_quick_and_keep_the_fit_until_the_data_grew():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 6)  # 2 full GP asks
    opt.time_per_ask, fits = 1e-9, opt.n_fits
    run(opt, 4)  # asks on 6, 7, 8, 9 successes after a fit on 5: refits on 6 (5 x 1.2) and 8 (> 6 x 1.2)
    quick = [t.candidate.meta.get("effort") for t in opt.trials.values()][6:]
    assert quick == ["quick"] * 4 and opt.n_fits == fits + 2 and opt._fit[0] == 8


def test_after_a_run_of_quick_asks_that_leave_room_a_full_ask_measures_the_full_cost_again(monkeypatch):
    monkeypatch.setattr(bo, "QUICK_RUN", 3)
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 5)
    opt.time_per_ask, opt._full_seconds = 5.0, 10.0  # one slow full ask; quick ones take milliseconds
    efforts = [t.candidate.meta.get("effort") for t in run(opt, 6).trials.values()][5:]
    assert efforts == ["quick", "quick", "quick", None, None, None]


def test_no_full_ask_is_tried_while_quick_asks_leave_no_room_for_one(monkeypatch):
    monkeypatch.setattr(bo, "QUICK_RUN", 3)
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 5)
    opt.time_per_ask = 1e-9
    efforts = [t.candidate.meta.get("effort") for t in run(opt, 6).trials.values()][5:]
    assert efforts == ["quick"] * 6


def test_asks_are_full_again_when_the_time_afforded_exceeds_the_last_full_ask():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 5)
    opt.time_per_ask = 1e-9
    assert opt.ask().meta.get("effort") == "quick"
    opt.time_per_ask = 1e9
    assert "effort" not in opt.ask().meta


def test_an_ask_after_prepare_proposes_the_same_point_without_fitting_again():
    prepared, plain = (run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 6) for _ in range(2))
    prepared.prepare()
    fits = prepared.n_fits
    assert np.array_equal(prepared.ask().u, plain.ask().u) and prepared.n_fits == fits


def test_once_asks_are_quick_prepare_takes_the_refits_off_the_asks():
    opt = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 6)  # 2 full GP asks, the latest fit on 5
    opt.time_per_ask = 1e-9
    opt.prepare()  # the fit on 5 is up to date: nothing to fit
    fits = opt.n_fits
    run(opt, 2)  # quick asks on 6 and 7 successes: 6 >= 5 x 1.2 is due, but below 5 x 1.4 the ask leaves it
    assert opt.n_fits == fits
    opt.prepare()
    assert opt.n_fits == fits + 1 and opt._fit[0] == 8


def test_the_acquisition_searchs_harmless_numerical_warnings_stay_silent(monkeypatch):
    real_search = bo.optimize_acqf

    def noisy_search(*args, **kwargs):
        warnings.warn("Optimization failed within `scipy.optimize.minimize` with status 2", RuntimeWarning)
        warnings.warn("Negative variance values detected. Rounding them up to 1e-10.", NumericalWarning)
        return real_search(*args, **kwargs)

    opt = run(make_optimizer("bo", LINE, seed=0, n_init=3, **FAST), 3)
    monkeypatch.setattr(bo, "optimize_acqf", noisy_search)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert opt.ask().meta["phase"] == "gp"


def crash_right_of(limit):
    """A parabola peaking at 0.3 whose trials crash right of `limit` (NaN: told as failed)."""
    return lambda cand: np.nan if cand.params["x"] > limit else parabola(cand)


def crashed(opt):
    return sum(t.state.value == "failed" for t in opt.trials.values())


def test_gp_asks_avoid_where_trials_crashed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "trial ... returned nan: recorded as failed"
        avoiding = run(make_optimizer("bo", LINE, seed=0, n_init=4, **FAST), 16, crash_right_of(0.4))
        blind = run(make_optimizer("bo", LINE, seed=0, n_init=4, avoid_failures=False, **FAST), 16,
                    crash_right_of(0.4))
    assert crashed(avoiding) * 2 < crashed(blind)  # 6 against 14 of 16: without the model the GP goes back there


def test_without_failures_the_failure_model_changes_no_ask(monkeypatch):
    blind = run(make_optimizer("bo", LINE, seed=1, n_init=3, avoid_failures=False, **FAST), 8)
    monkeypatch.setattr(bo.FailureModel, "fit", lambda *a, **k: pytest.fail("fitted without failures"))
    avoiding = run(make_optimizer("bo", LINE, seed=1, n_init=3, **FAST), 8)
    assert [t.candidate.u.tolist() for t in avoiding.trials.values()] == [
        t.candidate.u.tolist() for t in blind.trials.values()]


def test_past_large_n_the_failure_model_keeps_the_latest_failures_and_fills_up_with_the_latest_successes(monkeypatch):
    opt = make_optimizer("bo", LINE, seed=0, n_init=2, large_n=8, gp_points=8, **FAST)
    fits = []
    monkeypatch.setattr(bo.FailureModel, "fit", lambda x, failed, *a, **k: fits.append((x, failed)))
    for k in range(20):
        cand = opt.ask()
        if k % 4 == 0:
            opt.tell_failure(cand.id, "crashed")
        else:
            opt.tell(cand.id, parabola(cand))
    x, failed = fits[-1]
    assert len(x) == 8 and failed.sum() == 4
    latest = opt.trials[max(opt.trials) - 1]  # told before the last ask, which fitted the model
    assert latest.state.value == "ok" and x[-1].tolist() == latest.candidate.u.tolist()
