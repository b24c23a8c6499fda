"""Where trials fail: a GP on the crashed and timed-out trials, so that GP-BO stops proposing where they crash.

Why: a crashed trial has no score, so a GP fitted on scores never hears of it. The region where trials crash
(out of memory at large ranks and batches, a diverged loss at large learning rates) then stays the least known
part of the model, and expected improvement, which favours what the model does not know, goes back there ask
after ask. Optuna's samplers leave failed trials out the same way.

The model is constrained BO's probability of feasibility (Gardner et al. 2014; BoTorch's LogConstrainedEI adds
its log to LogEI), with the labels regressed: a GP (`pbo.surrogate.single_task_gp`) on +1 for the trials that
finished and -1 for those that failed. A point finishes with probability Phi(mean / sd) of that GP's latent
posterior: near a crash the mean is about -1 and the sd small, so the probability is close to 0; far from
every trial it is the prior's, which the fitted constant mean sets to about the share of trials that finished.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.1], [0.2], [0.3], [0.4], [0.8], [0.9]])
    >>> model = FailureModel.fit(x, np.array([False, False, False, False, True, True]), seed=0)
    >>> p = model.log_prob_ok(torch.tensor([[[0.15]], [[0.85]]])).exp()
    >>> bool(p[0] > 0.9 and p[1] < 0.1)
    True
"""

from __future__ import annotations

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction

from pbo.frozen_gp import FrozenGP
from pbo.surrogate import fit_hyperparameters, single_task_gp


class FailureModel:
    """The fitted label GP, frozen for the acquisition search (`pbo.frozen_gp`)."""

    def __init__(self, model: FrozenGP) -> None:
        self.model = model

    @classmethod
    def fit(cls, x: np.ndarray, failed: np.ndarray, seed: int, kernel: str = "matern",
            noise_floor: float = 1e-6) -> FailureModel:
        """Fit on unit points `x` (n, d) and whether each failed; deterministic for `seed`."""
        labels = torch.as_tensor(np.where(np.asarray(failed, dtype=bool), -1.0, 1.0), dtype=torch.float64)
        model = single_task_gp(torch.as_tensor(np.asarray(x, dtype=float)), labels, kernel=kernel,
                               noise_floor=noise_floor)
        fit_hyperparameters(model, seed)
        return cls(FrozenGP(model.eval()))

    def log_prob_ok(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 (BoTorch's name)
        """log P(a trial at each point finishes), for a batch of single points (b, 1, d) -> (b,)."""
        posterior = self.model.posterior(X)
        return torch.special.log_ndtr((posterior.mean / posterior.variance.sqrt()).reshape(X.shape[:-2]))


class AvoidingFailures(AcquisitionFunction):
    """A log-space acquisition (LogEI, qLogNEI) plus the log probability that its point does not fail."""

    def __init__(self, acquisition: AcquisitionFunction, failures: FailureModel) -> None:
        super().__init__(model=acquisition.model)
        self.acquisition, self.failures = acquisition, failures

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 (BoTorch's name)
        return self.acquisition(X) + self.failures.log_prob_ok(X)
