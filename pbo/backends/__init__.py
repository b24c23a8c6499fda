"""Backends move tasks to workers and outcomes back for the scheduler: local processes, MPI ranks, or a
simulated cluster on a virtual clock."""
