"""OAR and SLURM job scripts: syntax, and the hostfile and mpirun lines their dry runs print for 2 nodes x 4 GPUs."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "jobs").glob("*/*.sh")) + [ROOT / "mpi" / "launch.sh"]
STUDY_JOBS = [p for p in SCRIPTS if p.parent.name in ("oar", "slurm") and p.stem != "scaling"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_parses_with_bash_n(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def dry_run(script, tmp_path, **env):
    config = tmp_path / "study.yaml"
    config.write_text("budget: 4\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PBO_", "OAR_", "SLURM_"))}
    full_env.update(PBO_ROOT=str(ROOT), PBO_PYTHON=sys.executable, PBO_CONFIG=str(config), PBO_GPUS_PER_NODE="4",
                    PBO_LOG=str(tmp_path / "runs" / "study.h5"))
    full_env.update(env)
    return subprocess.run(["bash", str(ROOT / script), "--dry-run"], env=full_env, capture_output=True, text=True,
                          cwd=tmp_path)


def oar_nodefile(tmp_path):
    nodefile = tmp_path / "OAR_NODEFILE"
    nodefile.write_text("chuc-1\n" * 4 + "chuc-2\n" * 4)
    return str(nodefile)


def test_oar_dry_run_prints_hostfile_and_mpirun_line_for_2_nodes_of_4_gpus(tmp_path):
    result = dry_run("jobs/oar/reference.sh", tmp_path, OAR_NODEFILE=oar_nodefile(tmp_path), PBO_MPI_FLAVOR="openmpi",
                     PBO_ALGORITHM="soo", PBO_SEED="3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    hosts = tmp_path / "runs" / "study.hosts"
    assert lines[:3] == [f"# hostfile {hosts} (9 ranks: 1 master + 8 workers)", "chuc-1 slots=5", "chuc-2 slots=4"]
    assert lines[-1] == (
        f"{Path(sys.executable).parent / 'mpirun'} -np 9 --hostfile {hosts} -x PYTHONPATH -x PATH "
        f"--mca plm_rsh_agent oarsh {sys.executable} -m pbo.run --config {tmp_path / 'study.yaml'} "
        f"--gpus 4 --gpus-per-worker 1 --algorithm soo --seed 3 --out {tmp_path / 'runs' / 'study.h5'}")
    assert not hosts.exists(), "a dry run writes nothing"


def test_slurm_dry_run_prints_hostfile_and_mpirun_line_for_2_nodes_of_4_gpus(tmp_path):
    result = dry_run("jobs/slurm/reference.sh", tmp_path, SLURM_JOB_NODELIST="gpu[07-08]", PBO_MPI_FLAVOR="mpich",
                     PBO_MPIRUN="mpirun")
    assert result.returncode == 0, result.stderr
    hosts = tmp_path / "runs" / "study.hosts"
    assert result.stdout.splitlines()[1:3] == ["gpu07:5", "gpu08:4"]
    assert result.stdout.splitlines()[-1] == (
        f"mpirun -np 9 -f {hosts} {sys.executable} -m pbo.run --config {tmp_path / 'study.yaml'} "
        f"--gpus 4 --gpus-per-worker 1 --out {tmp_path / 'runs' / 'study.h5'}")


def test_smoke_test_runs_on_the_same_ranks_before_the_study(tmp_path):
    result = dry_run("jobs/slurm/tiny.sh", tmp_path, SLURM_JOB_NODELIST="gpu[07-08]", PBO_MPIRUN="mpirun",
                     PBO_MPI_FLAVOR="mpich")
    lines = result.stdout.splitlines()
    assert lines[lines.index("# smoke test") + 1] == (
        f"mpirun -np 9 -f {tmp_path / 'runs' / 'study.hosts'} {sys.executable} mpi/hello.py --gpus 4 "
        f"--gpus-per-worker 1")


@pytest.mark.parametrize("script", STUDY_JOBS, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_existing_log_is_resumed_not_overwritten(script, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "study.h5").write_bytes(b"")
    result = dry_run(script, tmp_path, OAR_NODEFILE=oar_nodefile(tmp_path), SLURM_JOB_NODELIST="gpu[1-2]",
                     PBO_MPI_FLAVOR="mpich")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(f"--resume {tmp_path / 'runs' / 'study.h5'}")


def test_two_gpus_per_trial_halve_the_workers_and_reach_pbo_run(tmp_path):
    result = dry_run("jobs/oar/tiny.sh", tmp_path, OAR_NODEFILE=oar_nodefile(tmp_path), PBO_MPI_FLAVOR="mpich",
                     PBO_GPUS_PER_WORKER="2")
    assert result.stdout.splitlines()[1:3] == ["chuc-1:3", "chuc-2:2"]
    assert "--gpus-per-worker 2" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("script, env, message", [
    ("jobs/oar/tiny.sh", {}, "OAR_NODEFILE is not set"),
    ("jobs/slurm/tiny.sh", {}, "SLURM_JOB_NODELIST is not set"),
    ("jobs/oar/tiny.sh", {"OAR_NODEFILE": "/nonexistent/nodes"}, "cannot read the OAR node file"),
    ("jobs/oar/tiny.sh", {"PBO_CONFIG": "/nonexistent.yaml", "OAR_NODEFILE": "x"}, "study config /nonexistent.yaml"),
])
def test_a_job_outside_its_batch_system_fails_with_one_line(script, env, message, tmp_path):
    result = dry_run(script, tmp_path, PBO_MPI_FLAVOR="mpich", **env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


@pytest.mark.parametrize("script", ["jobs/oar/scaling.sh", "jobs/slurm/scaling.sh"])
def test_scaling_job_runs_the_driver_on_every_power_of_two_up_to_all_gpus(script, tmp_path):
    result = dry_run(script, tmp_path, OAR_NODEFILE=oar_nodefile(tmp_path), SLURM_JOB_NODELIST="gpu[1-2]",
                     PBO_MPI_FLAVOR="mpich", PBO_MPIRUN="mpirun", PBO_LAUNCHER_ARGS="", PBO_OUT=str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"{sys.executable} jobs/scaling/scaling.py --mode strong --workers 1,2,4,8 --budget 32 --algorithms "
        f"random,lhs --seed 0 --config {tmp_path / 'study.yaml'} --out {tmp_path / 's'} --mpirun mpirun "
        f"--mpirun-args -f\\ {tmp_path / 's' / 'hosts'}")


def test_checkpoint_signal_stops_the_study_asks_oar_to_resubmit_and_the_rerun_resumes(tmp_path):
    """A real OAR job on this machine (2 worker ranks + master): SIGUSR2 mid-run -> exit 99 with a partial
    log; the resubmitted job resumes that log to the full budget without redoing a trial."""
    from pbo.log import read

    (tmp_path / "study.yaml").write_text(
        "objective: branin\nalgorithm: lhs\nbudget: 10\ncost: {kind: fixed, mean: 0.4}\n")
    (tmp_path / "nodes").write_text("localhost\nlocalhost\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PBO_", "OAR_", "SLURM_", "CUDA_"))}
    env.update(PBO_ROOT=str(ROOT), PBO_PYTHON=sys.executable, PBO_CONFIG=str(tmp_path / "study.yaml"),
               PBO_GPUS_PER_NODE="2", PBO_MPI_FLAVOR="mpich", PBO_LAUNCHER_ARGS="", PBO_LOG=str(tmp_path / "run.h5"),
               OAR_NODEFILE=str(tmp_path / "nodes"))
    job = subprocess.Popen(["bash", str(ROOT / "jobs/oar/tiny.sh")], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (tmp_path / "run.h5").exists() and len(read(tmp_path / "run.h5").trials["trial_id"]) >= 2:
            break
        time.sleep(0.2)
    job.send_signal(signal.SIGUSR2)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 99, err
    assert f"host {socket.gethostname()} rank 2/3 local rank 2/3 worker gpu 1" in out  # the smoke test ran first
    done_before = read(tmp_path / "run.h5").trials["trial_id"]
    assert 2 <= len(done_before) < 10

    rerun = subprocess.run(["bash", str(ROOT / "jobs/oar/tiny.sh")], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    trial_ids = read(tmp_path / "run.h5").trials["trial_id"]
    assert len(set(trial_ids)) == len(trial_ids) == 10


def scaling_driver(*args):
    return subprocess.run([sys.executable, str(ROOT / "jobs/scaling/scaling.py"), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_weak_scaling_dry_run_grows_the_budget_with_the_workers(tmp_path):
    result = scaling_driver("--mode", "weak", "--workers", "1,4", "--budget", "3", "--algorithms", "lhs",
                            "--mpirun", "mpirun", "--mpirun-args", "-f hosts", "--out", str(tmp_path), "--dry-run")
    assert result.returncode == 0, result.stderr
    one, four = result.stdout.splitlines()
    assert one.startswith("mpirun -np 2 -f hosts ") and "--budget 3 " in one
    assert four.startswith("mpirun -np 5 -f hosts ") and "--budget 12 " in four
    assert four.endswith(f"--out {tmp_path / 'weak-real' / 'lhs-W4.h5'}")
    assert not (tmp_path / "weak-real").exists()


def test_simulated_strong_scaling_writes_figure_and_table_and_resumes_its_logs(tmp_path):
    args = ["--simulate", "--workers", "1,2,4", "--budget", "8", "--algorithms", "random", "--out", str(tmp_path)]
    result = scaling_driver(*args)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "strong-simulated"
    assert (folder / "scaling.png").stat().st_size > 5000
    rows = [line for line in (folder / "scaling.md").read_text().splitlines() if line.startswith("| random")]
    assert [row.split(" | ")[1] for row in rows] == ["1", "2", "4"]
    assert float(rows[2].split(" | ")[4]) > 2.0  # speedup at W = 4
    again = scaling_driver(*args)
    assert again.returncode == 0 and again.stdout.count("--resume") == 3
    assert (folder / "scaling.md").read_text().count("| 8 |") == 3  # no evaluation redone


def test_settings_given_as_script_arguments_reach_the_command(tmp_path):
    env = dict(OAR_NODEFILE=oar_nodefile(tmp_path), PBO_MPI_FLAVOR="mpich")
    config = tmp_path / "study.yaml"
    config.write_text("budget: 4\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PBO_", "OAR_", "SLURM_"))}
    full_env.update(env, PBO_ROOT=str(ROOT), PBO_PYTHON=sys.executable, PBO_GPUS_PER_NODE="4")
    result = subprocess.run(["bash", str(ROOT / "jobs/oar/reference.sh"), f"PBO_CONFIG={config}",
                             "PBO_ALGORITHM=bo", f"PBO_LOG={tmp_path / 'x.h5'}", "--dry-run"], env=full_env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(f"--algorithm bo --out {tmp_path / 'x.h5'}")
    bad = subprocess.run(["bash", str(ROOT / "jobs/oar/reference.sh"), "--budget", "3"], env=full_env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--budget'" in bad.stderr
