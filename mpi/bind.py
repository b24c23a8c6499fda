"""Rank-to-GPU binding wrapper: pin one MPI rank to its GPU(s), then become the given command.

    mpirun -np 9 python mpi/bind.py [--gpus-per-worker G] [--gpus N] -- my_program args...

For programs that do not pin themselves (`python -m pbo.run` does, and needs no wrapper). It must not start
MPI (the command does), so it reads the world rank, node-local rank and ranks per node from the variables
the launcher sets (Hydra/MPICH, Open MPI, SLURM srun), assumes ranks fill each node in order (what the
hostfiles of mpi/hostfile.py give), and leaves the choice to pbo.gpu like the pbo workers do: rank 0 is the
master and takes no GPU unless --master-gpu.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from pbo import gpu

#: (world rank, node-local rank, ranks on this node) as each launcher names them.
LAUNCHER_VARIABLES = (
    ("PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),  # MPICH / Hydra
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),  # Open MPI
)
SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_TASKS_PER_NODE")  # srun


class BindError(RuntimeError):
    """The wrapper cannot tell which rank it is; one line naming what is missing."""


def slurm_tasks_per_node(value: str) -> list[int]:
    """Expand SLURM_TASKS_PER_NODE, e.g. `5,4(x2)` -> [5, 4, 4]."""
    counts: list[int] = []
    for part in value.split(","):
        count, _, repeat = part.partition("(x")
        counts += [int(count)] * int(repeat.rstrip(")") or 1)
    return counts


def ranks_on_node(environ: Mapping[str, str]) -> tuple[int, list[int]]:
    """This process's world rank and the world ranks on its node, from the launcher's variables."""
    for rank_var, local_var, size_var in LAUNCHER_VARIABLES:
        if all(name in environ for name in (rank_var, local_var, size_var)):
            rank, local, size = (int(environ[name]) for name in (rank_var, local_var, size_var))
            return rank, list(range(rank - local, rank - local + size))
    if all(name in environ for name in SLURM_VARIABLES):
        rank, local, node = (int(environ[name]) for name in SLURM_VARIABLES[:3])
        size = slurm_tasks_per_node(environ["SLURM_TASKS_PER_NODE"])[node]
        return rank, list(range(rank - local, rank - local + size))
    names = ", ".join("/".join(group) for group in LAUNCHER_VARIABLES + (SLURM_VARIABLES,))
    raise BindError(f"not started by a known MPI launcher (none of {names} is set)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--gpus", type=int, help="GPUs per node when CUDA_VISIBLE_DEVICES is unset")
    parser.add_argument("--master-gpu", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the program and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run (give it after --)")
    try:
        rank, ranks = ranks_on_node(os.environ)
        binding = gpu.bind(rank, ranks, gpus_per_worker=args.gpus_per_worker, gpu_count=args.gpus,
                           master_gpu=args.master_gpu)
    except (BindError, ValueError) as exc:
        print(f"bind: {exc}", file=sys.stderr)
        return 2
    if binding.warning:
        print(f"bind: rank {rank}: {binding.warning}", file=sys.stderr)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"bind: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
