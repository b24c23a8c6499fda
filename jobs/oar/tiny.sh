#!/usr/bin/env bash
# The embedded tiny LLM study on one Grid5000 GPU node: a short end-to-end check of a cluster set-up.
#   oarsub -S jobs/oar/tiny.sh                                # from the repository root
#   OAR_NODEFILE=nodes.txt PBO_GPUS_PER_NODE=4 bash jobs/oar/tiny.sh --dry-run
# Settings (log place, algorithm, seed, GPUs per node, ...) are environment variables: see mpi/launch.sh.
#OAR -n pbo-tiny
#OAR -l host=1,walltime=1:00:00
#OAR -t idempotent
#OAR --checkpoint 300
PBO_BATCH=oar
PBO_STUDY=tiny
PBO_CONFIG=${PBO_CONFIG:-pbo/studies/tiny_llm.yaml}
# shellcheck source=../../mpi/launch.sh
source "${PBO_ROOT:-${OAR_WORKDIR:-$PWD}}/mpi/launch.sh" || exit 2
pbo_job_main "$@"
