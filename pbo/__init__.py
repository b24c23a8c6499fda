"""pbo: MPI-parallel, partition-based hyperparameter optimization (SOO, BaMSOO, GP-BO)."""

__version__ = "0.1.0"
