"""Objectives for runtime tests, importable as `faulty:NAME` on every rank (tests put this folder on
PYTHONPATH). The parameter `mode` picks the behaviour, so an LHS design over its four choices hits each."""

import ctypes
import faulthandler
import os
import time
from pathlib import Path


def behave(params, pid_dir=None, hang=60.0, seconds=0.3, report=None):
    """`ok` returns metrics, `raise` raises, `exit` leaves with os._exit(1), `segfault` crashes in C, `hang`
    sleeps past any timeout, `slow` sleeps `seconds` and returns as `ok` does. `report` reports x * step at
    steps 1, 2, 3 with a metric `loss` and returns early when told to stop; `ignore` reports once, then sleeps
    `hang` whatever the answer."""
    if pid_dir is not None:
        Path(pid_dir, f"{os.getpid()}.pid").write_text(f"{os.getppid()}\n")
    mode = params["mode"]
    if mode == "report":
        for step in (1, 2, 3):
            if not report(step, params["x"] * step, loss=1.0 / step):
                return {"score": -1.0}  # ignored: a trial told to stop keeps its last report
        return {"score": params["x"] * 4}
    if mode == "ignore":
        report(1, params["x"])
        time.sleep(hang)
    if mode == "raise":
        raise ZeroDivisionError("planned failure")
    if mode == "exit":
        os._exit(1)
    if mode == "segfault":
        faulthandler.disable()  # a quiet crash
        ctypes.string_at(0)
    if mode == "hang":
        time.sleep(hang)
    if mode == "slow":
        time.sleep(seconds)
    return {"score": float(params["x"]), "extra": 2.0}


def slow(params, pid_dir=None, seconds=0.5):
    """A well-behaved objective that takes `seconds`, recording which process ran it."""
    if pid_dir is not None:
        Path(pid_dir, f"{os.getpid()}.pid").write_text(f"{os.getppid()}\n")
    time.sleep(seconds)
    return float(params["x"])


def visible_gpus(params, out_dir):
    """Records which GPUs the worker process (the child's parent) was given."""
    Path(out_dir, f"{os.getppid()}.gpus").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    return float(params["x"])


def text(params):
    """Returns a string instead of a number: every trial fails."""
    return f"x is {params['x']}"
