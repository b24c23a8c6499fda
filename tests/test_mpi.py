"""The MPI backend, end to end: `mpirun -np N python -m pbo.run` as a subprocess."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from pbo_process import command, environment, mpirun, run_pbo, trials, write_config

pytestmark = pytest.mark.skipif(mpirun() is None, reason="mpirun not found")


@pytest.mark.parametrize("np", [3, 5])
def test_mpirun_spends_the_budget_on_every_worker_and_all_ranks_exit_0(np, tmp_path):
    config = write_config(tmp_path / "c.yaml", algorithm="random", objective="hartmann6", budget=12,
                          cost={"kind": "fixed", "mean": 0.1})
    proc = run_pbo(["--config", config], np=np)
    assert proc.returncode == 0, proc.stderr
    rows = trials(proc.stdout)
    assert sorted(t for t, *_ in rows) == list(range(1, 13))
    assert {w for _, w, *_ in rows} == set(range(1, np))
    assert all(status == "ok" for _, _, status, _ in rows)
    assert "12 evaluations (0 failed)" in proc.stdout


def test_sigterm_to_the_master_stops_the_run_resumably_and_leaves_no_worker(tmp_path, alive):
    pids = tmp_path / "pids"
    pids.mkdir()
    config = write_config(tmp_path / "c.yaml", algorithm="random", objective="faulty:slow", budget=100,
                          objective_options={"pid_dir": str(pids), "seconds": 1.0},
                          space={"x": {"type": "float", "low": 0, "high": 1}})
    proc = subprocess.Popen(command(["--config", config], np=3), cwd=tmp_path, env=environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = proc.stdout.readline()
    master = int(header.split("master pid ")[1].split()[0])
    deadline = time.monotonic() + 30
    while len(list(pids.iterdir())) < 3 and time.monotonic() < deadline:  # a trial done and two running
        time.sleep(0.1)
    os.kill(master, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "stopped by SIGTERM" in err and "resumed" in err
    assert trials(header + out)  # finished trials were reported
    ran = {int(p.stem) for p in pids.iterdir()} | {int(p.read_text()) for p in pids.iterdir()}
    assert [pid for pid in ran if alive(pid)] == []


def test_each_worker_is_pinned_from_its_node_local_rank_and_the_master_takes_none(tmp_path):
    config = write_config(tmp_path / "c.yaml", algorithm="random", objective="faulty:visible_gpus", budget=12,
                          gpus=2, objective_options={"out_dir": str(tmp_path)},
                          space={"x": {"type": "float", "low": 0, "high": 1}})
    env_free = {k: v for k, v in environment().items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.run(command(["--config", config], np=4), cwd=tmp_path, env=env_free, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pinned = sorted(p.read_text() for p in tmp_path.glob("*.gpus"))
    assert pinned == ["0", "0", "1"]  # 3 workers on 2 GPUs: round-robin
    assert "3 workers x 1 GPU(s) on a node with 2 GPU(s): GPUs are shared round-robin" in proc.stderr


def test_a_worker_that_cannot_start_stops_the_run_naming_its_rank_and_host():
    proc = run_pbo(["--objective", "master_only:objective", "--space", "{x: {type: float, low: 0, high: 1}}",
                    "--budget", "4"], np=3)
    assert proc.returncode == 1
    assert "worker failed to start: rank 1 on " in proc.stderr and "the data set is not mounted" in proc.stderr
    assert trials(proc.stdout) == []


def test_simulate_under_mpirun_is_refused_in_one_line():
    proc = run_pbo(["--objective", "branin", "--simulate", "4", "--cost", "{mean: 1}"], np=2)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "simulate" in proc.stderr


def test_bamsoo_asking_ahead_under_mpi_stops_and_resumes_to_its_budget_from_the_logged_tree(tmp_path):
    """The asker thread keeps points ready while every worker is busy; SIGTERM then --resume: no trial is run
    twice, replay on the same numerics warns of nothing, and the resumed tree grows from the logged one."""
    from pbo.log import load_resume, read
    from pbo.optimizers import make_optimizer

    path = str(tmp_path / "run.h5")
    config = write_config(tmp_path / "c.yaml", algorithm="bamsoo", objective="hartmann3", budget=30, seed=1,
                          ask_ahead="always", cost={"kind": "fixed", "mean": 0.2})
    proc = subprocess.Popen(command(["--config", config, "--out", path], np=4), cwd=tmp_path, env=environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = proc.stdout.readline()
    master = int(header.split("master pid ")[1].split()[0])
    done = 0
    while done < 12:
        done += bool(trials(proc.stdout.readline()))
    os.kill(master, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # mpirun kills the ranks still running once the master exits with 143, and may report their SIGKILL instead
    assert proc.returncode != 0 and "stopped by SIGTERM" in err
    stopped = read(path)
    assert (stopped.asks["worker"] == -1).any()  # points asked ahead, logged when the run stopped
    state = load_resume(path)
    optimizer = make_optimizer("bamsoo", stopped.space, seed=1, budget=30)
    state.restore(optimizer)
    for name, column in optimizer.tree_table().items():
        np.testing.assert_array_equal(stopped.tree[name], column, err_msg=name)
    resumed = run_pbo(["--resume", path], np=4, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "pbo: warning" not in resumed.stderr
    assert sorted(read(path).trials["trial_id"]) == list(range(1, 31))
    tree, n = read(path).tree, len(stopped.tree["node_id"])
    for name in ("parent", "depth", "lower", "upper", "center"):
        np.testing.assert_array_equal(tree[name][:n], stopped.tree[name], err_msg=name)
