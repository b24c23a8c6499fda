"""The local backend: W forked children, each pinned like an MPI worker on one node."""

import os

from pbo.backends.local import LocalBackend
from pbo.objectives import Objective
from pbo.optimizers import make_optimizer
from pbo.scheduler import run_study
from pbo.space import Space

X = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def test_local_workers_are_pinned_to_their_gpus_and_results_carry_the_device(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    objective = Objective("f", lambda p: {"value": p["x"], "gpu": float(os.environ["CUDA_VISIBLE_DEVICES"])})
    backend = LocalBackend(objective, 2, gpu_count=2)
    summary = run_study(make_optimizer("random", Space.from_dict(X)), backend, budget=6)
    for result in summary.results:
        assert result.device.startswith(f"gpu:{result.worker - 1}@")
        assert result.metrics["gpu"] == result.worker - 1
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the master itself stays unpinned

