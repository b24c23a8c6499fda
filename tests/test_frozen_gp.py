"""FrozenGP: the posterior of a conditioned SingleTaskGP, computed once-factorized, equals gpytorch's."""

import pytest
import torch
from botorch.acquisition import LogExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from gpytorch.kernels import PeriodicKernel

from pbo.frozen_gp import FrozenGP
from pbo.surrogate import fit_hyperparameters, single_task_gp

X = torch.rand(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Y = torch.sin(5 * X).sum(-1) + 0.1 * X[:, 0]


def fitted(kernel="matern", fixed_noise=None, outcome_transform="standardize"):
    transform = Standardize(m=1) if outcome_transform == "standardize" else None
    model = single_task_gp(X, Y, kernel=kernel, fixed_noise=fixed_noise, outcome_transform=transform)
    fit_hyperparameters(model, seed=0)
    return model.eval()


MODELS = {"matern": lambda: fitted(), "rbf": lambda: fitted(kernel="rbf"),
          "given noise": lambda: fitted(fixed_noise=torch.full((40, 1), 1e-3, dtype=torch.float64)),
          "raw outputs": lambda: fitted(outcome_transform=None)}


@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_mean_and_variance_equal_the_models_at_new_and_training_points(build):
    model = build()
    points = torch.cat([torch.rand(30, 1, 3, dtype=torch.float64), X[:5].unsqueeze(1)])
    exact, frozen = model.posterior(points), FrozenGP(model).posterior(points)
    assert frozen.mean.shape == exact.mean.shape == (35, 1, 1)
    assert torch.allclose(frozen.mean, exact.mean, rtol=1e-9, atol=1e-12)
    assert torch.allclose(frozen.variance, exact.variance, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_log_expected_improvement_and_its_gradient_equal_the_models(build):
    model = build()
    with torch.no_grad():
        best = float(model.posterior(X).mean.max())
    x = torch.rand(6, 1, 3, dtype=torch.float64, requires_grad=True)
    values = [LogExpectedImprovement(m, best_f=best)(x) for m in (model, FrozenGP(model))]
    grads = [torch.autograd.grad(v.sum(), x)[0] for v in values]
    assert torch.allclose(values[0], values[1], rtol=1e-9, atol=1e-10)
    assert torch.allclose(grads[0], grads[1], rtol=1e-7, atol=1e-9)


def test_a_model_it_does_not_know_is_refused_when_frozen():
    periodic = SingleTaskGP(X, Y.unsqueeze(-1), covar_module=PeriodicKernel()).eval()
    with pytest.raises(TypeError, match="unsupported kernel PeriodicKernel"):
        FrozenGP(periodic)
    scaled = SingleTaskGP(X, Y.unsqueeze(-1), input_transform=Normalize(d=3)).eval()
    with pytest.raises(TypeError, match="no input transform"):
        FrozenGP(scaled)


def test_only_the_latent_posterior_is_served():
    with pytest.raises(NotImplementedError, match="latent posterior"):
        FrozenGP(fitted()).posterior(X[:2].unsqueeze(1), observation_noise=True)
