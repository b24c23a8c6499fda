#!/usr/bin/env bash
# The embedded tiny LLM study on one SLURM GPU node: a short end-to-end check of a cluster set-up.
#   sbatch jobs/slurm/tiny.sh                                 # from the repository root
#   SLURM_JOB_NODELIST=gpu[01-02] PBO_GPUS_PER_NODE=4 bash jobs/slurm/tiny.sh --dry-run
# Settings are environment variables: see mpi/launch.sh. 10 minutes before the walltime SLURM sends USR1:
# the master stops cleanly, the job requeues itself and resumes the same log.
#SBATCH --job-name=pbo-tiny
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
PBO_BATCH=slurm
PBO_STUDY=tiny
PBO_CONFIG=${PBO_CONFIG:-pbo/studies/tiny_llm.yaml}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
