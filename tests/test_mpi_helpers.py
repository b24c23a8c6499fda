"""MPI launch helpers: hostfile generation from OAR / SLURM node lists."""

import sys

import pytest

from mpi.hostfile import HostfileError, expand_nodelist, format_hostfile, hosts_from_nodefile, main, plan_ranks


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
