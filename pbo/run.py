"""`python -m pbo.run` (the `pbo` command): read the settings, pick the backend, run the scheduler, report.

Under mpirun (more than one rank) rank 0 is the master and every other rank serves trials; otherwise the
run uses local worker processes (`--workers W`) or the simulated cluster (`--simulate W`). Exit codes (each
non-zero one comes with one line on stderr):

- 0: done: the budget is spent or the search space exhausted, and at least one trial succeeded;
- 1: the run ended with no successful trial (every one failed or timed out), or was stopped by `max_failures`,
  by a worker that could not start, or by a log that could not be written (the log keeps what finished);
- 2: bad settings or an unusable log file: nothing started;
- 128 + signal number: stopped by SIGTERM or SIGINT; finished trials are logged and the run resumes.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Mapping, Sequence

from pbo import gpu
from pbo.backends import Backend, backend_class
from pbo.config import Config, ConfigError, build_config, given_values
from pbo.log import LogError, RunLog
from pbo.log.resume import ResumeState
from pbo.log.session import open_log, resume_values
from pbo.objectives import Objective, ObjectiveError
from pbo.optimizers import Candidate, Optimizer, ReplayDivergence
from pbo.scheduler import RunSummary, run_study
from pbo.space import SpaceError
from pbo.pruners import Pruner
from pbo.study import build_objective, build_optimizer, build_pruner, study_attributes
from pbo.trial import TrialResult, TrialState, WorkerStartError
from pbo.worker import Evaluator, host

#: Bad settings: reported in one line, exit 2, nothing started.
SETUP_ERRORS = (ConfigError, ObjectiveError, SpaceError, ValueError, LogError)
#: Environment variables set by MPI launchers (mpirun/mpiexec of MPICH, Open MPI, srun with PMI/PMIx).
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class SignalStop:
    """Turns the first SIGTERM/SIGINT into a stop request the scheduler polls; a second one acts as usual."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        signal.signal(signum, signal.SIG_DFL)

    def __call__(self) -> bool:
        return self.signum is not None


