"""Running one evaluation in a child process: every way a trial can end becomes data."""

import ctypes
import faulthandler
import os
import time

from pbo.isolation import Child, run_inline, run_isolated, wait_any
from pbo.optimizers.base import TrialState


def _raise():
    raise ValueError("bad learning rate")


def test_a_returned_value_comes_back_as_plain_data():
    finished = run_isolated(lambda: {"acc": 0.5, "n": 3})
    assert finished.status is TrialState.OK and finished.payload == {"acc": 0.5, "n": 3}


def test_a_large_result_is_read_while_the_child_writes_it():
    assert len(run_isolated(lambda: "x" * 5_000_000).payload) == 5_000_000


def test_an_exception_is_a_failure_with_its_message_and_where_it_was_raised():
    finished = run_isolated(_raise)
    assert finished.status is TrialState.FAILED
    assert finished.error.startswith("ValueError: bad learning rate [test_isolation.py:")
    assert "in _raise]" in finished.error


def test_os_exit_is_a_failure_naming_the_exit_code():
    finished = run_isolated(lambda: os._exit(3))
    assert finished.status is TrialState.FAILED and "exited with code 3" in finished.error


def test_a_segfault_is_a_failure_naming_the_signal():
    finished = run_isolated(lambda: (faulthandler.disable(), ctypes.string_at(0)))  # quiet crash
    assert finished.status is TrialState.FAILED and "SIGSEGV" in finished.error


def test_a_killed_child_suggests_out_of_memory():
    finished = run_isolated(lambda: os.kill(os.getpid(), 9))
    assert "SIGKILL (out of memory?)" in finished.error


def test_a_timeout_kills_the_child_and_what_it_started(tmp_path, alive):
    marker = tmp_path / "grandchild"

    def hang():
        if os.fork() == 0:  # a grandchild in the same process group
            marker.write_text(str(os.getpid()))
            time.sleep(60)
            os._exit(0)
        time.sleep(60)

    start = time.monotonic()
    finished = run_isolated(hang, timeout=0.5)
    assert finished.status is TrialState.TIMEOUT and finished.error == "timed out after 0.5 s"
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    grandchild = int(marker.read_text())
    assert not alive(grandchild)


def test_a_child_exit_is_seen_even_when_a_grandchild_holds_the_pipe_open():
    def leave_a_grandchild():
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        os._exit(2)

    start = time.monotonic()
    finished = run_isolated(leave_a_grandchild)
    assert "exited with code 2" in finished.error and time.monotonic() - start < 5


def test_prepare_runs_in_the_child_only():
    finished = run_isolated(lambda: os.environ["PBO_TEST_PIN"], prepare=lambda: os.environ.update(PBO_TEST_PIN="3"))
    assert finished.payload == "3" and "PBO_TEST_PIN" not in os.environ


def test_wait_any_returns_the_first_children_to_finish():
    fast, slow = Child(lambda: 1), Child(lambda: time.sleep(5))
    assert wait_any([fast, slow], timeout=3) == [fast]
    assert wait_any([slow], timeout=0.05) == []
    slow.kill()
    assert slow.result.status is TrialState.FAILED


def test_inline_runs_catch_exceptions_too():
    finished = run_inline(_raise)
    assert finished.status is TrialState.FAILED and "bad learning rate" in finished.error
