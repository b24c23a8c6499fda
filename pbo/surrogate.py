"""A Gaussian-process surrogate on unit-cube inputs that stays cheap as data arrive one point at a time.

Hyperparameters are fitted by marginal likelihood (BoTorch SingleTaskGP, double precision, outputs
standardized) only on a schedule: first when `min_points` points exist, then whenever the data have grown
by `refit_growth` since the last fit. In between, new points are conditioned on with the hyperparameters
held fixed, which costs one Cholesky factorization instead of an optimization (when points were only
appended, just the factor's new rows). Refitting for every new point made each step of the original
research code take seconds.

Each fit starts from the previous fit's hyperparameters (the first from fixed initial values), with a looser
tolerance (WARM_FTOL), and any random restarts draw from a generator seeded by `seed` and the data size:
results depend only on the data.

Example:
    >>> import numpy as np
    >>> gp = GPSurrogate(dim=1)
    >>> u = np.linspace(0, 1, 10)[:, None]
    >>> gp.update(u, np.sin(6 * u[:, 0]))
    >>> mean, sd = gp.predict(np.array([[0.5]]))
    >>> bool(abs(mean[0] - np.sin(3.0)) < 0.1 and sd[0] < 0.1)
    True
"""

from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from scipy import stats
from botorch.exceptions.errors import CandidateGenerationError, OptimizationGradientError
from botorch.exceptions import ModelFittingError as BotorchFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from botorch.models.utils.gpytorch_modules import (get_covar_module_with_dim_scaled_prior,
                                                   get_matern_kernel_with_gamma_prior)
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from linear_operator.utils.errors import NanError, NotPSDError

#: Errors of fitting, factorizing or searching a GP that mean "no usable model on these data", as opposed to a
#: bug, which must raise.
NUMERICAL_ERRORS = (BotorchFittingError, CandidateGenerationError, OptimizationGradientError, NotPSDError,
                    NanError, torch.linalg.LinAlgError)

#: Relative tolerance on the marginal likelihood of a fit that starts from the previous fit's values: it
#: converges in a few steps to the same likelihood (to 4 digits) as the default tolerance, 3-5x faster
#: (about 0.1 s instead of 0.3-0.5 s on 500 points in 6-D).
WARM_FTOL = 1e-6


@contextmanager
def one_thread() -> Iterator[None]:
    """Kernel matrices of a few hundred points factorize faster on one thread, and the master shares its
    node with workers: on a loaded machine, torch's default thread pool made each fit 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


KERNELS = {
    "matern": lambda dim: get_matern_kernel_with_gamma_prior(ard_num_dims=dim),
    "rbf": lambda dim: get_covar_module_with_dim_scaled_prior(ard_num_dims=dim),
}


#: Prior on the noise variance in standardized units (Optuna's GPSampler uses the same): mean 0.037, most mass
#: near 0, so a deterministic objective is fitted as nearly noise-free while a noisy one (lm-eval scores)
#: still gets its noise from the data.
NOISE_PRIOR = (1.1, 30.0)


def single_task_gp(x: torch.Tensor, y: torch.Tensor, *, kernel: str = "matern", noise_floor: float = 1e-6,
                   noise_prior: bool = True, fixed_noise: torch.Tensor | None = None,
                   outcome_transform=None) -> SingleTaskGP:
    """The GP both model-based optimizers build: inputs in the unit cube, float64, a kernel of KERNELS.

    `fixed_noise` (one variance per point) holds the noise as given; otherwise it is a hyperparameter kept
    above `noise_floor` (deterministic objectives need a floor far below BoTorch's 1e-4, or the model cannot
    resolve improvements smaller than about 1% of the values' spread), with NOISE_PRIOR when `noise_prior`.
    """
    likelihood = None
    if fixed_noise is None:
        likelihood = GaussianLikelihood(noise_constraint=GreaterThan(noise_floor),
                                        noise_prior=GammaPrior(*NOISE_PRIOR) if noise_prior else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SingleTaskGP(x, y.reshape(-1, 1), fixed_noise, likelihood=likelihood,
                            covar_module=KERNELS[kernel](x.shape[-1]),
                            outcome_transform=outcome_transform).to(torch.float64)


@functools.cache
def warm_up() -> None:
    """Fit a throwaway GP, once per process: the first fit in a process pays about half a second of one-time
    setup in torch and gpytorch (the same fit again takes a sixth of that). A caller with time to spare before
    its first real fit (an asker thread before the first results) pays it then; no state but torch's is touched."""
    x = torch.linspace(0, 1, 4, dtype=torch.float64).unsqueeze(-1)
    with one_thread():
        fit_hyperparameters(single_task_gp(x, torch.sin(6 * x).squeeze(-1), outcome_transform=Standardize(m=1)), 0)


def fit_hyperparameters(model: SingleTaskGP, seed: int, start: dict[str, torch.Tensor] | None = None) -> None:
    """Fit `model`'s hyperparameters by marginal likelihood, silently and seeded by `seed` without touching torch's
    global random state: from `start` (an earlier fit's state dict) with the looser WARM_FTOL when given, else
    from the model's initial values."""
    options = None
    if start is not None:
        model.load_state_dict(start, strict=False)
        options = {"options": {"ftol": WARM_FTOL}}
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs=options)


