"""A conditioned GP frozen for the acquisition search: its posterior at single points in a few torch operations.

Why: an acquisition search calls the model's posterior tens of times per ask, on a GP whose data and
hyperparameters do not change meanwhile. gpytorch builds each posterior through lazy kernel tensors, caches
and shape checks that cost about 5 ms per call whatever the size of the problem, which made up most of GP-BO's
quick asks (11 calls, about 100 ms at 70 points) and so capped how fast the master can answer 8 workers on short
trials. `FrozenGP` factorizes the kernel matrix once and gives the same mean and variance (to rounding) by
one kernel row, one product and one triangular solve per call, a fraction of a millisecond.

It serves BoTorch's analytic acquisitions (LogExpectedImprovement: one point per batch, `posterior().mean` and
`.variance`) on the models `pbo.surrogate.single_task_gp` builds: a constant mean, a Matern-5/2 kernel with
ARD lengthscales and an output scale, or an RBF kernel with ARD lengthscales, Gaussian noise (fitted or given
per point), and optionally a `Standardize` outcome transform, no input transform. Anything else is refused
when the model is frozen, so a new model kind cannot silently get another posterior.

Example:
    >>> import torch
    >>> from botorch.models.transforms import Standardize
    >>> from pbo.surrogate import single_task_gp
    >>> x = torch.rand(20, 2, dtype=torch.float64)
    >>> model = single_task_gp(x, torch.sin(6 * x).sum(-1), outcome_transform=Standardize(m=1)).eval()
    >>> test = torch.rand(4, 1, 2, dtype=torch.float64)
    >>> exact, frozen = model.posterior(test), FrozenGP(model).posterior(test)
    >>> bool(torch.allclose(exact.mean, frozen.mean) and torch.allclose(exact.variance, frozen.variance))
    True
"""

from __future__ import annotations

import math

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms import Standardize
from botorch.posteriors import Posterior
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.means import ConstantMean
from linear_operator.utils.cholesky import psd_safe_cholesky

#: Smallest posterior variance returned (gpytorch clamps at the same level).
MIN_VARIANCE = 1e-10


class MeanVariance(Posterior):
    """A posterior known by its marginal mean and variance, shaped (..., q, 1) as BoTorch's single-output ones."""

    def __init__(self, mean: torch.Tensor, variance: torch.Tensor) -> None:
        self._mean, self._variance = mean, variance

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def variance(self) -> torch.Tensor:
        return self._variance

    @property
    def device(self) -> torch.device:
        return self._mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self._mean.dtype

    def rsample(self, sample_shape: torch.Size | None = None) -> torch.Tensor:
        raise NotImplementedError("FrozenGP serves analytic acquisitions only (no samples)")


class FrozenGP(Model):
    """The posterior of a conditioned `SingleTaskGP` (see the module docstring), without observation noise."""

    num_outputs = 1

    def __init__(self, model: SingleTaskGP) -> None:
        super().__init__()
        covar, mean = model.covar_module, model.mean_module
        self.outputscale = torch.ones((), dtype=torch.float64)
        if isinstance(covar, ScaleKernel):
            self.outputscale = covar.outputscale.detach().reshape(())
            covar = covar.base_kernel
        if isinstance(covar, MaternKernel) and covar.nu == 2.5:
            self.kind = "matern"
        elif isinstance(covar, RBFKernel):
            self.kind = "rbf"
        else:
            raise TypeError(f"FrozenGP: unsupported kernel {type(covar).__name__}")
        if not isinstance(mean, ConstantMean) or getattr(model, "input_transform", None) is not None:
            raise TypeError("FrozenGP: needs a constant mean and no input transform")
        transform = getattr(model, "outcome_transform", None)
        if transform is not None and not isinstance(transform, Standardize):
            raise TypeError(f"FrozenGP: unsupported outcome transform {type(transform).__name__}")
        with torch.no_grad():
            self.lengthscale = covar.lengthscale.detach().reshape(-1)
            self.x = model.train_inputs[0].detach() / self.lengthscale
            self.constant = mean.constant.detach().reshape(())
            y = model.train_targets.detach()
            noise = model.likelihood.noise.detach().reshape(-1).expand(len(y))
            self.chol = psd_safe_cholesky(self._kernel(self.x, self.x) + torch.diag(noise))
            self.alpha = torch.cholesky_solve((y - self.constant).unsqueeze(-1), self.chol).squeeze(-1)
        self.shift, self.scale = (torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64))
        if transform is not None:
            self.shift, self.scale = transform.means.detach().reshape(()), transform.stdvs.detach().reshape(())

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """k(a, b) for inputs already divided by the lengthscales: shapes (..., p, d), (n, d) -> (..., p, n)."""
        squared = ((a.unsqueeze(-2) - b) ** 2).sum(-1)
        if self.kind == "rbf":
            return self.outputscale * torch.exp(-0.5 * squared)
        distance = math.sqrt(5.0) * squared.clamp_min(1e-30).sqrt()
        return self.outputscale * (1.0 + distance + distance ** 2 / 3.0) * torch.exp(-distance)

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False,  # noqa: N803 (BoTorch's name)
                  posterior_transform=None, **kwargs) -> MeanVariance:
        if output_indices not in (None, [0]) or observation_noise is not False or posterior_transform is not None:
            raise NotImplementedError("FrozenGP: the latent posterior of its single output only")
        cross = self._kernel(X / self.lengthscale, self.x)  # (..., q, n)
        mean = self.constant + cross @ self.alpha
        # one solve with every point as a right-hand side (a batch of solves costs one call each)
        solved = torch.linalg.solve_triangular(self.chol, cross.reshape(-1, len(self.x)).T, upper=False)
        variance = (self.outputscale - (solved ** 2).sum(0).reshape(mean.shape)).clamp_min(MIN_VARIANCE)
        return MeanVariance((mean * self.scale + self.shift).unsqueeze(-1),
                            (variance * self.scale ** 2).unsqueeze(-1))
