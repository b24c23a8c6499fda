"""MPI launch helpers: hostfiles from OAR / SLURM node lists, the smoke test and the GPU binding wrapper."""

import os
import socket
import subprocess
import sys

import pytest

from mpi.hostfile import HostfileError, expand_nodelist, format_hostfile, hosts_from_nodefile, main, plan_ranks
from pbo_process import ROOT, mpirun


def test_oar_nodefile_gives_each_host_once_in_order():
    text = "chuc-3\nchuc-3\nchuc-1\nchuc-3\nchuc-1\n\n"
    assert hosts_from_nodefile(text) == ["chuc-3", "chuc-1"]


@pytest.mark.parametrize("nodelist, hosts", [
    ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
    ("gpu[08-10,12],login1", ["gpu08", "gpu09", "gpu10", "gpu12", "login1"]),
    ("a[1-2]-ib,b7", ["a1-ib", "a2-ib", "b7"]),
    ("node5", ["node5"]),
])
def test_slurm_nodelist_expands_like_scontrol(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_master_shares_the_first_node_with_its_workers():
    plan = plan_ranks(["n1", "n2"], gpus_per_node=4)
    assert (plan.slots, plan.n_ranks, plan.n_workers) == ((5, 4), 9, 8)
    assert format_hostfile(plan, "openmpi") == "n1 slots=5\nn2 slots=4\n"
    assert format_hostfile(plan, "mpich") == "n1:5\nn2:4\n"


def test_multi_gpu_trials_give_fewer_workers_per_node():
    assert plan_ranks(["n1", "n2"], gpus_per_node=4, gpus_per_worker=2).slots == (3, 2)


@pytest.mark.parametrize("hosts, gpus, per_worker, message", [
    ([], 4, 1, "empty"),
    (["n1"], 0, 1, ">= 1"),
    (["n1"], 4, 3, "do not split"),
])
def test_unusable_layouts_are_refused_with_one_line(hosts, gpus, per_worker, message):
    with pytest.raises(HostfileError, match=message):
        plan_ranks(hosts, gpus, per_worker)


def test_cli_writes_the_hostfile_and_prints_the_rank_count(tmp_path, capsys):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\n" * 4 + "n2\n" * 4)
    out = tmp_path / "hosts"
    assert main(["--oar-nodefile", str(nodefile), "--gpus-per-node", "4", "--flavor", "mpich", "--out", str(out)]) == 0
    assert capsys.readouterr().out == "9\n"
    assert out.read_text() == "n1:5\nn2:4\n"


def test_cli_names_a_missing_node_file(tmp_path, capsys):
    assert main(["--oar-nodefile", str(tmp_path / "none"), "--gpus-per-node", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the OAR node file" in err


def test_bind_reads_the_node_layout_from_each_launcher():
    from mpi.bind import ranks_on_node

    hydra = {"PMI_RANK": "6", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "4"}
    openmpi = {"OMPI_COMM_WORLD_RANK": "6", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    slurm = {"SLURM_PROCID": "6", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_TASKS_PER_NODE": "5,4(x2)"}
    for environ in (hydra, openmpi, slurm):
        assert ranks_on_node(environ) == (6, [5, 6, 7, 8])


def test_bind_outside_a_launcher_names_the_variables_it_looked_for():
    from mpi.bind import BindError, ranks_on_node

    with pytest.raises(BindError, match="MPI_LOCALRANKID"):
        ranks_on_node({})


def run_under_mpirun(*args, np=3):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([mpirun(), "-np", str(np), sys.executable, *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_hello_prints_host_rank_local_rank_and_gpu_of_every_rank():
    result = run_under_mpirun("mpi/hello.py", "--gpus", "2")
    assert result.returncode == 0, result.stderr
    host = socket.gethostname()
    assert result.stdout.splitlines() == [
        f"host {host} rank 0/3 local rank 0/3 master gpu none (CPU)",
        f"host {host} rank 1/3 local rank 1/3 worker gpu 0",
        f"host {host} rank 2/3 local rank 2/3 worker gpu 1",
    ]


def test_bind_wrapper_pins_each_worker_to_its_own_gpu_before_the_command_starts():
    show = [sys.executable, "-c", "import os; print(os.environ['PMI_RANK'], repr(os.environ['CUDA_VISIBLE_DEVICES']))"]
    result = run_under_mpirun("mpi/bind.py", "--gpus", "2", "--", *show)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["0 ''", "1 '0'", "2 '1'"]