def window(y: np.ndarray, size: int) -> np.ndarray:
    """Indices (ascending, so in the order given) of at most `size` points a GP keeps of scores `y` (to maximize):
    the best half of `size` and the most recent of the rest. An exact GP's cost grows as n^3 (its fit, the
    leave-one-out terms) and n^2 per prediction; at thousands of points these, not the trials, set the pace,
    while the points that decide where to look next are the best ones and those of the region being refined
    now (the latest)."""
    y = np.asarray(y, dtype=float)
    if len(y) <= size:
        return np.arange(len(y))
    best = np.argsort(-y, kind="stable")[: size // 2]
    rest = np.setdiff1d(np.arange(len(y)), best)[::-1][: size - len(best)]
    return np.sort(np.concatenate([best, rest]))


def half_rank_warp(y: np.ndarray) -> np.ndarray:
    """Scores to maximize with their worse half replaced by Gaussian quantiles of their rank, the better half
    as is (the half-rank output warping of Google Vizier's GP bandit, Song et al. 2024).

    Why: a GP fitted on raw scores lets a few disastrous ones (a model collapsed to chance, a diverged run, a
    BBOB function's far-away walls) set the scale of the whole model, so the differences that matter, among
    the good points, look like noise. Below the median only the order is kept, spread as the lower half of a
    normal distribution whose width is the good half's spread about the median; the better half, and so the
    best score and the improvements over it, are unchanged.

    Example:
        >>> half_rank_warp(np.array([0.25, 0.45, 0.46, 0.47, 0.48])).round(3).tolist()
        [0.443, 0.453, 0.46, 0.47, 0.48]
    """
    y = np.asarray(y, dtype=float)
    median = float(np.median(y))
    below = y < median
    spread = float(np.sqrt(np.mean((y[~below] - median) ** 2)))
    if not below.any() or spread == 0:
        return y.copy()
    levels = np.unique(y[below])  # ascending: the worst is level 1
    rank = np.searchsorted(levels, y[below]) + 1
    out = y.copy()
    out[below] = median + spread * stats.norm.ppf(0.5 * (rank - 0.5) / (len(levels) + 0.5))
    return out


def unwarp(values: np.ndarray, y: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """Scores on the raw scale for `values` on the scale `warped` = WARPS[...](y): interpolated between the
    data's (warped, raw) pairs, the identity above them (the better half is not warped) and linear below them
    with the slope of the warped half. A model's prediction in warped units thus ranks among raw scores as it
    ranks among the warped ones.

    Example:
        >>> y = np.array([0.25, 0.45, 0.46, 0.47, 0.48])
        >>> unwarp(half_rank_warp(y), y, half_rank_warp(y)).round(3).tolist()
        [0.25, 0.45, 0.46, 0.47, 0.48]
    """
    order = np.argsort(warped, kind="stable")
    xp, index = np.unique(np.asarray(warped, dtype=float)[order], return_index=True)
    fp = np.asarray(y, dtype=float)[order][index]
    values = np.asarray(values, dtype=float)
    out = np.interp(values, xp, fp)
    above, below = values > xp[-1], values < xp[0]
    out[above] = fp[-1] + (values[above] - xp[-1])
    slope = (fp[-1] - fp[0]) / (xp[-1] - xp[0]) if xp[-1] > xp[0] else 1.0
    out[below] = fp[0] + (values[below] - xp[0]) * slope
    return out


#: Transforms of the scores (to maximize) a GP is fitted on; each keeps the best score as it is.
WARPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"none": lambda y: np.array(y, dtype=float),
                                                         "half_rank": half_rank_warp}


class ModelFittingError(RuntimeError):
    """The GP could not be fitted or evaluated on these data; callers fall back to a model-free step."""


@contextmanager
def model_failures(what: str) -> Iterator[None]:
    """Turn the numerical failures of GP work into one ModelFittingError naming `what` was being done."""
    try:
        yield
    except NUMERICAL_ERRORS as exc:
        raise ModelFittingError(f"{what}: {type(exc).__name__}: {exc}") from exc


class GPSurrogate:
    """GP regression of scores on unit-cube points. `predict` returns mean and standard deviation of the
    latent function in the units of the scores given to `update`.

    Options: `min_points` before any model exists, `refit_growth` (relative data growth that triggers a new
    hyperparameter fit), `noise_floor` (lower bound of the noise variance in standardized units; objectives
    here are often deterministic), `kernel` ("matern": Matern-5/2 with Gamma priors, which gave lower
    BaMSOO regret on the benchmark set than "rbf", BoTorch's dimension-scaled default), `max_fit_points`
    (hyperparameters are fitted on an evenly spread subset of at most this many points, since each step of
    the fit costs O(n^3); the model still conditions on all points), `seed` for fitting restarts, `warm_start`
    (each fit starts from the previous one's hyperparameters; False: always from the initial values).
    """

    def __init__(self, dim: int, *, min_points: int = 2, refit_growth: float = 0.2, noise_floor: float = 1e-6,
                 kernel: str = "matern", max_fit_points: int = 1000, seed: int = 0, warm_start: bool = True) -> None:
        if min_points < 2:
            raise ValueError(f"the surrogate needs min_points >= 2, got {min_points}")
        if max_fit_points < min_points:
            raise ValueError(f"max_fit_points ({max_fit_points}) must be >= min_points ({min_points})")
        if refit_growth < 0:
            raise ValueError(f"refit_growth must be >= 0, got {refit_growth}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r} (use one of {', '.join(KERNELS)})")
        self.kernel = kernel
        self.dim = int(dim)
        self.min_points = int(min_points)
        self.refit_growth = float(refit_growth)
        self.noise_floor = float(noise_floor)
        self.max_fit_points = int(max_fit_points)
        self.seed = int(seed)
        self.warm_start = bool(warm_start)
        self.n_fits = 0
        self._n = 0
        self._n_fitted = 0
        self._gp: SingleTaskGP | None = None  # holds the fitted hyperparameters
        self._x: torch.Tensor | None = None  # the data the factor below was computed for
        self._chol: torch.Tensor | None = None
        self._factor_of: SingleTaskGP | None = None  # the hyperparameters of that factor
        self._alpha: torch.Tensor | None = None  # None: no usable model
        self._y_mean, self._y_std = 0.0, 1.0
        self._seen_fitted = 0  # `seen` at the last fit
        self._version = 0  # counts factorizations: the pending part below belongs to one
        self._pending: tuple[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None  # see _explained_by

    @property
    def n(self) -> int:
        """Number of points the model is conditioned on."""
        return self._n

    @property
    def ready(self) -> bool:
        return self._alpha is not None

    def update(self, u: np.ndarray, y: np.ndarray, seen: int | None = None) -> None:
        """Condition on all data so far: u (n, d) in [0, 1]^d, y (n,) finite; refits on schedule. `seen`: how many
        points the data were chosen from (a caller that keeps a `window` of them), which the refit schedule
        follows (default n).

        Raises ModelFittingError when no model can be built (the previous one is then dropped).
        """
        u = np.ascontiguousarray(u, dtype=float).reshape(-1, self.dim)
        y = np.ascontiguousarray(y, dtype=float).reshape(-1)
        if len(u) != len(y):
            raise ValueError(f"update got {len(u)} points but {len(y)} values")
        if not np.all(np.isfinite(y)):
            raise ValueError("update got non-finite values; failed trials must stay out of the surrogate")
        self._n, self._alpha = len(y), None
        seen = self._n if seen is None else max(int(seen), self._n)
        if self._n < self.min_points:
            return
        self._y_mean = float(y.mean())
        self._y_std = float(y.std(ddof=1)) or 1.0
        x = torch.as_tensor(u, dtype=torch.float64)
        z = torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float64)
        try:
            with one_thread():
                if self._gp is None or seen >= self._seen_fitted * (1 + self.refit_growth):
                    self._fit(x, z)
                    self._seen_fitted = seen
                self._condition(x, z)
        except NUMERICAL_ERRORS as exc:
            raise ModelFittingError(f"GP on {self._n} points: {exc}") from exc

    def predict(self, u: np.ndarray, pending: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (each shape (m,)) at unit points u (m, d).

        `pending` (p, d): points being evaluated. The model is then also conditioned on them as if each had
        scored its predicted mean (the kriging believer): the mean does not change, the sd shrinks near them.
        """
        if self._alpha is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        xs = self._tensor(u)
        kernel = self._gp.covar_module
        with torch.no_grad(), one_thread():
            cross = kernel(xs, self._x).to_dense()  # (m, n)
            mean = self._gp.mean_module(xs) + cross @ self._alpha
            v = torch.linalg.solve_triangular(self._chol, cross.T, upper=False)
            var = kernel(xs, diag=True) - (v * v).sum(0)
            if pending is not None and len(pending):
                var = var - self._explained_by(self._tensor(pending), xs, v)
        return (self._y_mean + self._y_std * mean.numpy(), self._y_std * np.sqrt(var.clamp_min(0.0).numpy()))

    def _explained_by(self, ps: torch.Tensor, xs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The posterior variance at xs that observing the points ps (with noise) would remove; `v` is
        L^-1 k(X, xs) of predict(). The pending points' part (O(n^2 p + p^3)) is kept for the next call with the
        same points and model: an ask predicts at many centres, one child at a time, with the same pending set."""
        key = (self._version, ps.shape, ps.numpy().tobytes())
        if self._pending is None or self._pending[0] != key:
            kernel, noise = self._gp.covar_module, self._gp.likelihood.noise.reshape(())
            vp = torch.linalg.solve_triangular(self._chol, kernel(ps, self._x).to_dense().T, upper=False)  # (n, p)
            c_pp = kernel(ps).to_dense() - vp.T @ vp + noise * torch.eye(len(ps), dtype=torch.float64)
            factor, info = torch.linalg.cholesky_ex(c_pp)
            self._pending = (key, (ps, vp, factor if info.item() == 0 else None))
        ps, vp, factor = self._pending[1]
        if factor is None:  # pending points too close to each other: the bound stays as without them
            return torch.zeros(len(xs), dtype=torch.float64)
        c_xp = self._gp.covar_module(xs, ps).to_dense() - v.T @ vp  # posterior covariances (m, p)
        w = torch.linalg.solve_triangular(factor, c_xp.T, upper=False)
        return (w * w).sum(0)

    def _tensor(self, u: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(u, dtype=float).reshape(-1, self.dim), dtype=torch.float64)

    def lengthscales(self) -> np.ndarray:
        """The fitted kernel's lengthscale per input (shape (d,), unit-cube widths): short where the function
        varies fast."""
        if self._alpha is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        kernel = getattr(self._gp.covar_module, "base_kernel", self._gp.covar_module)
        return kernel.lengthscale.detach().reshape(-1).numpy().copy()

    def noise_sd(self) -> float:
        """The fitted observation noise's standard deviation, in score units."""
        if self._alpha is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        return float(self._gp.likelihood.noise.detach().reshape(-1)[0].sqrt()) * self._y_std

    def prior(self) -> tuple[float, float]:
        """Mean and standard deviation of the fitted prior (constant mean, stationary kernel) in score units:
        what the model predicts far from all data."""
        if self._alpha is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        x0 = torch.full((1, self.dim), 0.5, dtype=torch.float64)
        with torch.no_grad():
            mean = float(self._gp.mean_module(x0)[0])
            var = float(self._gp.covar_module(x0, diag=True)[0])
        return self._y_mean + self._y_std * mean, self._y_std * var ** 0.5

    def loo(self) -> tuple[np.ndarray, np.ndarray]:
        """For each data point: its value minus the model's prediction of it from the other points, and that
        prediction's sd (of an observation, so noise included; hyperparameters held; closed form from the
        Cholesky factor)."""
        if self._alpha is None:
            raise ModelFittingError(f"no GP on {self._n} points (it needs {self.min_points} and a successful fit)")
        with torch.no_grad(), one_thread():
            inv_diag = torch.cholesky_inverse(self._chol).diagonal()
            z = self._alpha / inv_diag  # y_i - mu_{-i} in standardized units
        return self._y_std * z.numpy(), self._y_std / np.sqrt(inv_diag.numpy())

    def _fit(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Fit hyperparameters by marginal likelihood; if that fails, keep an earlier fit when there is one."""
        if len(x) > self.max_fit_points:
            keep = torch.as_tensor(np.unique(np.linspace(0, len(x) - 1, self.max_fit_points).round().astype(int)))
            x, z = x[keep], z[keep]
        gp = single_task_gp(x, z, kernel=self.kernel, noise_floor=self.noise_floor, noise_prior=False)
        try:
            fit_hyperparameters(gp, self.seed * 1_000_003 + self._n,
                                self._gp.state_dict() if self.warm_start and self._gp is not None else None)
        except NUMERICAL_ERRORS:
            if self._gp is None:
                raise
            return
        gp.eval()
        self._gp, self._n_fitted = gp, self._n
        self.n_fits += 1

    def _condition(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """With the hyperparameters fixed, factorize the kernel matrix of all data. Under the same hyperparameters,
        the rows the data share with the previous data (their leading points: all of them when points were only
        appended, those before the first point a window dropped otherwise) keep their rows of the Cholesky
        factor, and only the rows after are computed (O(n^2) per appended point instead of O(n^3))."""
        with torch.no_grad():
            kernel, noise = self._gp.covar_module, self._gp.likelihood.noise.reshape(())
            old = 0
            if self._factor_of is self._gp and self._x is not None:  # the leading rows both data sets share
                shared = min(len(self._x), len(x))
                differ = (x[:shared] != self._x[:shared]).any(1).nonzero()
                old = int(differ[0, 0]) if len(differ) else shared
                old = old if old < len(x) else 0  # nothing new: factorize again (same cost as a check)
            new = x[old:]
            k_new = kernel(new).to_dense() + noise * torch.eye(len(new), dtype=torch.float64)
            if old:
                chol = self._chol[:old, :old]
                cross = torch.linalg.solve_triangular(chol, kernel(x[:old], new).to_dense(), upper=False).T
                k_new = k_new - cross @ cross.T
            block, info = torch.linalg.cholesky_ex(k_new)
            if info.item() != 0:
                raise ModelFittingError(f"kernel matrix of {len(x)} points is not positive definite")
            if old:
                block = torch.cat([torch.cat([chol, torch.zeros(old, len(new), dtype=torch.float64)], 1),
                                   torch.cat([cross, block], 1)], 0)
            resid = (z - self._gp.mean_module(x)).unsqueeze(-1)
            self._alpha = torch.cholesky_solve(resid, block).squeeze(-1)
        self._x, self._chol, self._factor_of = x, block, self._gp
        self._version += 1
