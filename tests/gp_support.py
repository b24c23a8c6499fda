"""Shared by tests/test_bo.py and tests/test_surrogate.py: a spy on the hyperparameter fits of a module."""

from __future__ import annotations


def record_fits(monkeypatch, module):
    """Replace `module.fit_gpytorch_mll` by the real one, noting the lengthscales each fit starts from and ends
    at; returns those two lists."""
    starts, fitted = [], []
    real_fit = module.fit_gpytorch_mll

    def recording_fit(mll, **options):
        starts.append(mll.model.covar_module.base_kernel.lengthscale.detach().clone())
        real_fit(mll, **options)
        fitted.append(mll.model.covar_module.base_kernel.lengthscale.detach().clone())

    monkeypatch.setattr(module, "fit_gpytorch_mll", recording_fit)
    return starts, fitted
