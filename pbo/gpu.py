"""GPU pinning: which GPUs a worker gets, from its node-local rank, chosen before anything initialises CUDA.

Pure functions over plain data (rank lists, GPU id lists, environment mappings) so that every case is tested
with fake nodes; only `node_ranks` touches MPI and only `nvidia_smi_count` touches the machine. CUDA itself is
never initialised here (no torch import), so the master can decide and a worker can pin itself before its
objective imports torch.

Example:
    >>> assign(slot=1, n_slots=2, gpus=["0", "1", "2", "3"], per_worker=2).gpus
    ('2', '3')
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping, Sequence

VISIBLE = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Binding:
    """The GPUs of one process (ids as CUDA_VISIBLE_DEVICES spells them; empty: CPU) and a warning if shared."""

    gpus: tuple[str, ...] = ()
    warning: str = ""

    def label(self, host: str) -> str:
        """The device string every TrialResult of this worker carries."""
        return f"gpu:{','.join(self.gpus)}@{host}" if self.gpus else f"cpu@{host}"


def nvidia_smi_count() -> int:
    """GPUs on this node according to `nvidia-smi -L` (0 when it is missing or fails); never initialises CUDA."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def gpu_ids(environ: Mapping[str, str], count: int | None = None,
            detect: Callable[[], int] = nvidia_smi_count) -> list[str]:
    """The node's usable GPUs: the existing CUDA_VISIBLE_DEVICES, else `count` (config), else `detect()`."""
    if VISIBLE in environ:
        ids = [g.strip() for g in environ[VISIBLE].split(",") if g.strip()]
        # CUDA stops at the first invalid id; -1 is the usual way to hide every GPU.
        return [] if not ids or ids[0].startswith("-") else ids
    n = detect() if count is None else count
    return [str(i) for i in range(n)]


def node_slot(node_ranks: Sequence[int], rank: int, master_gpu: bool = False) -> tuple[int | None, int]:
    """This rank's index among the GPU-taking ranks of its node, and how many there are.

    `node_ranks` are the world ranks sharing this node; rank 0 (the master) takes a GPU only if `master_gpu`.
    The master without a GPU gets index None.
    """
    takers = sorted(r for r in node_ranks if r != 0 or master_gpu)
    return (takers.index(rank) if rank in takers else None), len(takers)


def assign(slot: int | None, n_slots: int, gpus: Sequence[str], per_worker: int = 1) -> Binding:
    """The GPUs of the `slot`-th of `n_slots` workers on a node with `gpus`: consecutive blocks of
    `per_worker`, wrapping round-robin (with a warning) when the node has too few."""
    if per_worker < 1:
        raise ValueError(f"gpus_per_worker must be >= 1, got {per_worker}")
    if slot is None or not gpus:
        return Binding()
    chosen: list[str] = []
    for k in range(per_worker):
        gpu = gpus[(slot * per_worker + k) % len(gpus)]
        if gpu not in chosen:
            chosen.append(gpu)
    warning = ""
    if n_slots * per_worker > len(gpus):
        warning = (f"{n_slots} workers x {per_worker} GPU(s) on a node with {len(gpus)} GPU(s): "
                   "GPUs are shared round-robin")
    return Binding(tuple(chosen), warning)


def pin(binding: Binding, environ: MutableMapping[str, str]) -> None:
    """Make only the bound GPUs visible (none for a CPU binding). Call before anything initialises CUDA."""
    environ[VISIBLE] = ",".join(binding.gpus)


def node_ranks(comm: Any) -> list[int]:
    """World ranks on this rank's node, from an MPI shared-memory split (collective over `comm`)."""
    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return sorted(local.allgather(comm.Get_rank()))
    finally:
        local.Free()


def bind(rank: int, ranks_on_node: Sequence[int], *, gpus_per_worker: int = 1, gpu_count: int | None = None,
         master_gpu: bool = False, environ: MutableMapping[str, str] | None = None) -> Binding:
    """Choose and pin this rank's GPUs (the whole decision, for a backend to call once per worker)."""
    environ = os.environ if environ is None else environ
    slot, n_slots = node_slot(ranks_on_node, rank, master_gpu)
    binding = assign(slot, n_slots, gpu_ids(environ, gpu_count), gpus_per_worker)
    pin(binding, environ)
    return binding
