"""The failure model: where trials crash, from the trials that did and did not (pbo.feasibility)."""

import numpy as np
import torch

from pbo.feasibility import AvoidingFailures, FailureModel


def line_model(seed=0):
    x = np.linspace(0.05, 0.95, 10)[:, None]
    return FailureModel.fit(x, x[:, 0] > 0.6, seed=seed)


def prob_ok(model, *points):
    return model.log_prob_ok(torch.tensor([[[p]] for p in points], dtype=torch.float64)).exp().numpy()


def test_points_next_to_crashes_are_likely_to_crash_and_points_next_to_finished_trials_are_not():
    near_ok, near_crash = prob_ok(line_model(), 0.2, 0.9)
    assert near_ok > 0.9 and near_crash < 0.1


def test_halfway_between_the_last_finished_trial_and_the_first_crash_either_is_likely():
    finished, halfway, crashed = prob_ok(line_model(), 0.3, 0.6, 0.7)  # trials at 0.55 and 0.65
    assert finished > 0.99 and 0.1 < halfway < 0.9 and crashed < 0.01


def test_the_fit_is_deterministic_for_its_seed():
    assert np.array_equal(prob_ok(line_model(3), 0.55, 0.62), prob_ok(line_model(3), 0.55, 0.62))


class Constant(torch.nn.Module):
    model = None

    def forward(self, X):  # noqa: N803
        return torch.zeros(X.shape[:-2], dtype=torch.float64)


def test_the_acquisition_adds_the_log_probability_of_finishing():
    model = line_model()
    X = torch.tensor([[[0.2]], [[0.9]]], dtype=torch.float64)
    values = AvoidingFailures(Constant(), model)(X)
    assert torch.allclose(values, model.log_prob_ok(X))
