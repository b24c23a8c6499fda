"""GP surrogate: predictions in original units, refit schedule, cheap conditioning, named failures."""

import numpy as np
import pytest
from botorch.exceptions import ModelFittingError as BotorchFittingError
from linear_operator.utils.errors import NotPSDError
import torch

import pbo.surrogate as surrogate
from pbo.surrogate import GPSurrogate, ModelFittingError, half_rank_warp, unwarp, window
from gp_support import record_fits


def data(n, seed=0):
    u = np.random.default_rng(seed).random((n, 2))
    return u, np.sin(5 * u[:, 0]) + u[:, 1] ** 2


def test_interpolates_data_and_is_uncertain_far_from_it():
    u, y = data(30)
    gp = GPSurrogate(dim=2)
    gp.update(u, y)
    mean, sd = gp.predict(u[:5])
    assert np.allclose(mean, y[:5], atol=1e-2) and np.all(sd < 0.05)
    near = GPSurrogate(dim=2)
    near.update(u[u[:, 0] < 0.5], y[u[:, 0] < 0.5])
    _, sd_near = near.predict(np.array([[0.25, 0.5]]))
    _, sd_far = near.predict(np.array([[0.95, 0.5]]))
    assert sd_far[0] > 5 * sd_near[0]


def test_predictions_are_in_the_units_of_the_data():
    u, y = data(20)
    a, b = GPSurrogate(dim=2), GPSurrogate(dim=2)
    a.update(u, y)
    b.update(u, 1000.0 * y + 7.0)
    test = np.random.default_rng(1).random((4, 2))
    (ma, sa), (mb, sb) = a.predict(test), b.predict(test)
    assert np.allclose(mb, 1000.0 * ma + 7.0, rtol=1e-4)
    assert np.allclose(sb, 1000.0 * sa, rtol=1e-4)


def test_hyperparameters_are_refitted_only_when_data_grew_enough():
    u, y = data(40)
    gp = GPSurrogate(dim=2, refit_growth=0.5)
    fits = []
    for n in range(10, 41):
        gp.update(u[:n], y[:n])
        fits.append(gp.n_fits)
    # fitted at 10, 15, 23 and 35 points (each time the data grew by 50%), conditioned in between
    assert [10 + fits.index(k) for k in (1, 2, 3, 4)] == [10, 15, 23, 35] and fits[-1] == 4


def test_new_points_are_conditioned_on_between_refits():
    u, y = data(21)
    gp = GPSurrogate(dim=2, refit_growth=1.0)
    gp.update(u[:20], y[:20])
    before = gp.predict(u[20:])[0]
    gp.update(u, y)
    after, sd = gp.predict(u[20:])
    assert gp.n_fits == 1
    assert abs(after[0] - y[20]) < abs(before[0] - y[20]) and abs(after[0] - y[20]) < 1e-2 and sd[0] < 0.05


def test_same_data_gives_the_same_model():
    u, y = data(25)
    test = np.random.default_rng(2).random((5, 2))
    preds = []
    for _ in range(2):
        gp = GPSurrogate(dim=2)
        for n in range(2, 26):
            gp.update(u[:n], y[:n])
        preds.append(gp.predict(test))
    assert np.array_equal(preds[0][0], preds[1][0]) and np.array_equal(preds[0][1], preds[1][1])


def test_no_model_before_min_points_is_a_named_error():
    gp = GPSurrogate(dim=2, min_points=3)
    gp.update(*data(2))
    assert not gp.ready
    with pytest.raises(ModelFittingError, match="needs 3"):
        gp.predict(np.array([[0.5, 0.5]]))


def test_failed_first_fit_raises_a_named_error(monkeypatch):
    def diverge(mll, **options):
        raise BotorchFittingError("line search failed")

    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", diverge)
    gp = GPSurrogate(dim=2)
    with pytest.raises(ModelFittingError, match="line search failed"):
        gp.update(*data(10))
    with pytest.raises(ModelFittingError):
        gp.predict(np.array([[0.5, 0.5]]))


