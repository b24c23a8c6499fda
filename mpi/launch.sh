# shellcheck shell=bash
# Shared body of the OAR and SLURM job scripts: build the hostfile (master + one worker rank per GPU slot),
# start `mpirun ... python -m pbo.run`, resume the same log when the job is started again, and on the batch
# system's "walltime is near" signal stop the master cleanly and ask to be resubmitted.
#
# A job script sets PBO_BATCH (oar | slurm), PBO_STUDY (a name for the log) and PBO_CONFIG, sources this file
# and calls `pbo_job_main "$@"`; with PBO_DRIVER=scaling it runs jobs/scaling/scaling.py on the job's ranks
# (W = 1, 2, 4, ... up to all of them) instead of one study. Everything else comes from the environment
# (defaults in brackets):
#   PBO_ROOT           repository root                     [the job's submit directory]
#   PBO_PYTHON         python with pbo installed            [$PBO_ROOT/.venv/bin/python, else python3]
#   PBO_MPIRUN         mpirun                               [next to PBO_PYTHON, else on PATH]
#   PBO_MPI_FLAVOR     openmpi | mpich                      [from `mpirun --version`]
#   PBO_GPUS_PER_NODE  GPUs on each node                    [`nvidia-smi -L` on the first node, else 1]
#   PBO_GPUS_PER_WORKER GPUs per trial                      [1]
#   PBO_ALGORITHM, PBO_SEED, PBO_BUDGET   override the config's keys       [unset: the config decides]
#   PBO_LOG            the HDF5 log; resumed when it exists [$PBO_ROOT/runs/<study>[-<algorithm>][-s<seed>].h5]
#   PBO_LAUNCHER_ARGS  mpirun options to reach other nodes  [OAR: oarsh; SLURM: none]
#   PBO_MPIRUN_ARGS    extra mpirun options                 [none]
#   PBO_RUN_ARGS       extra `pbo.run` flags                [none]
#   PBO_SMOKE          1: run mpi/hello.py first on the same ranks (prints the GPU binding)  [1]
#   scaling only: PBO_SCALING_MODE strong|weak [strong], PBO_SCALING_WORKERS [1,2,4,...,all],
#                 PBO_OUT the driver's folder [$PBO_ROOT/runs/<study>], PBO_BUDGET [32], PBO_ALGORITHM [random,lhs]
# Settings may also be given as arguments (`oarsub -S "jobs/oar/reference.sh PBO_ALGORITHM=soo"`: OAR starts
# jobs without the submitter's environment). `--dry-run` prints the hostfile and the command lines instead.

PBO_RESUBMIT_EXIT=99 # OAR resubmits an idempotent job that exits with 99

_pbo_die() {
  echo "pbo job: $*" >&2
  exit 2
}

# Sets HOSTS_ARGS: where mpi/hostfile.py reads this job's nodes.
_pbo_hosts_args() {
  case "$PBO_BATCH" in
    oar)
      [[ -n "${OAR_NODEFILE:-}" ]] || _pbo_die "OAR_NODEFILE is not set (not inside an OAR job?)"
      HOSTS_ARGS=(--oar-nodefile "$OAR_NODEFILE")
      ;;
    slurm)
      [[ -n "${SLURM_JOB_NODELIST:-}" ]] || _pbo_die "SLURM_JOB_NODELIST is not set (not inside a SLURM job?)"
      HOSTS_ARGS=(--slurm-nodelist "$SLURM_JOB_NODELIST")
      ;;
    *) _pbo_die "PBO_BATCH must be oar or slurm, got '${PBO_BATCH:-}'" ;;
  esac
}

