"""Install pbo. torch is pinned first by the Makefile / CI (see README) so pip never pulls a CUDA build."""

from setuptools import find_packages, setup

CORE = [
    "numpy>=1.26,<3",
    "scipy>=1.11,<2",
    "torch>=2.3,<2.15",
    "botorch==0.18.1",
    "gpytorch==1.15.2",
    "pyyaml>=6,<7",
    "h5py>=3.10,<4",
]
EXTRAS = {
    "mpi": ["mpi4py>=4,<5"],
    "llm": [
        "transformers>=4.45,<6",
        "peft>=0.13,<0.22",
        "lm-eval==0.4.13",
        "tokenizers>=0.20,<0.24",
        "accelerate>=1.0,<2",
    ],
    "analysis": ["matplotlib>=3.8,<4"],
    "test": ["pytest>=8,<10"],
    # jobs/bench_bbob.py: the BBOB suite (ioh) and the peers. greenlet lets Optuna's GPSampler optimize its
    # acquisition in batch (without it, 5x slower); matplotlib draws the ECDF plot.
    "bench": ["ioh==0.3.22", "optuna==5.0.0", "greenlet==3.5.6", "nevergrad==1.0.12", "cma==4.5.0",
              "matplotlib>=3.8,<4"],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name="pbo",
    version="0.1.0",
    description="MPI-parallel, partition-based hyperparameter optimization (SOO, BaMSOO, GP-BO) for LLM fine-tuning on HPC",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pbo", "pbo.*"]),
    include_package_data=True,
    package_data={"pbo": ["objectives/llm/data/*", "objectives/llm/data/**/*", "studies/*.yaml"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["pbo=pbo.run:main"]},
)
