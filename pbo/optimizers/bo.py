"""GP Bayesian optimization: a Latin hypercube design, then a BoTorch GP with expected improvement.

The model is the one both model-based optimizers share (`pbo.surrogate.single_task_gp`): Matern-5/2 with one
lengthscale per variable (ARD) and Gamma priors, outputs standardized, inputs in the unit cube (where a
log-scaled variable is already uniform in its logarithm), noise fitted above a floor of 1e-6 with a prior
that favours small noise, so a deterministic objective is fitted as nearly noise-free and a noisy one keeps
its noise. Its hyperparameters are fitted by marginal likelihood on every ask (`refit_growth=0`), each fit
starting from the previous one's values, which makes it a few L-BFGS-B steps once the data stop surprising
the model.

The acquisition is LogEI, maximized by L-BFGS-B from `num_restarts` starts chosen among `raw_samples` Sobol
points and perturbations of the best points observed so far (at three scales), up to `maxiter` iterations
each: the perturbations let it refine the incumbent to many digits, which the Sobol points alone do not.

Trials that crash or time out have no score for the GP; once one has, a second GP on which trials finished
(`pbo.feasibility`) adds the log probability that a point finishes to the acquisition, so asks stop going back
to where trials crash (`avoid_failures`); a run without failures is not changed by it.

With other asks pending, parallel workers must get distinct, complementary points instead of the same
maximizer: by default (`pending="believer"`, the kriging believer) the GP is conditioned on each pending
point as if it had scored its predicted mean, which shrinks the uncertainty, and so LogEI, around it;
`pending="qlognei"` maximizes qLogNoisyEI with those points as `X_pending`, integrating over their outcomes
by Monte Carlo.

Every GP ask is a pure function of the optimizer's history and a seed derived from the trial id, so the
optimizer is deterministic for a seed unless the scheduler limits the time per ask (see `GPBO`); replay
(restore) returns the recorded points without any GP work.

Example:
    >>> from pbo.space import Space
    >>> from pbo.optimizers import make_optimizer
    >>> space = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
    >>> opt = make_optimizer("bo", space, seed=0, budget=8, n_init=4)
    >>> for _ in range(8):
    ...     cand = opt.ask()
    ...     opt.tell(cand.id, -(cand.params["x"] - 0.3) ** 2)
    >>> abs(opt.best().candidate.params["x"] - 0.3) < 0.01
    True
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from botorch.acquisition import LogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from botorch.optim import optimize_acqf
from botorch.optim.initializers import initialize_q_batch
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.utils.warnings import NumericalWarning
from scipy.stats import qmc

from pbo.feasibility import AvoidingFailures, FailureModel
from pbo.frozen_gp import FrozenGP
from pbo.optimizers.base import Optimizer, Proposal, Trial, TrialState
from pbo.optimizers.lhs import Design
from pbo.optimizers.random import random_unvisited
from pbo.space import Space
from pbo.surrogate import (KERNELS, WARPS, ModelFittingError, fit_hyperparameters, model_failures, one_thread,
                           single_task_gp, warm_up, window)

#: How an ask accounts for the points still being evaluated (see `GPBO`).
PENDING_MODES = ("believer", "qlognei")

#: What the GP makes of a pruned trial (see `GPBO`).
PRUNED_MODES = ("exclude", "below_median")

#: Trials that teach the failure model where trials do not finish (`pbo.feasibility`).
FAILED_STATES = (TrialState.FAILED, TrialState.TIMEOUT)

#: Successful trials the GP needs before it replaces random points (after the design, e.g. when it failed).
MIN_GP_POINTS = 2

#: Starts of the acquisition search near the best observed points: how many of those points, and the
#: standard deviations (unit-cube widths) of the Gaussian perturbations drawn around each.
LOCAL_CENTRES = 3
LOCAL_SCALES = (1e-1, 1e-2, 1e-3)

#: Relative data growth between hyperparameter fits once the GP's window is full (`gp_points`), at least: a fit
#: on a full window costs seconds, and a window that moved by a fifth is a new fit's worth.
LARGE_REFIT_GROWTH = 0.2

#: A quick ask, made once a full one took longer than the scheduler can afford (`Optimizer.time_per_ask`):
#: L-BFGS-B iterations per start of the acquisition search, and the relative data growth between hyperparameter
#: fits. On Hartmann6 with 8 workers at 70 evaluations a quick ask takes a quarter to a third of a full one
#: (40-60 ms against 170-230 ms) for a median log10 regret 0.2 worse over 4 seeds.
QUICK_MAXITER = 3
QUICK_REFIT_GROWTH = 0.2

#: Quick asks in a row before a full one measures the full cost again, if the latest quick ask times
#: QUICK_SPEEDUP (about what a full ask costs more) fits in the time afforded: one slow ask (a burst of results,
#: a busy node) does not make the rest of a run quick, while a full ask that would surely be too slow is not
#: tried.
QUICK_RUN = 20
QUICK_SPEEDUP = 3.0


class GPBO(Optimizer):
    """GP-BO on the unit cube (inputs as is, outputs standardized).

    Options: `n_init` design points (default max(2d + 1, 5), capped by the budget); `num_restarts`,
    `raw_samples` (half Sobol points, half perturbations of the best points) and `maxiter` (L-BFGS-B
    iterations per restart) of the acquisition search, `pending` (above) and `mc_samples` for its qLogNEI;
    `kernel` ("matern" or "rbf", see pbo.surrogate.KERNELS); `noise`, the observation noise variance as a
    fraction of the variance of the values: None fits it (above `noise_floor`, in standardized units),
    a given value holds it; `refit_growth`, the relative growth of the data between two hyperparameter fits
    (0, the default, refits on every ask; 0.2 refits when the data grew by a fifth, for cheaper asks);
    `gp_points`, the most successful trials the GP holds (`surrogate.window`: the best half and the latest) and
    the most pending points it is conditioned on (the latest asked). Asks get cheaper past `large_n`: fits on
    `large_n` successful trials or more come at LARGE_REFIT_GROWTH of growth at least, and while the GP holds
    more than `large_n` points (successful trials and pending points) the acquisition search starts from at most
    `large_restarts` points chosen among at most `large_raw_samples`. `warp`: the transform of the scores the GP
    is fitted on (a name of pbo.surrogate.WARPS; "half_rank" keeps the better half and spreads the worse half
    by rank, so a few disastrous scores do not set the model's scale). `pruned`: "below_median" gives the GP the
    trials a pruner stopped, at their last score or the successes' median, whichever is lower (see `_gp_data`);
    "exclude" leaves them out. `avoid_failures` (default True): weight the acquisition by the probability that a
    trial at the point finishes, modelled on the failed and timed-out trials (`pbo.feasibility`).

    Asks adapt to the time the scheduler can afford (`Optimizer.time_per_ask`, set when trials are short next
    to asks, e.g. 1-second trials on 8 workers): once a full ask took longer, asks are quick (QUICK_MAXITER,
    QUICK_REFIT_GROWTH) and marked `effort: quick`, until the time afforded exceeds the latest full ask's again;
    after QUICK_RUN quick asks a full one measures that again if the quick ones leave room for it.
    """

    name = "bo"
    order_free_replay = True

    def __init__(self, space: Space, *, seed: int = 0, minimize: bool = False, budget: int | None = None,
                 n_init: int | None = None, num_restarts: int = 5, raw_samples: int = 1024, maxiter: int = 50,
                 mc_samples: int = 64, kernel: str = "matern", noise: float | None = None,
                 noise_floor: float = 1e-6, refit_growth: float = 0.0, pending: str = "believer",
                 gp_points: int = 512, large_n: int = 256, large_restarts: int = 2,
                 large_raw_samples: int = 256, warp: str = "half_rank", pruned: str = "below_median",
                 avoid_failures: bool = True) -> None:
        super().__init__(space, seed=seed, minimize=minimize, budget=budget)
        n_init = max(2 * space.dim + 1, 5) if n_init is None else int(n_init)
        if budget:
            n_init = min(n_init, int(budget))
        if n_init < 1:
            raise ValueError(f"bo: n_init must be at least 1, got {n_init}")
        if min(num_restarts, raw_samples, maxiter, mc_samples) < 1:
            raise ValueError("bo: num_restarts, raw_samples, maxiter and mc_samples must be at least 1")
        if kernel not in KERNELS:
            raise ValueError(f"bo: kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if noise is not None and not noise > 0:
            raise ValueError(f"bo: noise must be positive (or None to fit it), got {noise}")
        if not noise_floor > 0:
            raise ValueError(f"bo: noise_floor must be positive, got {noise_floor}")
        if not refit_growth >= 0:
            raise ValueError(f"bo: refit_growth must be >= 0, got {refit_growth}")
        if pending not in PENDING_MODES:
            raise ValueError(f"bo: pending must be one of {', '.join(PENDING_MODES)}, got {pending!r}")
        if not isinstance(gp_points, int) or gp_points < 2 * MIN_GP_POINTS:
            raise ValueError(f"bo: gp_points must be an integer >= {2 * MIN_GP_POINTS}, got {gp_points!r}")
        if min(large_restarts, large_raw_samples) < 1:
            raise ValueError("bo: large_restarts and large_raw_samples must be at least 1")
        if not isinstance(large_n, int) or large_n < 1:
            raise ValueError(f"bo: large_n must be an integer >= 1, got {large_n!r}")
        if warp not in WARPS:
            raise ValueError(f"bo: warp must be one of {', '.join(WARPS)}, got {warp!r}")
        self.warp = WARPS[warp]
        if pruned not in PRUNED_MODES:
            raise ValueError(f"bo: pruned must be one of {', '.join(PRUNED_MODES)}, got {pruned!r}")
        self.pruned_mode = pruned
        self.avoid_failures = bool(avoid_failures)
        self.large_n = large_n
        self.gp_points, self.large_restarts, self.large_raw_samples = gp_points, large_restarts, large_raw_samples
        self.kernel, self.noise, self.noise_floor = kernel, noise, float(noise_floor)
        self.refit_growth = float(refit_growth)
        self.n_fits = 0
        self._told: list[int] = []  # ids of the GP's data (`_gp_data`) in tell order: what each scheduled fit sees
        self._fit: tuple[int, dict[str, torch.Tensor]] | None = None  # (data size, hyperparameters)
        self.num_restarts, self.raw_samples, self.maxiter = num_restarts, raw_samples, maxiter
        self.mc_samples = mc_samples
        self.pending_mode = pending
        self.design = Design(space.dim, n_init, self.rng)
        self._full_seconds: float | None = None  # how long the latest full GP ask took
        self._quick_seconds = math.inf  # and the latest quick one
        self._quick_in_row = 0
        self._prepared = False  # an asker calls prepare() between results

    def _ask(self) -> Proposal | None:
        nxt = self.design.next(self._is_new)
        if nxt is not None:
            return Proposal(nxt[1], {"phase": "design", "index": nxt[0]})
        if self._replay_u is not None:
            return Proposal(self._replay_u, {"phase": "replay"})
        rng = np.random.default_rng([self.seed, self._next_id])
        x, _ = self.completed()
        if len(x) < MIN_GP_POINTS:
            return self._random(rng, "random")
        quick = self._quick()
        try:
            ranked = self._acquisition_maximizers(int(rng.integers(2 ** 31)), quick)
        except ModelFittingError as exc:
            warnings.warn(f"bo: GP step failed ({exc}); proposing a random point",
                          RuntimeWarning, stacklevel=3)
            return self._random(rng, "fallback")
        for u in ranked:
            if self._is_new(u):
                return Proposal(u, {"phase": "gp", "effort": "quick"} if quick else {"phase": "gp"})
        # Every local maximizer snapped onto a known point (small integer or categorical space).
        return self._random(rng, "random")

    def _quick(self, count: bool = True) -> bool:
        """Whether this ask is a quick one: the latest full ask took longer than the scheduler can afford, unless
        it is time to measure a full one again (QUICK_RUN). `count`: this is the ask (not a look ahead)."""
        limit = self.time_per_ask
        quick = None not in (limit, self._full_seconds) and self._full_seconds > limit and not (
            self._quick_in_row >= QUICK_RUN and self._quick_seconds * QUICK_SPEEDUP <= limit)
        if count:
            self._quick_in_row = self._quick_in_row + 1 if quick else 0
        return quick

    def prepare(self) -> None:
        """Fit the hyperparameters the next ask will use (before two results: `surrogate.warm_up`). During the
        design too: each early fit starts the next one warm, so the first GP ask does not pay for a fit from
        scratch; and once asks are quick, they leave a due refit to this call (`_hyperparameters`). Only an
        asker thread prepares (real workers, whose asks already depend on when results arrive); sequential and
        simulated runs stay deterministic for their seed."""
        self._prepared = True
        if len(self._told) < MIN_GP_POINTS:
            warm_up()
            return
        try:
            with torch.random.fork_rng(), one_thread(), model_failures(f"GP on {len(self._told)} points"):
                self._hyperparameters(len(self._told), self._quick(count=False), asking=False)
        except ModelFittingError:
            pass  # the ask meets the same failure and falls back to a random point

    def _tell(self, trial: Trial) -> None:
        self._told.append(trial.candidate.id)

    def _tell_pruned(self, trial: Trial) -> None:
        if self.pruned_mode == "below_median" and trial.score is not None and self._told:  # after a success
            self._told.append(trial.candidate.id)

    def _gp_data(self, trials: list[Trial] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Unit points and scores the GP is given (in ask order, or in the order of `trials`): the successful
        trials and, with `pruned: below_median`, the pruned ones that reported, each at its last score or the
        successes' median, whichever is lower (none before a first success): the pruner stopped them for
        ranking below their peers, so they count as no better than a typical finished trial, never as final
        values that could lead the search, while the GP learns where trials go wrong."""
        if trials is None:
            trials = [self.trials[cid] for cid in sorted(self._told)]
        ok = [t.score for t in trials if t.state is TrialState.OK]
        cap = float(np.median(ok))  # `_told` starts with a success
        u = np.array([t.candidate.u for t in trials]).reshape(len(trials), self.space.dim)
        y = np.array([t.score if t.state is TrialState.OK else min(t.score, cap) for t in trials], dtype=float)
        return u, y

    def recommend(self) -> Trial | None:
        """The successful trial with the best posterior mean at its point (the raw best when no GP can be
        fitted): robust to one lucky draw of a noisy objective, the same as best() on a deterministic one."""
        u, _ = self.completed()
        if len(u) <= MIN_GP_POINTS:
            return self.best()
        x, y = self._gp_data()
        try:
            with torch.random.fork_rng(), one_thread(), model_failures(f"GP on {len(y)} points"):
                kept = window(y, self.gp_points)
                model = self._conditioned(x[kept], self.warp(y[kept]), self._hyperparameters(len(self._told)))
                with torch.no_grad():
                    mean = model.posterior(torch.as_tensor(u)).mean.reshape(-1).numpy()
        except ModelFittingError:
            return self.best()
        return self.successes()[int(np.argmax(mean))]

    def state_dict(self) -> dict[str, Any]:
        """The history, and the latest hyperparameters: the next fit starts from them."""
        state = super().state_dict()
        if self._fit is not None:
            state["hyperparameters"] = {"size": self._fit[0],
                                        "values": {key: value.tolist() for key, value in self._fit[1].items()}}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("hyperparameters")
        if saved is not None:
            self._fit = (int(saved["size"]), {key: torch.tensor(value, dtype=torch.float64)
                                              for key, value in saved["values"].items()})

    def fit_size(self, n: int) -> int:
        """How many of the first successful trials the hyperparameters are fitted on when `n` have succeeded:
        the largest size <= n of the sequence 2, 3, ..., each at least (1 + refit_growth) times the last."""
        size = MIN_GP_POINTS
        while True:
            growth = max(self.refit_growth, LARGE_REFIT_GROWTH) if size >= self.large_n else self.refit_growth
            following = max(size + 1, math.ceil(size * (1 + growth) - 1e-9))
            if following > n:
                return size
            size = following

    def _hyperparameters(self, n: int, quick: bool = False, asking: bool = True) -> dict[str, torch.Tensor]:
        """The GP hyperparameters of the scheduled fit for `n` successful trials (fitted now if due), starting
        from the previous fit's values: near the optimum once the data stop surprising the model. A quick ask
        keeps the latest fit until the data grew by QUICK_REFIT_GROWTH, or by twice that when an asker
        prepares asks (`prepare`): the refit is then left to `prepare`, between results, unless it fell behind."""
        size = self.fit_size(n)
        growth = QUICK_REFIT_GROWTH * (2 if asking and self._prepared else 1)
        if quick and self._fit is not None and size < self._fit[0] * (1 + growth):
            size = self._fit[0]
        if self._fit is None or self._fit[0] != size:
            u, y = self._gp_data([self.trials[cid] for cid in self._told[:size]])
            kept = window(y, self.gp_points)
            fitted = self._gp(u[kept], self.warp(y[kept]))
            fit_hyperparameters(fitted, self.seed * 1_000_003 + size, None if self._fit is None else self._fit[1])
            self._fit = (size, {key: value for key, value in fitted.state_dict().items()
                                if not key.startswith("outcome_transform.")})
            self.n_fits += 1
        return self._fit[1]

    def _conditioned(self, x: np.ndarray, y: np.ndarray, hyperparameters: dict[str, torch.Tensor]) -> SingleTaskGP:
        model = self._gp(x, y)
        model.load_state_dict(hyperparameters, strict=False)  # the outcome transform stays on these data
        model.eval()
        return model

    def _gp(self, x: np.ndarray, y: np.ndarray) -> SingleTaskGP:
        train_y = torch.as_tensor(y, dtype=torch.float64)
        fixed = None if self.noise is None else torch.full_like(
            train_y, self.noise * max(float(train_y.var()), 1e-12)).unsqueeze(-1)  # y holds >= MIN_GP_POINTS
        return single_task_gp(torch.as_tensor(x, dtype=torch.float64), train_y, kernel=self.kernel,
                              noise_floor=self.noise_floor, fixed_noise=fixed, outcome_transform=Standardize(m=1))

    def _acquisition_maximizers(self, seed: int, quick: bool = False) -> list[np.ndarray]:
        """Local maximizers of the acquisition, best first (unit points, shape (d,) each)."""
        start = time.perf_counter()
        x, y = self._gp_data()
        n = len(self._told)
        kept = window(y, self.gp_points)
        x, y = x[kept], self.warp(y[kept])
        pending = [c.u for c in self.pending()][-self.gp_points:]
        with torch.random.fork_rng(), one_thread(), model_failures(f"GP on {len(y)} points"), \
                warnings.catch_warnings():
            # L-BFGS-B ending on a failed line search ("ABNORMAL") still returns its best point, and gpytorch rounds
            # a variance that came out slightly negative up to 1e-10: both warn, many times per ask once the GP
            # holds hundreds of points (believed pending points next to real ones).
            warnings.filterwarnings("ignore", message="Optimization failed", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="Negative variance values detected", category=NumericalWarning)
            hyperparameters = self._hyperparameters(n, quick)
            model = self._conditioned(x, y, hyperparameters)
            torch.manual_seed(seed)
            if pending and self.pending_mode == "qlognei":
                acq = qLogNoisyExpectedImprovement(
                    model, X_baseline=model.train_inputs[0],
                    X_pending=torch.as_tensor(np.array(pending), dtype=torch.float64),
                    sampler=SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed))
            else:
                if pending:  # the kriging believer
                    with torch.no_grad():
                        believed = FrozenGP(model).posterior(torch.as_tensor(np.array(pending))).mean
                    believed = believed.reshape(-1).numpy()
                    model = self._conditioned(np.vstack([x, pending]), np.concatenate([y, believed]),
                                              hyperparameters)
                # the same posterior as the model's, a fraction of gpytorch's cost per call (pbo.frozen_gp)
                acq = LogExpectedImprovement(FrozenGP(model), best_f=float(y.max()))
            failures = self._failure_model(seed)
            if failures is not None:
                acq = AvoidingFailures(acq, failures)
            large = len(y) + len(pending) > self.large_n
            starts = self._starts(acq, x, y, np.random.default_rng(seed),
                                  min(self.raw_samples, self.large_raw_samples) if large else self.raw_samples,
                                  min(self.num_restarts, self.large_restarts) if large else self.num_restarts)
            bounds = torch.stack([torch.zeros(self.space.dim), torch.ones(self.space.dim)]).to(torch.float64)
            points, values = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=len(starts),
                                           batch_initial_conditions=starts,
                                           options={"maxiter": QUICK_MAXITER if quick else self.maxiter},
                                           return_best_only=False)
        if quick:
            self._quick_seconds = time.perf_counter() - start
        else:
            self._full_seconds = time.perf_counter() - start
        order = torch.argsort(values.reshape(-1), descending=True)
        return [points.reshape(-1, self.space.dim)[i].numpy() for i in order]

    def _failure_model(self, seed: int) -> FailureModel | None:
        """The model of where trials fail (`pbo.feasibility`), or None while no trial failed: a run without
        failures is not changed by it. It is fitted from scratch on every ask, so past `large_n` trials with a
        known outcome (a pruned one without a score says neither) it keeps `large_n` of them: the latest failures
        (half at most) and the latest of the rest: 0.1-0.35 s per fit up to 500 trials in 6-D, against 0.9 s
        on all 500."""
        if not self.avoid_failures:
            return None
        known = [t for t in self.trials.values() if t.state in FAILED_STATES or t.score is not None]
        failures = [t for t in known if t.state in FAILED_STATES]
        if not failures:
            return None
        if len(known) > self.large_n:
            failures = failures[-(self.large_n // 2):]
            finished = [t for t in known if t.state not in FAILED_STATES][len(failures) - self.large_n:]
            known = sorted(failures + finished, key=lambda t: t.candidate.id)
        failed = np.array([t.state in FAILED_STATES for t in known])
        x = np.array([t.candidate.u for t in known])
        return FailureModel.fit(x, failed, seed, kernel=self.kernel, noise_floor=self.noise_floor)

    def _starts(self, acq, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_raw: int,
                restarts: int) -> torch.Tensor:
        """`restarts` starting points (shape (r, 1, d)) drawn by BoTorch's Boltzmann rule from `n_raw` raw
        points: Sobol points over the cube, and Gaussian perturbations of the best observed points."""
        d = self.space.dim
        n_local = n_raw // 2 if len(y) else 0
        sobol = qmc.Sobol(d, seed=rng).random(n_raw - n_local)
        centres = x[np.argsort(-y)[:LOCAL_CENTRES]]
        scales = np.resize(LOCAL_SCALES, n_local)[:, None]
        local = np.clip(centres[rng.integers(len(centres), size=n_local)] + scales * rng.standard_normal((n_local, d)),
                        0.0, 1.0)
        raw = torch.as_tensor(np.vstack([sobol, local]), dtype=torch.float64).unsqueeze(1)
        with torch.no_grad():
            values = torch.cat([acq(chunk) for chunk in raw.split(512)])
        starts, _ = initialize_q_batch(raw, values, n=min(restarts, n_raw))
        return starts

    def _random(self, rng: np.random.Generator, phase: str) -> Proposal | None:
        u = random_unvisited(rng, self.space.dim, self._is_new)
        return None if u is None else Proposal(u, {"phase": phase})

    def _is_new(self, u: np.ndarray) -> bool:
        return self.lookup(u) is None
