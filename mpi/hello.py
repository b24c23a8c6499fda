"""MPI smoke test: every rank reports its host, world rank, node-local rank and the GPU(s) pbo would pin it to.

    mpirun -np 4 python mpi/hello.py [--gpus-per-worker G] [--gpus N] [--master-gpu]

Run it on the job's ranks before a study (the job scripts do): it shows that MPI reaches every node and that
each worker gets its own GPU. The choice is pbo.gpu's, the same code the workers of `pbo.run` use.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from mpi4py import MPI

from pbo import gpu


def report_line(host: str, rank: int, size: int, local_rank: int, local_size: int, binding: gpu.Binding) -> str:
    role = "master" if rank == 0 else "worker"
    device = ",".join(binding.gpus) if binding.gpus else "none (CPU)"
    line = f"host {host} rank {rank}/{size} local rank {local_rank}/{local_size} {role} gpu {device}"
    return line + (f" [warning: {binding.warning}]" if binding.warning else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--gpus", type=int, help="GPUs per node when CUDA_VISIBLE_DEVICES is unset "
                                                  "(default: nvidia-smi -L)")
    parser.add_argument("--master-gpu", action="store_true", help="give the master a GPU slot too")
    args = parser.parse_args(argv)
    comm = MPI.COMM_WORLD
    ranks = gpu.node_ranks(comm)
    binding = gpu.bind(comm.rank, ranks, gpus_per_worker=args.gpus_per_worker, gpu_count=args.gpus,
                       master_gpu=args.master_gpu, environ=dict(os.environ))
    line = report_line(socket.gethostname(), comm.rank, comm.size, ranks.index(comm.rank), len(ranks), binding)
    lines = comm.gather(line, root=0)
    if comm.rank == 0:
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
