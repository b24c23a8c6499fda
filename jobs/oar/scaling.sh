#!/usr/bin/env bash
# Strong (or weak) scaling on real Grid5000 nodes: jobs/scaling/scaling.py runs the synthetic study with a
# cost model on W = 1, 2, 4, ... up to every GPU slot of the job, then plots speedup, efficiency and
# utilization against W (runs/scaling/<mode>-real/scaling.png). Resubmitted jobs resume the unfinished runs.
#   oarsub -S jobs/oar/scaling.sh
#   oarsub -S "jobs/oar/scaling.sh PBO_SCALING_MODE=weak PBO_BUDGET=8"
#   OAR_NODEFILE=nodes.txt PBO_GPUS_PER_NODE=4 bash jobs/oar/scaling.sh --dry-run
#OAR -n pbo-scaling
#OAR -l host=2,walltime=4:00:00
#OAR -t idempotent
#OAR --checkpoint 600
PBO_BATCH=oar
PBO_STUDY=scaling
PBO_DRIVER=scaling
PBO_CONFIG=${PBO_CONFIG:-jobs/studies/scaling.yaml}
PBO_SMOKE=${PBO_SMOKE:-0}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${OAR_WORKDIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
