#!/usr/bin/env bash
# The reference study (LLaMA-3.2-1B LoRA on Alpaca-cleaned, HellaSwag + MMLU, budget 50) on two Grid5000 GPU
# nodes: 2 x 4 GPUs = 8 workers, one trial per GPU. Walltime-killed jobs are resubmitted (idempotent job,
# exit 99 after the checkpoint signal) and resume the same log.
#   oarsub -S jobs/oar/reference.sh                                         # BaMSOO, seed 0
#   oarsub -S "jobs/oar/reference.sh PBO_ALGORITHM=soo PBO_SEED=1"        # settings as arguments
#   OAR_NODEFILE=nodes.txt PBO_GPUS_PER_NODE=4 bash jobs/oar/reference.sh --dry-run
# Settings are environment variables: see mpi/launch.sh.
#OAR -n pbo-reference
#OAR -l host=2,walltime=12:00:00
#OAR -p gpu_count>=4
#OAR -t idempotent
#OAR --checkpoint 1800
PBO_BATCH=oar
PBO_STUDY=reference
PBO_CONFIG=${PBO_CONFIG:-jobs/studies/llama32_1b_alpaca.yaml}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${OAR_WORKDIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
