"""A Gaussian-process surrogate on unit-cube inputs that stays cheap as data arrive one point at a time.

Hyperparameters are fitted by marginal likelihood (BoTorch SingleTaskGP, double precision, outputs
standardized) only on a schedule: first when `min_points` points exist, then whenever the data have grown
by `refit_growth` since the last fit. In between, new points are conditioned on with the hyperparameters
held fixed, which costs one Cholesky factorization instead of an optimization. Refitting for every new
point made each step of the original research code take seconds.

Results depend only on the data (fits start from the same initial values and any random restarts draw
from a generator seeded by `seed` and the data size), so a run replayed from its log rebuilds the same
surrogate.

Example:
    >>> import numpy as np
    >>> gp = GPSurrogate(dim=1)
    >>> u = np.linspace(0, 1, 6)[:, None]
    >>> gp.update(u, np.sin(6 * u[:, 0]))
    >>> mean, sd = gp.predict(np.array([[0.5]]))
    >>> bool(abs(mean[0] - np.sin(3.0)) < 0.1 and sd[0] < 0.1)
    True
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from botorch.exceptions import ModelFittingError as BotorchFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood

#: Errors of fitting or factorizing a GP that mean "no usable model", as opposed to a bug in the caller.
_NUMERICAL_ERRORS = (BotorchFittingError, RuntimeError, ValueError)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Kernel matrices of a few hundred points factorize faster on one thread, and the master shares its
    node with workers: on a loaded machine, torch's default thread pool made each fit 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ModelFittingError(RuntimeError):
    """The GP could not be fitted or evaluated on these data; callers fall back to a model-free step."""


class GPSurrogate:
    """GP regression of scores on unit-cube points. `predict` returns mean and standard deviation of the
    latent function in the units of the scores given to `update`.

    Options: `min_points` before any model exists, `refit_growth` (relative data growth that triggers a new
    hyperparameter fit), `noise_floor` (lower bound of the noise variance in standardized units; objectives
    here are often deterministic), `seed` for fitting restarts.
    """

    def __init__(self, dim: int, *, min_points: int = 2, refit_growth: float = 0.2, noise_floor: float = 1e-6,
                 seed: int = 0) -> None:
        if min_points < 2:
            raise ValueError(f"the surrogate needs min_points >= 2, got {min_points}")
        if refit_growth < 0:
            raise ValueError(f"refit_growth must be >= 0, got {refit_growth}")
        self.dim = int(dim)
        self.min_points = int(min_points)
        self.refit_growth = float(refit_growth)
        self.noise_floor = float(noise_floor)
        self.seed = int(seed)
        self.n_fits = 0
        self._n = 0
        self._n_fitted = 0
        self._gp: SingleTaskGP | None = None  # holds the fitted hyperparameters
        self._x: torch.Tensor | None = None
        self._chol: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None
        self._y_mean, self._y_std = 0.0, 1.0

    @property
    def n(self) -> int:
        """Number of points the model is conditioned on."""
        return self._n

    @property
    def ready(self) -> bool:
        return self._chol is not None

    def update(self, u: np.ndarray, y: np.ndarray) -> None:
        """Condition on all data so far: u (n, d) in [0, 1]^d, y (n,) finite; refits on schedule.

        Raises ModelFittingError when no model can be built (the previous one is then dropped).
        """
        u = np.asarray(u, dtype=float).reshape(-1, self.dim)
        y = np.asarray(y, dtype=float).reshape(-1)
        if len(u) != len(y):
            raise ValueError(f"update got {len(u)} points but {len(y)} values")
        if not np.all(np.isfinite(y)):
            raise ValueError("update got non-finite values; failed trials must stay out of the surrogate")
        self._n, self._chol = len(y), None
        if self._n < self.min_points:
            return
        self._y_mean = float(y.mean())
        self._y_std = float(y.std(ddof=1)) or 1.0
        x = torch.as_tensor(u, dtype=torch.float64)
        z = torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float64)
        try:
            with _one_thread():
                if self._gp is None or self._n >= self._n_fitted * (1 + self.refit_growth):
                    self._fit(x, z)
                self._condition(x, z)
        except _NUMERICAL_ERRORS as exc:
            raise ModelFittingError(f"GP on {self._n} points: {exc}") from exc

    def predict(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (each shape (m,)) at unit points u (m, d)."""
        if self._chol is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        xs = torch.as_tensor(np.asarray(u, dtype=float).reshape(-1, self.dim), dtype=torch.float64)
        kernel = self._gp.covar_module
        with torch.no_grad(), _one_thread():
            cross = kernel(xs, self._x).to_dense()  # (m, n)
            mean = self._gp.mean_module(xs) + cross @ self._alpha
            v = torch.linalg.solve_triangular(self._chol, cross.T, upper=False)
            var = (kernel(xs, diag=True) - (v * v).sum(0)).clamp_min(0.0)
        return (self._y_mean + self._y_std * mean.numpy(), self._y_std * np.sqrt(var.numpy()))

    def _fit(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Fit hyperparameters by marginal likelihood; if that fails, keep an earlier fit when there is one."""
        likelihood = GaussianLikelihood(noise_constraint=GreaterThan(self.noise_floor))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = SingleTaskGP(x, z.unsqueeze(-1), likelihood=likelihood, outcome_transform=None).to(torch.float64)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed * 1_000_003 + self._n)
                try:
                    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
                except _NUMERICAL_ERRORS:
                    if self._gp is None:
                        raise
                    return
        gp.eval()
        self._gp, self._n_fitted = gp, self._n
        self.n_fits += 1

    def _condition(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """With the hyperparameters fixed: one Cholesky factorization of the kernel matrix of all data."""
        with torch.no_grad():
            noise = self._gp.likelihood.noise.reshape(())
            k = self._gp.covar_module(x).to_dense() + noise * torch.eye(len(x), dtype=torch.float64)
            chol, info = torch.linalg.cholesky_ex(k)
            if info.item() != 0:
                raise ModelFittingError(f"kernel matrix of {len(x)} points is not positive definite")
            resid = (z - self._gp.mean_module(x)).unsqueeze(-1)
            self._alpha = torch.cholesky_solve(resid, chol).squeeze(-1)
        self._x, self._chol = x, chol
