"""MPI hostfiles for a pbo study: one worker rank per GPU slot on every node, plus the master on the first node.

The job scripts call this with the batch system's node list (OAR's `$OAR_NODEFILE`, SLURM's
`$SLURM_JOB_NODELIST`) and get back a hostfile for Open MPI (`host slots=N`) or MPICH/Hydra (`host:N`) and
the total number of ranks to pass to `mpirun -np`. Ranks fill hosts in file order, so rank 0 (the master,
which needs no GPU) lands on the first node next to that node's workers.

Example:
    >>> plan = plan_ranks(["n1", "n2"], gpus_per_node=4)
    >>> plan.n_ranks, format_hostfile(plan, "mpich")
    (9, 'n1:5\\nn2:4\\n')
    $ python mpi/hostfile.py --oar-nodefile "$OAR_NODEFILE" --gpus-per-node 4 --out hosts.txt   # prints 9
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FLAVORS = ("openmpi", "mpich")


class HostfileError(ValueError):
    """Unusable node list or layout; the message names the problem in one line."""


@dataclass(frozen=True)
class RankPlan:
    """How many ranks each host runs: `slots[i]` on `hosts[i]`; the first host also runs the master."""

    hosts: tuple[str, ...]
    slots: tuple[int, ...]
    workers_per_node: int

    @property
    def n_ranks(self) -> int:
        return sum(self.slots)

    @property
    def n_workers(self) -> int:
        return self.n_ranks - 1


def hosts_from_nodefile(text: str) -> list[str]:
    """Distinct host names in first-seen order: OAR writes one line per reserved core (or GPU) per host."""
    hosts: list[str] = []
    for line in text.splitlines():
        host = line.strip()
        if host and not host.startswith("#") and host not in hosts:
            hosts.append(host)
    return hosts


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a SLURM node list such as `gpu[01-03,07],login1` (what `scontrol show hostnames` prints)."""
    hosts: list[str] = []
    for prefix, ranges, suffix in re.findall(r"([^,\[\]]*)(?:\[([^\]]*)\])?([^,\[\]]*),?", nodelist.strip()):
        if not (prefix or ranges or suffix):
            continue
        if not ranges:
            hosts.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise HostfileError(f"cannot read node range {part!r} in node list {nodelist!r}")
            width = len(lo)
            for number in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{number:0{width}d}{suffix}")
    if not hosts:
        raise HostfileError(f"node list {nodelist!r} names no host")
    return hosts


def slurm_hosts(nodelist: str) -> list[str]:
    """Hosts of a SLURM allocation: `scontrol show hostnames` when it is installed, else `expand_nodelist`."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return expand_nodelist(nodelist)
    out = subprocess.run([scontrol, "show", "hostnames", nodelist], check=True, capture_output=True, text=True)
    return hosts_from_nodefile(out.stdout)


def plan_ranks(hosts: list[str], gpus_per_node: int, gpus_per_worker: int = 1) -> RankPlan:
    """One worker per `gpus_per_worker` GPUs of each host, plus the master (rank 0) on the first host."""
    if not hosts:
        raise HostfileError("the node list is empty: no host to run on")
    if gpus_per_node < 1 or gpus_per_worker < 1:
        raise HostfileError(f"gpus per node ({gpus_per_node}) and per worker ({gpus_per_worker}) must be >= 1")
    if gpus_per_node % gpus_per_worker:
        raise HostfileError(f"{gpus_per_node} GPUs per node do not split into workers of {gpus_per_worker} GPUs")
    workers = gpus_per_node // gpus_per_worker
    slots = tuple(workers + (1 if i == 0 else 0) for i in range(len(hosts)))
    return RankPlan(tuple(hosts), slots, workers)


def format_hostfile(plan: RankPlan, flavor: str) -> str:
    if flavor not in FLAVORS:
        raise HostfileError(f"unknown MPI flavor {flavor!r} (use {' or '.join(FLAVORS)})")
    line = "{host} slots={n}" if flavor == "openmpi" else "{host}:{n}"
    return "".join(line.format(host=h, n=n) + "\n" for h, n in zip(plan.hosts, plan.slots))


def _read_hosts(args: argparse.Namespace) -> list[str]:
    if args.oar_nodefile:
        try:
            return hosts_from_nodefile(Path(args.oar_nodefile).read_text())
        except OSError as exc:
            raise HostfileError(f"cannot read the OAR node file {args.oar_nodefile!r}: {exc.strerror}") from None
    if args.slurm_nodelist:
        return slurm_hosts(args.slurm_nodelist)
    return [h for h in args.hosts.split(",") if h]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write an MPI hostfile (master + one worker per GPU slot) and "
                                                 "print the number of ranks.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--oar-nodefile", help="OAR's $OAR_NODEFILE (one line per resource)")
    source.add_argument("--slurm-nodelist", help="SLURM's $SLURM_JOB_NODELIST (e.g. gpu[01-02])")
    source.add_argument("--hosts", help="comma-separated host names")
    parser.add_argument("--gpus-per-node", type=int, required=True)
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--flavor", choices=FLAVORS, default="openmpi", help="hostfile syntax (default openmpi)")
    parser.add_argument("--out", help="write the hostfile here (default: print it)")
    args = parser.parse_args(argv)
    try:
        plan = plan_ranks(_read_hosts(args), args.gpus_per_node, args.gpus_per_worker)
        text = format_hostfile(plan, args.flavor)
        if args.out:
            try:
                Path(args.out).write_text(text)
            except OSError as exc:
                raise HostfileError(f"cannot write the hostfile {args.out!r}: {exc.strerror}") from None
            print(plan.n_ranks)
        else:
            sys.stdout.write(text)
    except (HostfileError, subprocess.CalledProcessError) as exc:
        print(f"hostfile: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