def main(argv: Sequence[str] | None = None) -> int:
    comm = None
    if any(name in os.environ for name in LAUNCHER_VARIABLES):
        from pbo.backends import mpi  # only under a launcher: importing mpi4py initialises MPI
        comm = mpi.world()
    if comm is None:
        return _main(argv, None, None)
    try:
        ranks = gpu.node_ranks(comm)  # collective: every rank takes part
        if comm.Get_rank() > 0:
            return mpi.serve(comm, functools.partial(initialize_worker, ranks))
        return _main(argv, comm, ranks)
    except Exception:  # a bug, not a bad trial: end the whole job instead of leaving the other ranks waiting
        print(f"pbo: rank {comm.Get_rank()} on {host()} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(1)
        raise


def _restore(resumed: ResumeState, optimizer: Optimizer) -> list[Candidate]:
    """Replay the log into the optimizer. A decision recomputed otherwise than recorded (another machine's
    numerics) is one warning line, and the run goes on from the record."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReplayDivergence)
        redo = resumed.restore(optimizer)
    for warning in caught:
        if issubclass(warning.category, ReplayDivergence):
            print(f"pbo: warning: {warning.message}", file=sys.stderr, flush=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return redo


def _main(argv: Sequence[str] | None, comm: Any, ranks: list[int] | None) -> int:
    try:
        values, resumed = resume_values(given_values(argv))
        config = build_config(values)
        backend_type = backend_class(_backend_name(config, comm))
        objective = build_objective(config, sleep=not backend_type.virtual_clock)
        # A resumed optimizer is built as it first was (LHS sizes its design by the budget), or replay diverges.
        first = config if resumed is None else Config({**config, "budget": resumed.config["budget"]})
        optimizer = build_optimizer(first, objective)
        if objective.check is not None:
            objective.check(optimizer.space)
        redo = _restore(resumed, optimizer) if resumed is not None else []
        pruner = build_pruner(config, objective)
        if resumed is not None and pruner is not None:
            pruner.replay(resumed.reports())
        backend = backend_type.from_settings(config, objective, comm=comm, ranks_on_node=ranks)
        log = open_log(config, optimizer.space, len(backend.workers), resumed, backend.start_time,
                       study=study_attributes(config, objective))
    except SystemExit as exc:  # --help
        _cancel_workers(comm)
        return int(exc.code or 0)
    except SETUP_ERRORS as exc:
        print(f"pbo: error: {exc}", file=sys.stderr, flush=True)
        _cancel_workers(comm)
        return 2
    if resumed is not None:
        print(f"pbo: resuming {resumed.path}: {resumed.n_asked - len(redo)} evaluations done, {len(redo)} in flight "
              "issued again", flush=True)
    try:
        return execute(config, objective, optimizer, backend, log, redo=redo,
                       dispatched=0 if resumed is None else resumed.n_asked,
                       baseline_done=resumed is not None and resumed.has_baseline, pruner=pruner)
    finally:
        if log is not None:
            log.close()


def _backend_name(config: Config, comm: Any) -> str:
    """Which of `BACKENDS` runs the study: MPI under mpirun, else the simulated cluster or local workers."""
    if comm is not None:
        if config.simulate is not None:
            raise ConfigError("simulate runs in one process: start it without mpirun")
        return "mpi"
    return "local" if config.simulate is None else "simulated"


def initialize_worker(ranks_on_node: list[int], settings: Mapping[str, Any], rank: int,
                      clock: Callable[[], float]) -> tuple[Evaluator, str]:
    """An MPI worker rank's set-up from the master's settings (the initializer `mpi.serve` runs): pin its GPU(s)
    from its node-local rank before anything imports torch, then build the objective as the master did."""
    config = Config(settings)
    binding = gpu.bind(rank, ranks_on_node, gpus_per_worker=config.gpus_per_worker, gpu_count=config.gpus,
                       master_gpu=config.master_gpu)
    evaluator = Evaluator(build_objective(config), rank, isolate=config.isolate, timeout=config.timeout,
                          device=binding.label(host()), clock=clock, grace=config.prune_grace,
                          report_raises=config.report_raises)
    return evaluator, binding.warning


def _cancel_workers(comm: Any) -> None:
    if comm is not None:
        from pbo.backends.mpi import MPIBackend
        MPIBackend(comm).cancel()


def execute(config: Config, objective: Objective, optimizer: Optimizer, backend: Backend,
            recorder: RunLog | None = None, *, redo: Sequence[Any] = (), dispatched: int = 0,
            baseline_done: bool = False, pruner: Pruner | None = None) -> int:
    """Start the workers, run the study (judging reports with `pruner`), stop the workers, report; returns the
    exit code. A resumed run gives the candidates to issue again, the evaluations already counted and whether its
    baseline is done."""
    print(f"pbo: {config.algorithm} on {objective.name}, budget {config.budget}, {len(backend.workers)} "
          f"{backend.name} worker(s); master pid {os.getpid()} on {host()}", flush=True)
    try:
        warnings = backend.start(config)
    except WorkerStartError as exc:
        for line in exc.lines:
            print(f"pbo: error: worker failed to start: {line}", file=sys.stderr, flush=True)
        backend.close()
        return 1
    for line in warnings:
        print(f"pbo: warning: {line}", file=sys.stderr, flush=True)
    stop = SignalStop()
    stop.install()
    progress = _progress if config.progress and not backend.virtual_clock else None
    wall, cpu = time.time(), time.process_time()
    try:
        summary = run_study(optimizer, backend, budget=config.budget, recorder=recorder,
                            baseline=objective.baseline is not None and not baseline_done,
                            max_failures=config.max_failures, ask_ahead=config.ask_ahead, should_stop=stop,
                            on_result=progress, redo=redo, dispatched=dispatched, pruner=pruner)
    except LogError as exc:  # the disk filled up: everything acknowledged so far is in the log
        print(f"pbo: error: {exc}; the run can be resumed with --resume {recorder.path} once there is room",
              file=sys.stderr, flush=True)
        return 1
    finally:
        backend.close()
    _report(summary, optimizer, backend.virtual_clock, time.time() - wall, time.process_time() - cpu)
    if recorder is not None:
        print(f"pbo: log {recorder.path}", flush=True)
    if stop.signum is not None:
        how = f"--resume {recorder.path}" if recorder is not None else "--resume FILE.h5 (when run with --out)"
        print(f"pbo: stopped by {signal.Signals(stop.signum).name} after {summary.evaluations} evaluations; "
              f"finished trials are recorded and the run can be resumed with {how}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    if summary.stopped == "max_failures":
        print(f"pbo: stopped: {summary.failures} trials failed, more than max_failures={config.max_failures}",
              file=sys.stderr, flush=True)
        return 1
    if summary.stopped == "exhausted":
        print(f"pbo: the search space is exhausted after {summary.evaluations} evaluations", flush=True)
    if summary.best is None and optimizer.best() is None:  # the optimizer also knows the trials of a resumed log
        print(_no_success(summary), file=sys.stderr, flush=True)
        return 1
    return 0


def _no_success(summary: RunSummary) -> str:
    """The one line a run with no successful trial ends with."""
    if not summary.evaluations:
        return "pbo: error: no successful evaluation: no trial ran"
    errors = [r.error for r in summary.results if r.trial_id != 0 and r.status is not TrialState.OK and r.error]
    first = f" (first error: {errors[0].splitlines()[0]})" if errors else ""
    how = "failed, timed out or were pruned" if summary.pruned else "failed or timed out"
    return f"pbo: error: no successful evaluation: all {summary.evaluations} trials {how}{first}"


def _progress(result: TrialResult, summary: RunSummary) -> None:
    if result.status is TrialState.OK:
        what = f"value {result.value:.6g}"
    elif result.status is TrialState.PRUNED:
        what = f"value {result.value:.6g} at step {result.step:g}"
    else:
        what = result.error
    best = "-" if summary.best is None else f"{summary.best.value:.6g}"
    print(f"trial {result.trial_id:5d}  worker {result.worker:4d}  {result.status.value:7s}  {what}  "
          f"best {best}  elapsed {result.t_end:.1f}s", flush=True)


def _report(summary: RunSummary, optimizer: Optimizer, virtual_clock: bool, wall: float, cpu: float) -> None:
    clock = "virtual " if virtual_clock else ""
    pruned = f", {summary.pruned} pruned" if summary.pruned else ""
    print(f"pbo: {summary.evaluations} evaluations ({summary.failures} failed{pruned}) on {summary.n_workers} "
          f"worker(s) "
          f"in {summary.makespan:.3f} s {clock}({summary.makespan / 3600:.2f} h); utilization "
          f"{summary.utilization:.3f}; master CPU {cpu:.2f} s, wall {wall:.2f} s; median dispatch latency "
          f"{summary.median_latency * 1000:.2f} ms", flush=True)
    if summary.best is not None:
        best = summary.best
        print(f"pbo: best value {best.value:.6g} at trial {best.trial_id}: {best.params}", flush=True)
    elif optimizer.best() is not None:  # a resumed run whose best trial finished before it
        trial = optimizer.best()
        print(f"pbo: best value {trial.value:.6g} at trial {trial.candidate.id}: {trial.candidate.params}",
              flush=True)
    recommended, best = optimizer.recommend(), optimizer.best()
    if recommended is not None and recommended is not best:
        print(f"pbo: recommended trial {recommended.candidate.id} (best modelled value; its value "
              f"{recommended.value:.6g}): {recommended.candidate.params}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
