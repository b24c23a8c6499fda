"""The BBOB benchmark behind jobs/bench_bbob.py: problems and runs (suite), algorithms (adapters), tables and
ECDF plots (report). The script's docstring describes what is measured and how to run it."""