_pbo_settings() {
  PBO_ROOT=${PBO_ROOT:-${SLURM_SUBMIT_DIR:-${OAR_WORKDIR:-$PWD}}}
  [[ -f "$PBO_ROOT/mpi/hostfile.py" ]] ||
    _pbo_die "PBO_ROOT=$PBO_ROOT is not the pbo repository (submit from its root or set PBO_ROOT)"
  if [[ -z "${PBO_PYTHON:-}" ]]; then
    if [[ -x "$PBO_ROOT/.venv/bin/python" ]]; then PBO_PYTHON=$PBO_ROOT/.venv/bin/python; else PBO_PYTHON=python3; fi
  fi
  if [[ -z "${PBO_MPIRUN:-}" ]]; then
    PBO_MPIRUN=$(dirname "$(command -v "$PBO_PYTHON")")/mpirun
    [[ -x "$PBO_MPIRUN" ]] || PBO_MPIRUN=mpirun
  fi
  if [[ -z "${PBO_MPI_FLAVOR:-}" ]]; then
    PBO_MPI_FLAVOR=mpich
    "$PBO_MPIRUN" --version 2>&1 | grep -qi "open mpi\|open-rte" && PBO_MPI_FLAVOR=openmpi
  fi
  if [[ -z "${PBO_GPUS_PER_NODE:-}" ]]; then
    PBO_GPUS_PER_NODE=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') || true
    [[ "${PBO_GPUS_PER_NODE:-0}" -ge 1 ]] || PBO_GPUS_PER_NODE=1
  fi
  PBO_GPUS_PER_WORKER=${PBO_GPUS_PER_WORKER:-1}
  [[ "$PBO_CONFIG" != /* && -f "$PBO_ROOT/$PBO_CONFIG" ]] && PBO_CONFIG=$PBO_ROOT/$PBO_CONFIG
  [[ -f "$PBO_CONFIG" ]] || _pbo_die "study config $PBO_CONFIG not found (set PBO_CONFIG)"
  if [[ -z "${PBO_LOG:-}" ]]; then
    PBO_LOG=$PBO_ROOT/runs/$PBO_STUDY${PBO_ALGORITHM:+-$PBO_ALGORITHM}${PBO_SEED:+-s$PBO_SEED}.h5
  fi
  PBO_OUT=${PBO_OUT:-$PBO_ROOT/runs/$PBO_STUDY} # the scaling driver's folder
  if [[ -z "${PBO_LAUNCHER_ARGS+set}" ]]; then
    PBO_LAUNCHER_ARGS=""
    if [[ "$PBO_BATCH" == oar ]]; then
      # Grid5000: reach the other nodes of the job through oarsh (plain ssh is refused there).
      if [[ "$PBO_MPI_FLAVOR" == openmpi ]]; then PBO_LAUNCHER_ARGS="--mca plm_rsh_agent oarsh"
      else PBO_LAUNCHER_ARGS="-launcher ssh -launcher-exec oarsh"; fi
    fi
  fi
  PBO_SMOKE=${PBO_SMOKE:-1}
}

# Fills MPI_OPTS (mpirun's options but -np: hostfile, environment, launcher, extras), SMOKE_CMD (mpi/hello.py on
# the job's ranks) and STUDY_CMD (mpirun ... python -m pbo.run ..., or with PBO_DRIVER=scaling the driver).
# Both get the GPU layout the hostfile was built for, so their GPU choice matches it.
_pbo_commands() {
  local hostfile=$1 np=$2
  local -a launcher extra run_extra
  read -r -a launcher <<<"$PBO_LAUNCHER_ARGS"
  read -r -a extra <<<"${PBO_MPIRUN_ARGS:-}"
  read -r -a run_extra <<<"${PBO_RUN_ARGS:-}"
  if [[ "$PBO_MPI_FLAVOR" == openmpi ]]; then
    MPI_OPTS=(--hostfile "$hostfile" -x PYTHONPATH -x PATH)
  else
    MPI_OPTS=(-f "$hostfile")
  fi
  MPI_OPTS+=("${launcher[@]}" "${extra[@]}")
  local -a gpu_opts=(--gpus "$PBO_GPUS_PER_NODE" --gpus-per-worker "$PBO_GPUS_PER_WORKER")
  SMOKE_CMD=("$PBO_MPIRUN" -np "$np" "${MPI_OPTS[@]}" "$PBO_PYTHON" mpi/hello.py "${gpu_opts[@]}")
  if [[ "${PBO_DRIVER:-}" == scaling ]]; then
    local workers=1 w
    for ((w = 2; w < np - 1; w *= 2)); do workers+=",$w"; done
    ((np - 1 > 1)) && workers+=",$((np - 1))"
    STUDY_CMD=("$PBO_PYTHON" jobs/scaling/scaling.py --mode "${PBO_SCALING_MODE:-strong}"
      --workers "${PBO_SCALING_WORKERS:-$workers}" --budget "${PBO_BUDGET:-32}"
      --algorithms "${PBO_ALGORITHM:-random,lhs}" --seed "${PBO_SEED:-0}" --config "$PBO_CONFIG"
      --out "$PBO_OUT" --mpirun "$PBO_MPIRUN" --mpirun-args "${MPI_OPTS[*]}" "${run_extra[@]}")
    return
  fi
  STUDY_CMD=("$PBO_MPIRUN" -np "$np" "${MPI_OPTS[@]}" "$PBO_PYTHON" -m pbo.run --config "$PBO_CONFIG"
    "${gpu_opts[@]}")
  [[ -n "${PBO_ALGORITHM:-}" ]] && STUDY_CMD+=(--algorithm "$PBO_ALGORITHM")
  [[ -n "${PBO_SEED:-}" ]] && STUDY_CMD+=(--seed "$PBO_SEED")
  [[ -n "${PBO_BUDGET:-}" ]] && STUDY_CMD+=(--budget "$PBO_BUDGET")
  if [[ -e "$PBO_LOG" ]]; then STUDY_CMD+=(--resume "$PBO_LOG"); else STUDY_CMD+=(--out "$PBO_LOG"); fi
  STUDY_CMD+=("${run_extra[@]}")
}

# Prints a command line that a shell reads back as the same words (quoting only the words that need it).
_pbo_quote() {
  local word out=()
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$word"); else out+=("$(printf '%q' "$word")"); fi
  done
  echo "${out[*]}"
}

# $1: resubmit (the walltime is near) or stop (the job was cancelled). Either way mpirun gets SIGTERM, so
# the master records what has finished and exits; the log resumes when the job starts again.
_pbo_on_signal() {
  [[ "$1" == resubmit ]] && _PBO_RESUBMIT=1
  echo "pbo job: $1 signal: stopping the master; $PBO_LOG resumes when this job runs again" >&2
  [[ -n "${_PBO_CHILD:-}" ]] && kill -TERM "$_PBO_CHILD" 2>/dev/null
}

# Runs "$@" in the background so that the walltime trap can forward SIGTERM to it, and waits for it to end.
_pbo_run_forwarding() {
  local rc
  "$@" &
  _PBO_CHILD=$!
  while :; do
    wait "$_PBO_CHILD"
    rc=$?
    # A trapped signal interrupts `wait`; keep waiting while mpirun stops the run.
    if [[ $rc -gt 128 ]] && kill -0 "$_PBO_CHILD" 2>/dev/null; then continue; fi
    return "$rc"
  done
}

_pbo_resubmit() {
  case "$PBO_BATCH" in
    oar) exit "$PBO_RESUBMIT_EXIT" ;;
    slurm)
      scontrol requeue "$SLURM_JOB_ID" || _pbo_die "could not requeue job $SLURM_JOB_ID; resume with: sbatch $0"
      exit 0
      ;;
  esac
}

pbo_job_main() {
  local dry_run=0 arg
  for arg in "$@"; do
    case "$arg" in
      --dry-run) dry_run=1 ;;
      PBO_[A-Z_]*=*) export "${arg?}" ;; # settings as arguments: OAR does not pass the submitter's environment
      *) _pbo_die "unknown argument '$arg' (give --dry-run or PBO_NAME=value settings)" ;;
    esac
  done
  _pbo_settings
  _pbo_hosts_args
  local hostfile=${PBO_LOG%.h5}.hosts written np
  [[ "${PBO_DRIVER:-}" == scaling ]] && hostfile=$PBO_OUT/hosts
  if ((dry_run)); then
    written=$(mktemp)
  else
    mkdir -p "$(dirname "$hostfile")" || _pbo_die "cannot create the folder $(dirname "$hostfile")"
    written=$hostfile
  fi
  np=$("$PBO_PYTHON" "$PBO_ROOT/mpi/hostfile.py" "${HOSTS_ARGS[@]}" --gpus-per-node "$PBO_GPUS_PER_NODE" \
    --gpus-per-worker "$PBO_GPUS_PER_WORKER" --flavor "$PBO_MPI_FLAVOR" --out "$written") || exit 2
  _pbo_commands "$hostfile" "$np"
  export PYTHONPATH=$PBO_ROOT${PYTHONPATH:+:$PYTHONPATH}
  cd "$PBO_ROOT" || _pbo_die "cannot enter $PBO_ROOT"
  if ((dry_run)); then
    echo "# hostfile $hostfile ($np ranks: 1 master + $((np - 1)) workers)"
    cat "$written"
    rm -f "$written"
    if [[ "$PBO_SMOKE" == 1 ]]; then echo "# smoke test"; _pbo_quote "${SMOKE_CMD[@]}"; fi
    echo "# study"
    _pbo_quote "${STUDY_CMD[@]}"
    return 0
  fi
  echo "pbo job: $PBO_STUDY on $np ranks: ${STUDY_CMD[*]}" >&2
  if [[ "$PBO_SMOKE" == 1 ]]; then
    "${SMOKE_CMD[@]}" ||
      _pbo_die "the MPI smoke test (mpi/hello.py) failed"
  fi
  trap '_pbo_on_signal resubmit' USR1 USR2
  trap '_pbo_on_signal stop' TERM INT
  _pbo_run_forwarding "${STUDY_CMD[@]}"
  local rc=$?
  if [[ -n "${_PBO_RESUBMIT:-}" ]]; then _pbo_resubmit; fi
  return "$rc"
}
