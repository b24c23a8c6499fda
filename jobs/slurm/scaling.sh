#!/usr/bin/env bash
# Strong (or weak) scaling on real SLURM nodes: jobs/scaling/scaling.py runs the synthetic study with a cost
# model on W = 1, 2, 4, ... up to every GPU slot of the job, then plots speedup, efficiency and utilization
# against W (runs/scaling/<mode>-real/scaling.png). Requeued jobs resume the unfinished runs.
#   sbatch jobs/slurm/scaling.sh
#   sbatch --export=ALL,PBO_SCALING_MODE=weak,PBO_BUDGET=8 jobs/slurm/scaling.sh
#   SLURM_JOB_NODELIST='gpu[07-08]' PBO_GPUS_PER_NODE=4 bash jobs/slurm/scaling.sh --dry-run
#SBATCH --job-name=pbo-scaling
#SBATCH --nodes=2
#SBATCH --gpus-per-node=4
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
PBO_BATCH=slurm
PBO_STUDY=scaling
PBO_DRIVER=scaling
PBO_CONFIG=${PBO_CONFIG:-jobs/studies/scaling.yaml}
PBO_SMOKE=${PBO_SMOKE:-0}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
