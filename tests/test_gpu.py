"""GPU selection with fake nodes: node-local ranks and GPU lists as plain data."""

import pytest

from pbo.gpu import Binding, assign, bind, gpu_ids, node_slot


def never_detect():
    raise AssertionError("nvidia-smi must not run when CUDA_VISIBLE_DEVICES is set")


def test_existing_cuda_visible_devices_wins_over_count_and_detection():
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "4, 5,7"}, count=8, detect=never_detect) == ["4", "5", "7"]


@pytest.mark.parametrize("value", ["", "-1", "-1,0"])
def test_hidden_gpus_mean_none(value):
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": value}, detect=never_detect) == []


def test_count_from_config_else_from_detection():
    assert gpu_ids({}, count=2, detect=never_detect) == ["0", "1"]
    assert gpu_ids({}, detect=lambda: 3) == ["0", "1", "2"]
    assert gpu_ids({}, detect=lambda: 0) == []


def test_the_master_takes_no_gpu_slot_unless_configured():
    assert node_slot([0, 1, 2, 3], 0) == (None, 3)
    assert node_slot([0, 1, 2, 3], 1) == (0, 3)
    assert node_slot([0, 1, 2, 3], 0, master_gpu=True) == (0, 4)
    assert node_slot([0, 1, 2, 3], 3, master_gpu=True) == (3, 4)


def test_on_a_second_node_the_first_worker_gets_the_first_gpu():
    assert node_slot([4, 5, 6, 7], 4) == (0, 4)


def test_one_gpu_per_worker():
    gpus = ["0", "1", "2", "3"]
    assert [assign(s, 4, gpus).gpus for s in range(4)] == [("0",), ("1",), ("2",), ("3",)]
    assert assign(0, 4, gpus).warning == ""


def test_several_gpus_per_worker_are_consecutive_blocks():
    gpus = ["0", "1", "2", "3"]
    assert [assign(s, 2, gpus, per_worker=2).gpus for s in range(2)] == [("0", "1"), ("2", "3")]


def test_more_workers_than_gpus_share_round_robin_with_a_warning():
    bindings = [assign(s, 5, ["0", "1"]) for s in range(5)]
    assert [b.gpus for b in bindings] == [("0",), ("1",), ("0",), ("1",), ("0",)]
    assert all("shared round-robin" in b.warning for b in bindings)


def test_no_gpu_or_no_slot_means_cpu():
    assert assign(0, 2, []) == Binding()
    assert assign(None, 2, ["0"]) == Binding()
    assert Binding().label("n1") == "cpu@n1" and Binding(("2", "3")).label("n1") == "gpu:2,3@n1"


def test_gpus_per_worker_below_one_is_refused():
    with pytest.raises(ValueError, match="gpus_per_worker"):
        assign(0, 1, ["0"], per_worker=0)


def test_bind_pins_the_worker_before_cuda_starts():
    env = {"CUDA_VISIBLE_DEVICES": "2,3,6,7"}
    binding = bind(2, [0, 1, 2, 3, 4], environ=env)
    assert binding.gpus == ("3",) and env["CUDA_VISIBLE_DEVICES"] == "3"


def test_bind_hides_every_gpu_from_the_master():
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert bind(0, [0, 1, 2], environ=env).gpus == () and env["CUDA_VISIBLE_DEVICES"] == ""
