#!/usr/bin/env bash
# The reference study (LLaMA-3.2-1B LoRA on Alpaca-cleaned, HellaSwag + MMLU, budget 50) on 2 nodes x 4 GPUs:
# 8 workers, one trial per GPU, plus the master. 30 minutes before the walltime SLURM sends USR1 to this
# script: the master stops cleanly, the job requeues itself and resumes the same log.
#   sbatch jobs/slurm/reference.sh                                          # BaMSOO, seed 0
#   sbatch --export=ALL,PBO_ALGORITHM=soo,PBO_SEED=1 jobs/slurm/reference.sh
#   SLURM_JOB_NODELIST=gpu[01-02] PBO_GPUS_PER_NODE=4 bash jobs/slurm/reference.sh --dry-run
# Settings are environment variables: see mpi/launch.sh.
#SBATCH --job-name=pbo-reference
#SBATCH --nodes=2
#SBATCH --gpus-per-node=4
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@1800
#SBATCH --requeue
#SBATCH --open-mode=append
PBO_BATCH=slurm
PBO_STUDY=reference
PBO_CONFIG=${PBO_CONFIG:-jobs/studies/llama32_1b_alpaca.yaml}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