def test_failed_refit_keeps_the_earlier_hyperparameters(monkeypatch):
    u, y = data(30)
    gp = GPSurrogate(dim=2)
    gp.update(u[:10], y[:10])
    monkeypatch.setattr(surrogate, "fit_gpytorch_mll", lambda mll, **options: (_ for _ in ()).throw(NotPSDError("nan")))
    gp.update(u, y)
    assert gp.n_fits == 1 and gp.n == 30
    assert np.allclose(gp.predict(u[25:])[0], y[25:], atol=1e-2)


def test_a_bug_in_the_fit_raises_instead_of_dropping_the_model(monkeypatch):
    monkeypatch.setattr(surrogate, "fit_gpytorch_mll",
                        lambda mll, **options: (_ for _ in ()).throw(TypeError("bad call")))
    with pytest.raises(TypeError, match="bad call"):
        GPSurrogate(dim=2).update(*data(10))


def test_failed_values_are_refused():
    u, y = data(5)
    y[2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        GPSurrogate(dim=2).update(u, y)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown kernel 'periodic'"):
        GPSurrogate(dim=2, kernel="periodic")


def test_both_kernels_fit_smooth_data():
    u, y = data(30)
    for kernel in ("matern", "rbf"):
        gp = GPSurrogate(dim=2, kernel=kernel)
        gp.update(u[:25], y[:25])
        assert np.allclose(gp.predict(u[25:])[0], y[25:], atol=0.1)


def test_extending_the_data_gives_the_model_of_a_full_factorization():
    u, y = data(40)
    grown = GPSurrogate(dim=2, refit_growth=10.0)
    grown.update(u[:20], y[:20])
    for n in range(21, 41):
        grown.update(u[:n], y[:n])  # one new row at a time, same hyperparameters
    fresh = GPSurrogate(dim=2, refit_growth=10.0)
    fresh.update(u[:20], y[:20])
    fresh.update(u[::-1], y[::-1])  # reordered: no shared prefix, so factorized from scratch
    test = np.random.default_rng(4).random((6, 2))
    assert grown.n_fits == fresh.n_fits == 1
    for a, b in zip(grown.predict(test), fresh.predict(test)):
        assert np.allclose(a, b, rtol=1e-6, atol=1e-9)


def test_hyperparameters_are_fitted_on_at_most_max_fit_points():
    u, y = data(60)
    gp = GPSurrogate(dim=2, max_fit_points=20)
    gp.update(u, y)
    assert np.allclose(gp.predict(u[:5])[0], y[:5], atol=2e-2)
    with pytest.raises(ValueError, match="max_fit_points"):
        GPSurrogate(dim=2, min_points=5, max_fit_points=3)


def test_prior_is_the_prediction_far_from_all_data():
    gp = GPSurrogate(dim=2)
    u = np.random.default_rng(0).random((20, 2))
    gp.update(u, np.sin(5 * u[:, 0]))
    mean, sd = gp.predict(np.array([[50.0, 50.0]]))
    assert gp.prior() == pytest.approx((mean[0], sd[0]))


def test_leave_one_out_is_the_prediction_from_the_other_points():
    u, y = data(15)
    gp = GPSurrogate(dim=2)
    gp.update(u, y)
    residuals, sds = gp.loo()
    # condition a copy with the same hyperparameters on all points but one
    i = 4
    rest = GPSurrogate(dim=2, refit_growth=1e9)
    rest._gp, rest._n_fitted = gp._gp, 15
    rest._y_mean, rest._y_std = gp._y_mean, gp._y_std
    keep = np.arange(15) != i
    z = torch.as_tensor((y[keep] - gp._y_mean) / gp._y_std, dtype=torch.float64)
    rest._condition(torch.as_tensor(u[keep], dtype=torch.float64), z)
    mean, sd = rest.predict(u[i:i + 1])
    noise = float(gp._gp.likelihood.noise) * gp._y_std ** 2  # the prediction is of an observation
    assert residuals[i] == pytest.approx(y[i] - mean[0], rel=1e-6)
    assert sds[i] == pytest.approx(np.sqrt(sd[0] ** 2 + noise), rel=1e-6)


def test_pending_points_shrink_the_sd_near_them_and_keep_the_mean():
    u, y = data(20)
    gp = GPSurrogate(dim=2)
    gp.update(u, y)
    near, far = np.array([[0.31, 0.3]]), np.array([[0.9, 0.05]])
    pending = np.array([[0.3, 0.3]])
    (mean_near, sd_near), (mean_near_p, sd_near_p) = gp.predict(near), gp.predict(near, pending=pending)
    (_, sd_far), (_, sd_far_p) = gp.predict(far), gp.predict(far, pending=pending)
    assert np.allclose(mean_near, mean_near_p)
    assert sd_near_p[0] < 0.5 * sd_near[0]
    assert sd_far_p[0] > 0.9 * sd_far[0]


def test_window_keeps_the_best_half_and_the_latest_in_their_order():
    y = np.array([5.0, 0.0, 1.0, 9.0, 2.0, 3.0, 4.0, 0.5])
    assert window(y, 4).tolist() == [0, 3, 6, 7]  # best two (9, 5), then the two latest
    assert window(y, 20).tolist() == list(range(8))


def test_refits_follow_the_points_seen_when_a_window_keeps_the_data_size_fixed():
    rng = np.random.default_rng(0)
    u = rng.random((20, 2))
    gp = GPSurrogate(2, refit_growth=0.2)
    gp.update(u, u.sum(1), seen=100)
    gp.update(u, u.sum(1), seen=110)
    assert gp.n_fits == 1
    gp.update(u, u.sum(1), seen=120)
    assert gp.n_fits == 2


def test_a_factor_that_keeps_the_shared_leading_rows_predicts_as_a_fresh_one():
    rng = np.random.default_rng(1)
    u = rng.random((30, 3))
    y = np.sin(4 * u).sum(1)
    gp = GPSurrogate(3, refit_growth=10.0)
    gp.update(u[:25], y[:25])
    kept = np.r_[0:10, 11:30]  # a window dropped point 10 and gained five
    gp.update(u[kept], y[kept])
    fresh = GPSurrogate(3, refit_growth=10.0)
    fresh.update(u[:25], y[:25])
    fresh._factor_of = None  # same hyperparameters, factorized from scratch
    fresh.update(u[kept], y[kept])
    test = rng.random((5, 3))
    for a, b in zip(gp.predict(test), fresh.predict(test)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_half_rank_warp_keeps_the_better_half_and_the_order_of_all():
    y = np.array([3.0, -1e6, 5.0, 4.0, 0.0, 2.0, 1.0])
    warped = half_rank_warp(y)
    better = y >= np.median(y)
    assert warped[better].tolist() == y[better].tolist()
    assert np.argsort(warped).tolist() == np.argsort(y).tolist()


def test_half_rank_warp_brings_a_disaster_within_a_few_spreads_of_the_median():
    y = np.array([3.0, -1e6, 5.0, 4.0, 0.0, 2.0, 1.0])  # median 3, the better half spreads by about 1.3
    assert -3.0 < half_rank_warp(y)[1] < 0.0


def test_unwarp_maps_warped_scores_back_and_keeps_their_order_beyond_the_data():
    y = np.array([0.25, 0.25, 0.45, 0.46, 0.47, 0.48])
    warped = half_rank_warp(y)
    assert unwarp(warped, y, warped) == pytest.approx(y)
    values = np.linspace(warped.min() - 1, 1.0, 50)
    assert np.all(np.diff(unwarp(values, y, warped)) > 0)
    assert unwarp(np.array([0.9]), y, warped)[0] == pytest.approx(0.9)  # above the median: as is


@pytest.mark.parametrize("warm_start", [True, False])
def test_a_refit_starts_from_the_previous_fits_hyperparameters_unless_warm_start_is_off(monkeypatch, warm_start):
    starts, fitted = record_fits(monkeypatch, surrogate)
    gp = GPSurrogate(dim=2, refit_growth=0.5, warm_start=warm_start)
    u, y = data(20)
    gp.update(u[:10], y[:10])
    gp.update(u, y)
    assert len(starts) == 2 and starts[1].equal(fitted[0]) == warm_start
