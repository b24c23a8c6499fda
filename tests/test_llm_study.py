"""The embedded tiny LLM study end to end: `mpirun -np 3 python -m pbo.run` (a master and two workers)."""

import numpy as np
import pytest

from pbo.log import read
from pbo_process import mpirun, run_pbo, write_config


@pytest.mark.slow
@pytest.mark.skipif(mpirun() is None, reason="mpirun not found")
def test_tiny_llm_study_runs_under_mpirun_with_two_workers_and_logs_the_baseline_and_task_metrics(tmp_path, tiny_study):
    study = tiny_study
    study["budget"] = 2
    study["objective_options"].update(max_steps=10, limit=30)  # a short budget: the surface is not the point
    config = write_config(tmp_path / "study.yaml", **study)
    out = tmp_path / "run.h5"
    proc = run_pbo(["--config", config, "--out", str(out)], np=3, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = read(out)
    assert sorted(run.trials["trial_id"].tolist()) == [0, 1, 2]
    assert set(run.trials["status"].tolist()) == {"ok"}
    assert set(run.trials["worker"].tolist()) <= {1, 2}
    for metric in ("hellaswag_tiny.acc", "hellaswag_tiny.acc_stderr", "mmlu_tiny.acc", "eval_seconds"):
        assert np.isfinite(run.trials[metric]).all(), metric
    trained = run.trials["trial_id"] > 0
    assert (run.trials["train_tokens_per_s"][trained] > 0).all()
