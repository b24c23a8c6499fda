"""An objective that imports on the master (rank 0) but not on workers: a start-up failure on the workers."""

import os

if os.environ.get("PMI_RANK", "0") != "0":
    raise ImportError("the data set is not mounted on this node")


def objective(params):
    return float(params["x"])
